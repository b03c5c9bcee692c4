/**
 * Capabilities are measured on the target at start, not declared: each probe performs the
 * smallest operation whose outcome differs between a target that can and one that cannot.
 * Probe resources are tagged, recorded in the ledger (scope "probe") and deleted right after.
 * A scenario tagged @requires-<capability> is skipped with the probe's reason where it is missing.
 */
import {
  CreateAccessKeyCommand,
  CreateOpenIDConnectProviderCommand,
  CreateRoleCommand,
  CreateUserCommand,
} from '@aws-sdk/client-iam';
import { ListBucketsCommand, PutBucketPolicyCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { identityProviderArn, roleArn as roleArnOf } from './aws/arn.ts';
import { awsErrorName, describeAwsError } from './aws/errors.ts';
import { dnsSuffixOf, partitionOf } from './aws/regions.ts';
import { flushLedger } from './cleanup.ts';
import type { Clients } from './clients.ts';
import type { HarnessConfig } from './config.ts';
import { execInPod, waitForReadyPod } from './kube/ops.ts';
import type { Ledger } from './ledger.ts';
import { awsTags, kubeLabels, resourceName } from './names.ts';
import { issuerHostPath } from './oidc/discovery.ts';
import { createSigningIssuer, foreignSigningKey } from './oidc/signing-issuer.ts';
import { decodeTokenClaims, type KubernetesClaims } from './oidc/token.ts';
import { podImage } from './provision/application.ts';
import { bucketUrl, createTaggedBucket, publicReadPolicy } from './provision/infrastructure.ts';
import { registerSecret } from './redact.ts';
import { loadSetup } from './setup/setup.ts';
import {
  CAPABILITIES,
  type Capability,
  type CapabilityMatrix,
  type CapabilityResult,
  type TargetDescriptor,
} from './targets/target.ts';

/** Leads every "enforces-iam: no" reason, so that the skipped AccessDenied scenarios say what to do. */
export const IAM_NOT_ENFORCED =
  'the target does not enforce IAM policies (use LocalStack with ENFORCE_IAM and an auth token, or moto)';

/** The probe issuer's only client ID. */
const PROBE_AUDIENCE = 'sts.amazonaws.com';

const yes = (reason: string): CapabilityResult => ({ available: true, reason });
const no = (reason: string): CapabilityResult => ({ available: false, reason });

/** An unsigned, well-formed but meaningless JWT: real STS refuses it, an emulator that does not validate accepts it. */
function garbageToken(): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'RS256', kid: 'irsa-conformance-probe' })}.${b64({ iss: 'https://irsa-conformance.invalid', sub: 'probe', aud: 'sts.amazonaws.com', exp: Math.floor(Date.now() / 1000) + 600 })}.${Buffer.from('not-a-signature').toString('base64url')}`;
}

export interface ProbeArgs {
  clients: Clients;
  target: TargetDescriptor;
  config: HarnessConfig;
  runId: string;
  ledger: Ledger;
  issuer: string;
  log: (line: string) => void;
}

export interface ProbeReport {
  matrix: CapabilityMatrix;
  /**
   * Probes that failed instead of measuring (an error, not a measured "no"): such a matrix holds
   * for this run, but is not one to keep for the runs after it on a warm environment.
   */
  errors: string[];
}

export async function probeCapabilities(args: ProbeArgs): Promise<CapabilityMatrix> {
  return (await measureCapabilities(args)).matrix;
}

export async function measureCapabilities(args: ProbeArgs): Promise<ProbeReport> {
  const { clients: c, target, config, runId, ledger } = args;
  const scope = 'probe';
  // A read-only target (live verify-only) refuses writes in its clients (support/read-only.ts).
  const writes = !target.readOnly;
  const results: Partial<Record<Capability, CapabilityResult>> = {};
  results['writes-allowed'] = writes
    ? yes(`${target.name} target in a writing mode`)
    : no('verify-only mode writes nothing');
  results['https-issuer'] = args.issuer.startsWith('https://')
    ? yes(`issuer ${args.issuer}`)
    : no(`issuer ${args.issuer} is not https (AWS requires https)`);
  const sts = new STSClient(c.awsClientOptions());
  const ctx = { clients: c, target, setup: loadSetup(config.setupDir), config, runId, ledger, scope, log: args.log };

  /** A tagged, recorded role whose trust policy is one statement allowing sts:AssumeRoleWithWebIdentity. */
  const createProbeRole = async (statement: Record<string, unknown>): Promise<string> => {
    const roleName = resourceName('irsa-probe-trust', runId, undefined, 64);
    const role = await c.iam.send(
      new CreateRoleCommand({
        RoleName: roleName,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRoleWithWebIdentity', ...statement }],
        }),
        Tags: awsTags(runId),
      }),
    );
    ledger.record(scope, { kind: 'iam-role', roleName });
    return role.Role?.Arn as string;
  };

  const assume = async (roleArn: string, token: string) => {
    try {
      const out = await sts.send(
        new AssumeRoleWithWebIdentityCommand({
          RoleArn: roleArn,
          RoleSessionName: 'irsa-probe',
          WebIdentityToken: token,
        }),
      );
      for (const s of [out.Credentials?.SecretAccessKey, out.Credentials?.SessionToken]) if (s) registerSecret(s);
      return { accepted: true as const };
    } catch (e) {
      if (awsErrorName(e) === undefined) throw e;
      return { accepted: false as const, error: awsErrorName(e) as string };
    }
  };

  /**
   * Where the harness may write to an emulator: an issuer of its own (a probe bucket with a discovery
   * document and a JWKS, an identity provider, a role trusting only the ServiceAccount "probe-allowed"),
   * then one call per property, each against a positive control: a correctly signed token for the
   * trusted subject must succeed first, or a refusal would mean nothing.
   */
  const probeWebIdentity = async () => {
    const bucket = resourceName('irsa-probe-oidc', runId);
    await createTaggedBucket(ctx, bucket);
    const issuer = await createSigningIssuer(bucketUrl(ctx, bucket));
    for (const [Key, body] of [
      ['.well-known/openid-configuration', issuer.discovery],
      ['keys.json', issuer.jwks],
    ] as const)
      await c.s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: JSON.stringify(body) }));
    await c.s3.send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: publicReadPolicy(bucket, ['*'], partitionOf(target.aws.region)),
      }),
    );
    const provider = await c.iam.send(
      new CreateOpenIDConnectProviderCommand({
        Url: issuer.issuer,
        ClientIDList: [PROBE_AUDIENCE],
        Tags: awsTags(runId),
      }),
    );
    const providerArn = provider.OpenIDConnectProviderArn as string;
    ledger.record(scope, { kind: 'iam-oidc-provider', arn: providerArn });
    const roleArn = await createProbeRole({
      Principal: { Federated: providerArn },
      Condition: { StringEquals: { [`${issuerHostPath(issuer.issuer)}:sub`]: 'probe-allowed' } },
    });
    const token = async (claims: { sub: string; aud: string }, foreign?: boolean) => {
      const t = await issuer.sign(claims, foreign ? await foreignSigningKey() : undefined);
      registerSecret(t);
      return t;
    };
    const control = await assume(roleArn, await token({ sub: 'probe-allowed', aud: PROBE_AUDIENCE }));
    if (!control.accepted) {
      const why = `a correctly signed token of a probe issuer for the trusted subject was refused (${control.error}), so no refusal can be measured`;
      results['validates-tokens'] = no(why);
      results['evaluates-trust-policies'] = no(why);
      return;
    }
    const [badSignature, badAudience, otherSubject] = await Promise.all([
      token({ sub: 'probe-allowed', aud: PROBE_AUDIENCE }, true).then((t) => assume(roleArn, t)),
      token({ sub: 'probe-allowed', aud: 'not-a-client-id' }).then((t) => assume(roleArn, t)),
      token({ sub: 'probe-other', aud: PROBE_AUDIENCE }).then((t) => assume(roleArn, t)),
    ]);
    const outcome = (r: { accepted: boolean; error?: string }) => (r.accepted ? 'accepted' : r.error);
    results['validates-tokens'] =
      !badSignature.accepted && !badAudience.accepted
        ? yes(
            `a probe issuer's signed token was accepted; one signed by another key under its kid was refused (${outcome(badSignature)}), one for an audience its provider does not list too (${outcome(badAudience)})`,
          )
        : no(
            `AssumeRoleWithWebIdentity accepted a token ${badSignature.accepted ? 'signed by a key the issuer does not publish' : 'for an audience its identity provider does not list'}`,
          );
    results['evaluates-trust-policies'] = otherSubject.accepted
      ? no("AssumeRoleWithWebIdentity accepted a token whose sub the role's trust policy does not name")
      : yes(
          `the token of the subject the role trusts was accepted, another subject's was refused (${outcome(otherSubject)})`,
        );
  };

  /** Real AWS (or verify-only): the reference for web identities; an unsigned token must be refused. */
  const probeTokens = async () => {
    const r = await assume(
      roleArnOf(target.aws.accountId, `irsa-conformance-probe-${runId}`, '/', partitionOf(target.aws.region)),
      garbageToken(),
    );
    results['validates-tokens'] = r.accepted
      ? no('AssumeRoleWithWebIdentity accepted an unsigned token from an unknown issuer')
      : yes(`AssumeRoleWithWebIdentity refused an unsigned token (${r.error})`);
  };

  const probeTrust = async () => {
    if (!writes) return;
    // A role whose trust policy admits only an identity provider that does not exist: a target that
    // evaluates trust policies refuses any token for it.
    const roleArn = await createProbeRole({
      Principal: {
        Federated: identityProviderArn(
          target.aws.accountId,
          'https://irsa-conformance.invalid',
          partitionOf(target.aws.region),
        ),
      },
    });
    const r = await assume(roleArn, garbageToken());
    results['evaluates-trust-policies'] = r.accepted
      ? no('AssumeRoleWithWebIdentity succeeded for a role that trusts only a nonexistent identity provider')
      : yes(`AssumeRoleWithWebIdentity was refused for a role trusting a nonexistent provider (${r.error})`);
  };

  const probeIam = async () => {
    // ListBuckets (GET /) with no signature at all, as an anonymous client on the network would send it.
    const s3Root = target.aws.endpoint
      ? `${target.aws.endpoint.replace(/\/$/, '')}/`
      : `https://s3.${target.aws.region}.${dnsSuffixOf(target.aws.region)}/`;
    const anonymousList = await c.anonymousGet(s3Root);
    const anonymousRefused = anonymousList.status === 403;
    if (!anonymousRefused) {
      results['enforces-iam'] = no(`${IAM_NOT_ENFORCED}: an anonymous ListBuckets succeeded`);
      return;
    }
    if (!writes) {
      results['enforces-iam'] = yes('an anonymous ListBuckets was refused');
      return;
    }
    const userName = resourceName('irsa-probe-user', runId, undefined, 64);
    await c.iam.send(new CreateUserCommand({ UserName: userName, Tags: awsTags(runId) }));
    ledger.record(scope, { kind: 'iam-user', userName });
    const key = await c.iam.send(new CreateAccessKeyCommand({ UserName: userName }));
    const creds = {
      accessKeyId: key.AccessKey?.AccessKeyId as string,
      secretAccessKey: key.AccessKey?.SecretAccessKey as string,
    };
    registerSecret(creds.secretAccessKey);
    const asUser = new S3Client({ ...c.awsClientOptions(creds), forcePathStyle: target.aws.forcePathStyle });
    try {
      await asUser.send(new ListBucketsCommand({}));
      results['enforces-iam'] = no(`${IAM_NOT_ENFORCED}: an IAM user without any policy could list buckets`);
    } catch (e) {
      results['enforces-iam'] =
        awsErrorName(e) === 'AccessDenied'
          ? yes('an IAM user without any policy got AccessDenied on ListBuckets')
          : no(
              `${IAM_NOT_ENFORCED}: an IAM user without any policy got ${describeAwsError(e)} instead of AccessDenied`,
            );
    }
  };

  const probePublicReads = async () => {
    if (!writes) return;
    const bucket = resourceName('irsa-probe-public', runId);
    await createTaggedBucket(ctx, bucket);
    await c.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'public.txt', Body: 'public' }));
    await c.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'private.txt', Body: 'private' }));
    const policy = publicReadPolicy(bucket, ['public.txt'], partitionOf(target.aws.region));
    await c.s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: policy }));
    const pub = await c.anonymousGet(`${bucketUrl(ctx, bucket)}/public.txt`);
    const priv = await c.anonymousGet(`${bucketUrl(ctx, bucket)}/private.txt`);
    results['anonymous-public-reads'] =
      pub.status === 200 && pub.body === 'public'
        ? yes(`anonymous GET of a policy-public object: 200; of a private one: ${priv.status}`)
        : no(`anonymous GET of a policy-public object returned HTTP ${pub.status}`);
  };

  const probePods = async () => {
    const nodes = await c.core.listNode();
    const ready = nodes.items.filter((n) =>
      (n.status?.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True'),
    );
    if (ready.length === 0) {
      results['runs-pods'] = no('the cluster has no Ready node');
      results['exec-into-pods'] = no('no Ready node to run a pod on');
      results['real-node'] = no('no Ready node to run a pod on');
      return;
    }
    if (!writes) {
      results['runs-pods'] = yes(`${ready.length} Ready node(s)`);
      results['exec-into-pods'] = yes('assumed from Ready nodes (verify-only creates no probe pod)');
      results['real-node'] = yes('assumed from Ready nodes (verify-only creates no probe pod)');
      return;
    }
    const namespace = resourceName('irsa-probe', runId);
    await c.core.createNamespace({ body: { metadata: { name: namespace, labels: kubeLabels(runId) } } });
    ledger.record(scope, { kind: 'k8s-namespace', name: namespace });
    await c.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'probe', labels: { ...kubeLabels(runId), app: 'irsa-probe' } },
        spec: {
          containers: [{ name: 'probe', image: podImage(ctx), command: ['sleep'], args: ['infinity'] }],
          ...(target.podTemplate?.hostNetwork ? { hostNetwork: true } : {}),
        },
      },
    });
    try {
      const pod = await waitForReadyPod(c, namespace, 'app=irsa-probe', config.timeouts.assertSeconds);
      results['runs-pods'] = yes(`a probe pod became Ready on ${pod.spec?.nodeName}`);
    } catch (e) {
      results['runs-pods'] = no(`a probe pod did not become Ready: ${(e as Error).message}`);
      results['exec-into-pods'] = no('no running probe pod to exec into');
      results['real-node'] = no('no running probe pod to look into');
      return;
    }
    const r = await execInPod(c, namespace, 'probe', 'probe', ['echo', 'irsa-probe-ok'], 30).catch((e: unknown) => ({
      stdout: '',
      stderr: String(e),
      exitCode: -1,
    }));
    results['exec-into-pods'] =
      r.exitCode === 0 && r.stdout.trim() === 'irsa-probe-ok'
        ? yes('exec of echo in a probe pod returned its output')
        : no(`exec in a probe pod failed: ${r.stderr.trim().slice(0, 200)}`);
    results['real-node'] = await probeRealNode(c, namespace);
  };

  const webIdentityProbes = writes && target.aws.endpoint ? [probeWebIdentity()] : [probeTokens(), probeTrust()];
  const settled = await Promise.allSettled([...webIdentityProbes, probeIam(), probePublicReads(), probePods()]);
  const errors = settled
    .filter((s): s is PromiseRejectedResult => s.status === 'rejected')
    .map((s) => describeAwsError(s.reason));
  const cleanup = await flushLedger(c, ledger, { scope, timeoutSeconds: config.timeouts.cleanupSeconds });
  for (const f of cleanup.failed) args.log(`warning: probe cleanup of ${f.what} failed: ${f.error}`);
  const matrix = {} as CapabilityMatrix;
  for (const cap of CAPABILITIES) {
    matrix[cap] =
      results[cap] ??
      no(errors.length ? `probe failed: ${errors.join('; ').slice(0, 300)}` : 'not measurable in this mode');
  }
  if (!matrix['validates-tokens'].available && results['evaluates-trust-policies'] === undefined) {
    matrix['evaluates-trust-policies'] = no('tokens are not validated, so trust policies cannot be evaluated for them');
  }
  return { matrix, errors };
}

