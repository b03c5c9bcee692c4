/**
 * The infrastructure team's half of the article, as functions: read the cluster's signing keys
 * and issuer, build and publish the discovery document and JWKS, create the IAM OIDC identity
 * provider, register the pod identity webhook. Every value comes from the setup description.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CreateOpenIDConnectProviderCommand, GetOpenIDConnectProviderCommand } from '@aws-sdk/client-iam';
import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  HeadBucketCommand,
  PutBucketAclCommand,
  PutBucketOwnershipControlsCommand,
  PutBucketPolicyCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
} from '@aws-sdk/client-s3';
import { PatchStrategy, setHeaderOptions, type V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { s3ObjectArn } from '../aws/arn.ts';
import { isAwsError } from '../aws/errors.ts';
import { retryIamPropagation } from '../aws/propagation.ts';
import { dnsSuffixOf, partitionOf } from '../aws/regions.ts';
import type { Clients } from '../clients.ts';
import { OperationTimeout, UsageError } from '../errors.ts';
import { observeClusterIssuer } from '../kube/cluster.ts';
import { isNotFound, retryKubeCreate } from '../kube/errors.ts';
import { awsTags, kubeLabels, TAG_RUN_ID } from '../names.ts';
import { buildJwks, type Jwks, keysFromJwks, keysFromOpenShiftConfigMap, kidForKey } from '../oidc/jwks.ts';
import { retry } from '../retry.ts';
import { isNone, renderJson, renderYaml } from '../setup/setup.ts';
import type { ProvisionContext } from './context.ts';

export interface ClusterSigningKeys {
  /** Where they were read: "/openid/v1/jwks" or "ConfigMap openshift-kube-apiserver/bound-sa-token-signing-certs". */
  source: string;
  keys: { kid: string; key: KeyObject }[];
}

/** OpenShift keeps every signing key (one more per rotation) in a ConfigMap; others serve /openid/v1/jwks. */
export async function readClusterSigningKeys(c: Clients): Promise<ClusterSigningKeys> {
  try {
    const cm = await c.core.readNamespacedConfigMap({
      name: 'bound-sa-token-signing-certs',
      namespace: 'openshift-kube-apiserver',
    });
    const keys = keysFromOpenShiftConfigMap(cm.data ?? {}).map((key) => ({ kid: kidForKey(key), key }));
    return { source: 'ConfigMap openshift-kube-apiserver/bound-sa-token-signing-certs', keys };
  } catch (e) {
    if (!isNotFound(e) && !(e as { code?: number }).code) throw e;
  }
  const { OpenidApi } = await import('@kubernetes/client-node');
  const body = await c.kc.makeApiClient(OpenidApi).getServiceAccountIssuerOpenIDKeyset();
  const jwks: unknown = typeof body === 'string' ? JSON.parse(body) : body;
  return { source: '/openid/v1/jwks', keys: keysFromJwks(jwks, '/openid/v1/jwks') };
}

export function publishedJwks(ctx: ProvisionContext, clusterKeys: ClusterSigningKeys): Jwks {
  let keys = clusterKeys.keys.map((k) => k.key);
  const which = ctx.setup.spec.discovery.keys;
  if (which !== 'cluster') {
    // A key the cluster never signs with: instead of its keys (tokens' kids will not be found in
    // keys.json), or beside them (whoever holds its private key can sign tokens STS accepts).
    const unrelated = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    keys = which === 'unrelated' ? [unrelated] : [...keys, unrelated];
  }
  return buildJwks(keys, { duplicateWithEmptyKid: ctx.setup.spec.discovery.duplicateKeyWithEmptyKid });
}

export function discoveryDocumentFor(ctx: ProvisionContext, issuer: string): Record<string, unknown> {
  return renderJson(ctx.setup, ctx.setup.spec.discovery.document, { issuer });
}

/** Public URL of a bucket: the emulator's path-style URL, or S3's virtual-hosted one. */
export function bucketUrl(ctx: { target: ProvisionContext['target'] }, bucket: string): string {
  const a = ctx.target.aws;
  return a.endpoint
    ? `${a.endpoint.replace(/\/$/, '')}/${bucket}`
    : `https://${bucket}.s3.${a.region}.${dnsSuffixOf(a.region)}`;
}

