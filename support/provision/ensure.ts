/**
 * Runs the infrastructure provisioning exactly once per run, whichever scenario or worker thread
 * asks first: the first caller takes a lock file and provisions; the others watch the run
 * directory until the result (or the failure) is published. Resources go to the ledger's "run"
 * scope and are deleted by the coordinator at the end of the run.
 */

import { bucketForIssuer } from '../aws/s3-url.ts';
import { observeClusterIssuer } from '../kube/cluster.ts';
import { resourceName } from '../names.ts';
import type { InfrastructureRecord, ProvisionContext } from './context.ts';
import { discoverInfrastructure } from './discover.ts';
import {
  bucketUrl,
  createIdentityProvider,
  discoveryDocumentFor,
  patchClusterIssuer,
  publishDiscovery,
  publishedJwks,
  readClusterSigningKeys,
  registerWebhook,
  waitForClusterIssuer,
} from './infrastructure.ts';
import { runOnce } from './once.ts';

/**
 * Where the discovery documents go and which issuer they name. fixed: the target's bucket and the
 * cluster's issuer. patchable (OpenShift): a new bucket, whose URL becomes the issuer. read-only:
 * the bucket the cluster's issuer already points at, else a new bucket and a warning with the flag
 * to set (an API server's issuer cannot be changed from outside).
 */
function discoveryPlan(ctx: ProvisionContext, clusterIssuer: string): { bucket: string; issuer: string } {
  const control = ctx.target.issuer;
  if (control.mode === 'fixed') return { bucket: control.discoveryBucket, issuer: clusterIssuer };
  if (control.mode === 'read-only') {
    const existing = bucketForIssuer(ctx.target.aws, clusterIssuer);
    if (existing) return { bucket: existing, issuer: clusterIssuer };
  }
  const bucket = resourceName('irsa-oidc', ctx.runId);
  const issuer = bucketUrl(ctx, bucket);
  if (control.mode === 'read-only') {
    ctx.log(
      `warning: the cluster's service-account issuer ${clusterIssuer} is not the URL of an S3 bucket the harness can publish to, and it cannot be changed from outside the cluster. Start kube-apiserver with --service-account-issuer=${bucketUrl(ctx, '<bucket>')} (a bucket name of your choice, not existing yet; keep the current issuer as a second --service-account-issuer so existing tokens stay valid) and --service-account-jwks-uri=${bucketUrl(ctx, '<bucket>')}/keys.json. This run publishes at ${issuer}; the issuer checks fail until then.`,
    );
  }
  return { bucket, issuer };
}

/**
 * A managed issuer (EKS, AKS, GKE, OpenShift in STS mode): nothing is published and the issuer is
 * not touched. The documents the platform serves are read as STS reads them, and the account's
 * identity provider for the issuer is used; only when there is none is one created (tagged,
 * recorded, deleted at the end of the run), as `eksctl utils associate-iam-oidc-provider` would.
 */
async function provisionManaged(ctx: ProvisionContext): Promise<InfrastructureRecord> {
  const found = await discoverInfrastructure(ctx);
  const created: string[] = [];
  let idp = found.identityProviderUrl
    ? { arn: found.identityProviderArn, url: found.identityProviderUrl, clientIds: found.clientIds }
    : undefined;
  if (idp) ctx.log(`managed issuer ${found.issuer}: using the account's identity provider ${idp.arn}`);
  else {
    idp = await createIdentityProvider(ctx, found.issuer);
    created.push(`IAM OIDC identity provider ${idp.arn} (the account had none for the issuer)`);
  }
  const webhookConfigurationName = await registerWebhook(ctx);
  if (webhookConfigurationName && ctx.target.webhook.mode !== 'existing')
    created.push(`MutatingWebhookConfiguration ${webhookConfigurationName}`);
  return {
    ...found,
    identityProviderArn: idp.arn,
    identityProviderUrl: idp.url,
    clientIds: idp.clientIds,
    ...(webhookConfigurationName ? { webhookConfigurationName } : {}),
    created,
  };
}

async function provision(ctx: ProvisionContext): Promise<InfrastructureRecord> {
  // Verify-only: find what exists instead of building it.
  if (ctx.target.readOnly) return discoverInfrastructure(ctx);
  if (ctx.target.issuer.mode === 'managed') return provisionManaged(ctx);
  const c = ctx.clients;
  const created: string[] = [];
  const [observedIssuer, clusterKeys] = await Promise.all([
    observeClusterIssuer(c, ctx.config.timeouts.assertSeconds),
    readClusterSigningKeys(c),
  ]);
  let clusterIssuer = observedIssuer;
  const { bucket, issuer } = discoveryPlan(ctx, clusterIssuer);
  const document = discoveryDocumentFor(ctx, issuer);
  const jwks = publishedJwks(ctx, clusterKeys);
  const published = await publishDiscovery(ctx, bucket, document, jwks);
  created.push(`S3 bucket ${bucket} with .well-known/openid-configuration and keys.json`);
  const idp = await createIdentityProvider(ctx, issuer);
  created.push(`IAM OIDC identity provider ${idp.arn}`);
  if (ctx.target.issuer.mode === 'patchable') {
    const { previous } = await patchClusterIssuer(ctx, issuer);
    if (previous !== issuer)
      created.push(`OpenShift serviceAccountIssuer ${issuer} (restored to ${JSON.stringify(previous)})`);
    clusterIssuer = await waitForClusterIssuer(c, issuer, ctx.config.live.issuerRolloutSeconds, ctx.log);
  }
  const webhookConfigurationName = await registerWebhook(ctx);
  if (webhookConfigurationName && ctx.target.webhook.mode !== 'existing')
    created.push(`MutatingWebhookConfiguration ${webhookConfigurationName}`);
  return {
    issuer,
    clusterIssuer,
    discoveryBucket: bucket,
    discoveryUrl: published.url,
    identityProviderArn: idp.arn,
    identityProviderUrl: idp.url,
    clientIds: idp.clientIds,
    ...(webhookConfigurationName ? { webhookConfigurationName } : {}),
    publishedKids: jwks.keys.map((k) => k.kid),
    clusterKeySource: clusterKeys.source,
    clusterKids: clusterKeys.keys.map((k) => k.kid),
    discoveryDocument: document,
    jwks,
    created,
  };
}

/**
 * The infrastructure of the run, provisioned exactly once whichever scenario or worker thread
 * asks first (runOnce: a lock file in the run directory, the others watch for the result).
 */
export function ensureInfrastructure(ctx: ProvisionContext, runDir: string): Promise<InfrastructureRecord> {
  return runOnce(runDir, 'infrastructure', ctx.config.timeouts.startSeconds, () => provision({ ...ctx, scope: 'run' }));
}