/** Every pod's service-account token (the ServiceAccount admission plugin's projected volume). */
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * real-node: the probe pod runs in a real container on a kubelet, which projects its volumes
 * itself: inside the pod, the service-account token is a symlink into ..data and holds a token
 * bound to that very pod. An emulated pod (kwok) has no such file where its commands run.
 */
async function probeRealNode(c: Clients, namespace: string): Promise<CapabilityResult> {
  const pod = await c.core.readNamespacedPod({ namespace, name: 'probe' });
  const nodeName = pod.spec?.nodeName ?? '?';
  const node = await c.core.readNode({ name: nodeName }).catch(() => undefined);
  const where = `node ${nodeName}, kubelet ${node?.status?.nodeInfo?.kubeletVersion ?? 'unknown'}`;
  const r = await execInPod(
    c,
    namespace,
    'probe',
    'probe',
    ['sh', '-c', `readlink ${SERVICE_ACCOUNT_TOKEN} && cat ${SERVICE_ACCOUNT_TOKEN}`],
    30,
  ).catch((e: unknown) => ({ stdout: '', stderr: String(e), exitCode: -1 }));
  const [link = '', token = ''] = r.stdout.trim().split('\n');
  if (token) registerSecret(token);
  if (r.exitCode !== 0)
    return no(
      `inside the probe pod there is no service-account token where a container has it (${where}; exit ${r.exitCode})`,
    );
  let bound: KubernetesClaims | undefined;
  try {
    bound = decodeTokenClaims(token).kubernetes;
  } catch {
    bound = undefined;
  }
  if (link !== '..data/token')
    return no(`the probe pod's service-account token is not a symlink into ..data (${where})`);
  if (bound?.pod !== 'probe' || bound.namespace !== namespace)
    return no(`the probe pod's service-account token is not bound to the probe pod (${where})`);
  return yes(
    `the probe pod's service-account token is a kubelet projection: a symlink into ..data, bound to the pod (${where})`,
  );
}

export function formatCapabilityMatrix(target: string, m: CapabilityMatrix): string {
  const width = Math.max(...CAPABILITIES.map((c) => c.length));
  const lines = [`Capabilities of the ${target} target (measured at start):`];
  for (const cap of CAPABILITIES)
    lines.push(`  ${cap.padEnd(width)}  ${m[cap].available ? 'yes' : 'no '}  ${m[cap].reason}`);
  return lines.join('\n');
}
