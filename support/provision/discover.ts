/**
 * The infrastructure as it already exists (verify-only): instead of building the discovery bucket,
 * the identity provider and the webhook registration, find them, read-only, and describe them in
 * the same InfrastructureRecord that provisioning returns, so that the infrastructure feature's
 * checks run unchanged on what was found.
 *
 *   issuer            the `iss` of a token the cluster issues now (TokenRequest; nothing is stored)
 *   signing keys      OpenShift's bound-sa-token-signing-certs, else /openid/v1/jwks
 *   discovery, JWKS   fetched anonymously from <issuer>/.well-known/openid-configuration and its
 *                     jwks_uri, as STS does; when that fails and the issuer is an S3 bucket URL, read
 *                     with the admin credentials instead, so that the "public" check reports the
 *                     HTTP status while the other checks still see the documents
 *   identity provider ListOpenIDConnectProviders, matched by URL (IAM stores it without scheme)
 *   webhook           the configuration the live target detected
 */

import { ListOpenIDConnectProvidersCommand } from '@aws-sdk/client-iam';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { identityProviderArn } from '../aws/arn.ts';
import { describeAwsError } from '../aws/errors.ts';
import { partitionOf } from '../aws/regions.ts';
import { bucketForIssuer } from '../aws/s3-url.ts';
import { observeClusterIssuer } from '../kube/cluster.ts';
import { discoveryUrl as discoveryDocumentUrl, issuerHostPath } from '../oidc/discovery.ts';
import type { Jwks } from '../oidc/jwks.ts';
import type { InfrastructureRecord, ProvisionContext } from './context.ts';
import { bucketUrl, type IdentityProvider, readClusterSigningKeys, readIdentityProvider } from './infrastructure.ts';

async function adminRead(ctx: ProvisionContext, bucket: string, key: string): Promise<unknown> {
  const obj = await ctx.clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const text = await (obj.Body as { transformToString(): Promise<string> }).transformToString();
  return JSON.parse(text) as unknown;
}

/**
 * A published JSON document, as an anonymous client sees it; when it is not readable that way and
 * the URL is inside the discovery bucket, as the admin sees it (so later checks can still compare).
 */
async function readPublished(
  ctx: ProvisionContext,
  url: string,
  bucket: string | undefined,
  what: string,
): Promise<unknown> {
  let problem: string;
  try {
    const res = await ctx.clients.anonymousGet(url);
    if (res.status === 200) {
      try {
        return JSON.parse(res.body) as unknown;
      } catch {
        problem = `anonymous GET ${url} returned HTTP 200 but not JSON`;
      }
    } else problem = `anonymous GET ${url} returned HTTP ${res.status}`;
  } catch (e) {
    problem = `anonymous GET ${url} failed: ${(e as Error).message}`;
  }
  const base = bucket ? `${bucketUrl(ctx, bucket)}/` : undefined;
  if (bucket && base && url.startsWith(base)) {
    const key = url.slice(base.length);
    try {
      const doc = await adminRead(ctx, bucket, key);
      ctx.log(`${what}: ${problem}; read s3://${bucket}/${key} with the admin credentials instead`);
      return doc;
    } catch (e) {
      problem += `; s3://${bucket}/${key}: ${describeAwsError(e)}`;
    }
  }
  ctx.log(`${what}: ${problem}`);
  return undefined;
}

/** The identity provider whose URL is the issuer; a near match (case, trailing slash) so the check can name the difference. */
export async function findIdentityProvider(
  ctx: ProvisionContext,
  issuer: string,
): Promise<IdentityProvider | undefined> {
  const want = issuerHostPath(issuer);
  const norm = (u: string) => u.replace(/\/+$/, '').toLowerCase();
  // ListOpenIDConnectProviders is not paginated: one call lists every provider of the account.
  const list = await ctx.clients.iam.send(new ListOpenIDConnectProvidersCommand({}));
  const arns = (list.OpenIDConnectProviderList ?? []).map((p) => p.Arn as string);
  const suffix = (arn: string) => arn.slice(arn.indexOf(':oidc-provider/') + ':oidc-provider/'.length);
  const exact = arns.find((a) => suffix(a) === want);
  if (exact) return readIdentityProvider(ctx.clients, exact);
  const near = arns.find((a) => norm(suffix(a)) === norm(want));
  if (near) return readIdentityProvider(ctx.clients, near);
  ctx.log(
    `no IAM OIDC identity provider for ${want} (providers: ${arns.map(suffix).join(', ') || 'none'}): STS cannot verify the cluster's tokens`,
  );
  return undefined;
}

export async function discoverInfrastructure(ctx: ProvisionContext): Promise<InfrastructureRecord> {
  const c = ctx.clients;
  const [clusterIssuer, clusterKeys] = await Promise.all([
    observeClusterIssuer(c, ctx.config.timeouts.assertSeconds),
    readClusterSigningKeys(c),
  ]);
  const issuer = clusterIssuer;
  const bucket = bucketForIssuer(ctx.target.aws, issuer);
  if (!bucket)
    ctx.log(
      `the issuer ${issuer} is not the root URL of an S3 bucket in ${ctx.target.aws.region}: the documents are checked through their URLs only`,
    );
  const docUrl = discoveryDocumentUrl(issuer);
  const document = (await readPublished(ctx, docUrl, bucket, 'discovery document')) as
    | Record<string, unknown>
    | undefined;
  const jwksUri =
    typeof document?.jwks_uri === 'string' ? document.jwks_uri : `${issuer.replace(/\/+$/, '')}/keys.json`;
  const jwks = ((await readPublished(ctx, jwksUri, bucket, 'JWKS')) ?? { keys: [] }) as Jwks;
  const idp = await findIdentityProvider(ctx, issuer);
  const reg = ctx.target.webhook;
  const webhookConfigurationName = reg.mode === 'existing' && reg.configurationName ? reg.configurationName : undefined;
  const keys = Array.isArray(jwks.keys) ? jwks.keys : [];
  return {
    issuer,
    clusterIssuer,
    discoveryBucket: bucket ?? '',
    discoveryUrl: issuer.replace(/\/+$/, ''),
    // The ARN IAM would give the issuer's provider: a missing one then reads as NoSuchEntity, naming it.
    identityProviderArn:
      idp?.arn ?? identityProviderArn(ctx.target.aws.accountId, issuer, partitionOf(ctx.target.aws.region)),
    identityProviderUrl: idp?.url ?? '',
    clientIds: idp?.clientIds ?? [],
    ...(webhookConfigurationName ? { webhookConfigurationName } : {}),
    publishedKids: keys.map((k) => k.kid),
    clusterKeySource: clusterKeys.source,
    clusterKids: clusterKeys.keys.map((k) => k.kid),
    discoveryDocument: document ?? {},
    jwks,
    created: [],
  };
}