/** A bucket policy (JSON) that lets anyone GetObject these keys of `bucket` (default: every object). */
export function publicReadPolicy(bucket: string, keys: string[] = ['*'], partition = 'aws'): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: '*',
        Action: 's3:GetObject',
        Resource: keys.map((k) => s3ObjectArn(bucket, k, partition)),
      },
    ],
  });
}

export async function createTaggedBucket(ctx: ProvisionContext, bucket: string): Promise<void> {
  const c = ctx.clients;
  const region = ctx.target.aws.region;
  // In us-east-1 CreateBucket succeeds for a bucket the caller already owns: ask first, so the
  // harness never tags, records and later deletes a bucket it did not create.
  const exists = await c.s3.send(new HeadBucketCommand({ Bucket: bucket })).then(
    () => true,
    (e: unknown) => {
      if (
        isAwsError(e, 'NotFound', 'NoSuchBucket') ||
        (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404
      )
        return false;
      // 403: the name exists in another account.
      if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 403) return true;
      throw e;
    },
  );
  if (exists) {
    throw new UsageError(
      `bucket ${bucket} already exists`,
      'a bucket of this name belongs to another run or user; run `npm run sweep` or choose another setup',
    );
  }
  try {
    await c.s3.send(
      new CreateBucketCommand({
        Bucket: bucket,
        ...(region === 'us-east-1'
          ? {}
          : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }),
      }),
    );
  } catch (e) {
    if (isAwsError(e, 'BucketAlreadyOwnedByYou', 'BucketAlreadyExists')) {
      throw new UsageError(
        `bucket ${bucket} already exists`,
        'a bucket of this name belongs to another run or user; run `npm run sweep` or choose another setup',
      );
    }
    throw e;
  }
  ctx.ledger.record(ctx.scope, { kind: 's3-bucket', bucket });
  await c.s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: awsTags(ctx.runId) } }));
}

export interface PublishedDiscovery {
  bucket: string;
  url: string;
  document: Record<string, unknown>;
  jwks: Jwks;
}

/** Creates the discovery bucket, uploads both documents and, unless the setup says none, the public-read policy. */
export async function publishDiscovery(
  ctx: ProvisionContext,
  bucket: string,
  document: Record<string, unknown>,
  jwks: Jwks,
): Promise<PublishedDiscovery> {
  const c = ctx.clients;
  await createTaggedBucket(ctx, bucket);
  const put = (Key: string, body: unknown) =>
    c.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key,
        Body: JSON.stringify(body, null, 2),
        ContentType: 'application/json',
      }),
    );
  await put('.well-known/openid-configuration', document);
  await put('keys.json', jwks);
  const spec = ctx.setup.spec.discovery;
  const policyFile = spec.bucketPolicy;
  if (spec.objectOwnership !== 'BucketOwnerEnforced') {
    // AWS's default for new buckets disables ACLs; another setting makes them count again.
    await c.s3.send(
      new PutBucketOwnershipControlsCommand({
        Bucket: bucket,
        OwnershipControls: { Rules: [{ ObjectOwnership: spec.objectOwnership }] },
      }),
    );
  }
  if (!isNone(policyFile) || spec.bucketAcl !== 'private') {
    // New buckets block public policies and ACLs; the default setup allows a policy (never ACLs),
    // as the article needs public read.
    const b = spec.publicAccessBlock;
    await c.s3.send(
      new PutPublicAccessBlockCommand({
        Bucket: bucket,
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: b.blockPublicAcls,
          IgnorePublicAcls: b.ignorePublicAcls,
          BlockPublicPolicy: b.blockPublicPolicy,
          RestrictPublicBuckets: b.restrictPublicBuckets,
        },
      }),
    );
  }
  if (spec.bucketAcl !== 'private') await c.s3.send(new PutBucketAclCommand({ Bucket: bucket, ACL: spec.bucketAcl }));
  if (!isNone(policyFile)) {
    const policy = renderJson(ctx.setup, policyFile, { bucket, partition: partitionOf(ctx.target.aws.region) });
    await c.s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
  }
  return { bucket, url: bucketUrl(ctx, bucket), document, jwks };
}

export interface IdentityProvider {
  arn: string;
  /** As IAM stores it: without the scheme. */
  url: string;
  clientIds: string[];
}

export async function createIdentityProvider(ctx: ProvisionContext, issuer: string): Promise<IdentityProvider> {
  const spec = ctx.setup.spec.identityProvider;
  const url = spec.url.replace(/\$\{issuer\}/g, issuer);
  let arn: string;
  try {
    const out = await ctx.clients.iam.send(
      new CreateOpenIDConnectProviderCommand({ Url: url, ClientIDList: spec.clientIds, Tags: awsTags(ctx.runId) }),
    );
    arn = out.OpenIDConnectProviderArn as string;
  } catch (e) {
    if (isAwsError(e, 'EntityAlreadyExists')) {
      throw new UsageError(
        `an IAM OIDC identity provider for ${url} already exists and was not created by this run`,
        'delete it (or run `npm run sweep` if an earlier run left it) before provisioning',
      );
    }
    throw e;
  }
  ctx.ledger.record(ctx.scope, { kind: 'iam-oidc-provider', arn });
  // A new provider may read as NoSuchEntity for a moment on real AWS.
  const { value } = await retryIamPropagation(() => readIdentityProvider(ctx.clients, arn), {
    operation: `reading back identity provider ${arn}`,
    codes: ['NoSuchEntity'],
    timeoutSeconds: ctx.config.timeouts.applySeconds,
    log: ctx.log,
  });
  return value;
}

export async function readIdentityProvider(c: Clients, arn: string): Promise<IdentityProvider> {
  const got = await c.iam.send(new GetOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: arn }));
  return { arn, url: got.Url ?? '', clientIds: got.ClientIDList ?? [] };
}

export function webhookConfigurationName(runId: string): string {
  return `pod-identity-webhook-${runId}`;
}

/**
 * Registers the MutatingWebhookConfiguration from the setup's template where the harness owns
 * the webhook; on clusters that bring their own (OpenShift 4.6+), nothing is created.
 * Returns the name of the configuration to check, or undefined when none is registered.
 */
export async function registerWebhook(ctx: ProvisionContext): Promise<string | undefined> {
  const reg = ctx.target.webhook;
  if (reg.mode === 'existing') return reg.configurationName;
  const file = ctx.setup.spec.webhook.configuration;
  if (isNone(file)) return undefined;
  let clientConfig: object =
    reg.mode === 'harness'
      ? { url: reg.url, caBundle: reg.caBundle }
      : { service: { namespace: reg.namespace, name: reg.serviceName, path: reg.path }, caBundle: reg.caBundle };
  if (reg.mode === 'harness-service' && reg.deploy) {
    // The live target on a cluster without a webhook: deploy it now, recorded in the ledger.
    const { applyWebhookDeployment, issueWebhookTls, webhookClientConfig } = await import('../webhook-deploy.ts');
    const spec = {
      namespace: reg.namespace,
      name: reg.serviceName,
      image: reg.deploy.image,
      flags: reg.deploy.flags,
      labels: kubeLabels(ctx.runId),
    };
    const tls = await issueWebhookTls(spec.namespace, spec.name);
    await applyWebhookDeployment(ctx.clients, spec, tls, {
      timeoutSeconds: ctx.config.timeouts.startSeconds,
      onCreated: (ref) => ctx.ledger.record(ctx.scope, ref),
    });
    clientConfig = webhookClientConfig(spec, tls.caPem);
  }
  const name = webhookConfigurationName(ctx.runId);
  const body = renderYaml<V1MutatingWebhookConfiguration>(ctx.setup, file, {
    name,
    runId: ctx.runId,
    webhookClientConfig: JSON.stringify(clientConfig),
  });
  await retryKubeCreate(() => ctx.clients.admission.createMutatingWebhookConfiguration({ body }), {
    operation: `creating MutatingWebhookConfiguration ${name}`,
    timeoutSeconds: ctx.config.timeouts.applySeconds,
  });
  ctx.ledger.record(ctx.scope, {
    kind: 'k8s-cluster-object',
    apiVersion: 'admissionregistration.k8s.io/v1',
    k8sKind: 'MutatingWebhookConfiguration',
    name,
  });
  return name;
}

/** Mutating webhook configurations that intercept pod CREATE. */
export async function podCreateWebhooks(c: Clients): Promise<V1MutatingWebhookConfiguration[]> {
  const list = await c.admission.listMutatingWebhookConfiguration();
  return list.items.filter((cfg) =>
    (cfg.webhooks ?? []).some((w) =>
      (w.rules ?? []).some(
        (r) =>
          (r.operations ?? []).some((o) => o === 'CREATE' || o === '*') &&
          (r.resources ?? []).some((res) => res === 'pods' || res === '*'),
      ),
    ),
  );
}

export { TAG_RUN_ID };

const OPENSHIFT_AUTHENTICATION = {
  group: 'config.openshift.io',
  version: 'v1',
  plural: 'authentications',
  name: 'cluster',
} as const;

/**
 * OpenShift: sets authentication.config.openshift.io/cluster spec.serviceAccountIssuer. The ledger
 * entry that restores the old value is written before the patch, so an interrupted run reverts it.
 * The kube-apiserver operator then rolls the API servers out (minutes): see waitForClusterIssuer.
 */
export async function patchClusterIssuer(ctx: ProvisionContext, issuer: string): Promise<{ previous: string }> {
  const c = ctx.clients;
  const current = (await c.custom.getClusterCustomObject(OPENSHIFT_AUTHENTICATION)) as {
    spec?: { serviceAccountIssuer?: string };
  };
  const previous = current.spec?.serviceAccountIssuer ?? '';
  if (previous === issuer) return { previous };
  ctx.ledger.record(ctx.scope, {
    kind: 'k8s-patch-revert',
    description: `OpenShift authentication/cluster spec.serviceAccountIssuer (restore ${JSON.stringify(previous)})`,
    apiVersion: 'config.openshift.io/v1',
    k8sKind: 'Authentication',
    name: 'cluster',
    mergePatch: { spec: { serviceAccountIssuer: previous } },
  });
  await c.custom.patchClusterCustomObject(
    { ...OPENSHIFT_AUTHENTICATION, body: { spec: { serviceAccountIssuer: issuer } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  ctx.log(
    `patched authentication.config.openshift.io/cluster spec.serviceAccountIssuer: ${JSON.stringify(previous)} -> ${JSON.stringify(issuer)}`,
  );
  return { previous };
}

class IssuerNotYet extends Error {}

/**
 * Waits until new tokens carry `issuer` (after an issuer change the API servers restart one by one;
 * no API tells when all serve the new issuer, so this asks for a token with backoff up to 30 s).
 */
export async function waitForClusterIssuer(
  c: Clients,
  issuer: string,
  timeoutSeconds: number,
  log: (line: string) => void,
  backoff: { initialDelayMs: number; maxDelayMs: number } = { initialDelayMs: 5000, maxDelayMs: 30000 },
): Promise<string> {
  let last = '';
  try {
    const { attempts, waitedMs } = await retry(
      async () => {
        last = await observeClusterIssuer(c, 60);
        if (last !== issuer) throw new IssuerNotYet(last);
        return last;
      },
      {
        operation: `waiting for tokens with issuer ${issuer}`,
        waitingFor: 'the kube-apiserver rollout',
        timeoutSeconds,
        retryable: (e) => e instanceof IssuerNotYet,
        ...backoff,
      },
    );
    if (attempts > 1)
      log(`tokens carry the new issuer after ${(waitedMs / 1000).toFixed(1)} s (${attempts} TokenRequests)`);
    return issuer;
  } catch (e) {
    if (e instanceof OperationTimeout)
      throw new OperationTimeout(
        `waiting for tokens with issuer ${issuer} (the last token had ${JSON.stringify(last)})`,
        'the kube-apiserver rollout (oc get co kube-apiserver)',
        timeoutSeconds,
      );
    throw e;
  }
}
