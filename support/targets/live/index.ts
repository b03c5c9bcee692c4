/**
 * The live target: a real Kubernetes or OpenShift cluster (KUBECONFIG and context) and a real AWS
 * account (the AWS default credential chain: profiles, SSO, environment, web identity), attached to,
 * never started. No `oc` or `aws` binary is needed.
 *
 * At connect it prints whom it talks to (API server, AWS identity), refuses to go on when the AWS
 * account is not the confirmed one (guard.ts), detects the dialect (detect.ts) and describes the
 * target: on OpenShift in provision mode the issuer is patchable; elsewhere it is read-only. The
 * webhook is the cluster's own when it has one; in provision mode on a cluster without one the
 * harness deploys it at provisioning (support/webhook-deploy.ts) from the pinned upstream release
 * or IRSA_IMAGE_WEBHOOK. Every image the cluster pulls has a setting (support/targets/docker/images.ts):
 * IRSA_IMAGE_WEBHOOK, IRSA_IMAGE_APP (the app and probe pods) and IRSA_IMAGE_VERIFY (verify-only's pod).
 * In verify-only mode the descriptor is readOnly: the clients refuse writes (support/read-only.ts).
 *
 * IRSA_AWS_ENDPOINT (+ IRSA_AWS_CA_BUNDLE) points the same code path at an emulator, which is how
 * the embedded target is driven through it in the tests; pods then get the endpoint in their env.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { STSClient } from '@aws-sdk/client-sts';
import { KubeConfig } from '@kubernetes/client-node';
import { parseArn } from '../../aws/arn.ts';
import { dnsSuffixOf, isAwsHostedEndpoint, partitionOf } from '../../aws/regions.ts';
import { bucketForIssuer } from '../../aws/s3-url.ts';
import { type Clients, createClients, loadKubeConfig } from '../../clients.ts';
import { configSchema, type HarnessConfig } from '../../config.ts';
import { isUsageError, UsageError } from '../../errors.ts';
import { observeClusterIssuer } from '../../kube/cluster.ts';
import { isNotFound, kubeStatus } from '../../kube/errors.ts';
import {
  detectInCluster,
  type InClusterConfig,
  writeInClusterKubeconfig,
  writeKubeconfigFile,
} from '../../kube/in-cluster.ts';
import { log } from '../../log.ts';
import { discoveryUrl } from '../../oidc/discovery.ts';
import { describeProxy, proxyFor } from '../../proxy.ts';
import type { LoadedSetup } from '../../setup/setup.ts';
import { formatDetected } from '../../verify/detected.ts';
import { configuredImages, describeImageSource, resolveImages } from '../docker/images.ts';
import type { DetectedValue, IssuerControl, StartedTarget, TargetDescriptor, WebhookRegistration } from '../target.ts';
import { type ClusterFacts, detectCluster } from './detect.ts';
import { callerIdentity, checkAccountGuard } from './guard.ts';

/** The namespace/Service name the harness gives a webhook it deploys. */
export const DEPLOYED_WEBHOOK_NAME = 'pod-identity-webhook';

type LiveSettings = HarnessConfig['live'];

/** Verify-only checks a ServiceAccount, role and buckets the user names: all of them are needed. */
export function checkModeSettings(live: LiveSettings): void {
  if (live.mode !== 'verify-only') return;
  const required: [keyof LiveSettings, string][] = [
    ['namespace', 'IRSA_VERIFY_NAMESPACE'],
    ['serviceAccount', 'IRSA_VERIFY_SERVICE_ACCOUNT'],
    ['roleArn', 'IRSA_VERIFY_ROLE_ARN'],
    ['allowedBucket', 'IRSA_VERIFY_ALLOWED_BUCKET'],
    ['deniedBucket', 'IRSA_VERIFY_DENIED_BUCKET'],
  ];
  const missing = required.filter(([k]) => !live[k]).map(([, env]) => env);
  if (missing.length > 0) {
    throw new UsageError(
      `verify-only mode needs ${missing.join(', ')}`,
      'name the ServiceAccount (and its namespace) whose pods use IRSA, the role it is annotated with, a bucket the role may list and one it may not (see docs/live.md)',
    );
  }
  const arn = parseArn(live.roleArn as string);
  if (arn.service !== 'iam' || !arn.resource.startsWith('role/')) {
    throw new UsageError(
      `IRSA_VERIFY_ROLE_ARN ${live.roleArn} is not an IAM role ARN`,
      'expected arn:<partition>:iam::<account>:role/<name>, e.g. arn:aws:iam::123456789012:role/payments-s3-reader',
    );
  }
}

/**
 * The kubeconfig file to use: the setting (IRSA_KUBECONFIG, else KUBECONFIG), else ~/.kube/config,
 * else, in a pod, the in-cluster configuration (support/kube/in-cluster.ts).
 * A KUBECONFIG list (a:b) is merged as kubectl does into a 0600 file in a temporary directory,
 * removed by stop() or at process exit.
 */
export function resolveKubeconfig(
  setting: string | undefined,
  inCluster: () => InClusterConfig | undefined = detectInCluster,
): { file: string; cleanup: () => void } {
  if (setting === undefined && !existsSync(path.join(homedir(), '.kube', 'config'))) {
    const pod = inCluster();
    if (pod) {
      log.info(
        `in a pod: the in-cluster configuration (API server ${pod.server}${pod.serviceAccount ? `, ServiceAccount ${pod.serviceAccount}` : ''})`,
      );
      return writeInClusterKubeconfig(pod);
    }
  }
  const files = (setting ?? path.join(homedir(), '.kube', 'config')).split(path.delimiter).filter(Boolean);
  if (files.length === 0 || !files.some((f) => existsSync(f))) {
    throw new UsageError(
      `no kubeconfig found at ${files.join(path.delimiter) || '~/.kube/config'}`,
      'set KUBECONFIG or IRSA_KUBECONFIG to the kubeconfig of the cluster (`oc login` writes one); in a pod, mount a ServiceAccount token (automountServiceAccountToken)',
    );
  }
  if (files.length === 1) return { file: files[0] as string, cleanup: () => undefined };
  const merged = new KubeConfig();
  let first = true;
  for (const f of files.filter((x) => existsSync(x))) {
    const kc = new KubeConfig();
    kc.loadFromFile(f);
    if (first) merged.loadFromFile(f);
    else merged.mergeConfig(kc, true);
    first = false;
  }
  return writeKubeconfigFile(merged, 'irsa-live-kubeconfig-');
}

/**
 * IRSA_REGION (or `region` in IRSA_CONFIG) when set, else the AWS configuration's region (AWS_REGION,
 * the profile's region), else the harness default. "Set" is known from the environment, or from a
 * value other than the default.
 */
export async function resolveRegion(config: HarnessConfig): Promise<{ region: string; source: string }> {
  if (process.env.IRSA_REGION || config.region !== configSchema.shape.region.parse(undefined))
    return { region: config.region, source: 'setting IRSA_REGION' };
  try {
    const region = await new STSClient({}).config.region();
    if (region) return { region, source: 'AWS configuration (AWS_REGION, profile)' };
  } catch {
    // No region configured anywhere: the harness default.
  }
  return { region: config.region, source: 'default' };
}

/**
 * Every ARN the harness builds takes the region's partition (aws, aws-cn, aws-us-gov): credentials
 * of another partition mean the region is not the credentials' (a GovCloud profile with us-east-1).
 */
export function checkPartition(caller: { arn: string }, region: string, regionSource: string): void {
  let callerPartition: string;
  try {
    callerPartition = parseArn(caller.arn).partition;
  } catch {
    return; // an emulator may answer with something else: nothing to compare
  }
  const wanted = partitionOf(region);
  if (callerPartition !== wanted)
    throw new UsageError(
      `region ${region} (${regionSource}) is in partition ${wanted}, but the AWS credentials are of partition ${callerPartition} (${caller.arn})`,
      `set IRSA_REGION (or AWS_REGION) to a region of ${callerPartition}, e.g. ${callerPartition === 'aws-us-gov' ? 'us-gov-west-1' : callerPartition === 'aws-cn' ? 'cn-north-1' : 'us-east-1'}`,
    );
}

/** The proxies the clients use (support/proxy.ts), for the detected values; none when direct. */
function proxiesInUse(kc: KubeConfig, awsUrl: string): DetectedValue[] {
  const out: DetectedValue[] = [];
  const cluster = kc.getCurrentCluster()?.proxyUrl;
  if (cluster)
    out.push({
      name: 'proxy to the cluster',
      value: describeProxy(cluster),
      source: 'kubeconfig proxy-url, else HTTPS_PROXY (NO_PROXY)',
    });
  const aws = proxyFor(awsUrl);
  if (aws) out.push({ name: 'proxy to AWS', value: describeProxy(aws), source: 'HTTPS_PROXY / HTTP_PROXY (NO_PROXY)' });
  return out;
}

const ISSUER_CONTROL_TEXT: Record<IssuerControl['mode'], string> = {
  patchable: 'patchable (authentication.config.openshift.io/cluster)',
  'read-only': 'read-only (the API server flag --service-account-issuer)',
  managed: "managed: the cluster's issuer and its published documents are used as they are",
  fixed: 'fixed by the target',
};

/** True when the issuer serves a discovery document (anonymously, as STS reads it). */
export async function servesDiscoveryDocuments(c: Pick<Clients, 'anonymousGetJson'>, issuer: string): Promise<boolean> {
  try {
    const r = await c.anonymousGetJson(discoveryUrl(issuer));
    const doc = r.body as { jwks_uri?: unknown } | undefined;
    return r.status === 200 && typeof doc === 'object' && doc !== null && typeof doc.jwks_uri === 'string';
  } catch {
    return false;
  }
}

/**
 * What provisioning does with the cluster's issuer, and why. Verify-only never changes it. A
 * managed issuer (one that already serves its discovery documents: EKS, AKS, GKE, OpenShift in
 * STS mode, an S3 issuer set up earlier) is used as it is, unless IRSA_LIVE_ISSUER=publish; the
 * others are published (into the issuer's own S3 bucket, or on OpenShift into a new one the
 * issuer is patched to), unless IRSA_LIVE_ISSUER=managed.
 */
export async function chooseIssuerControl(o: {
  setting: 'auto' | 'managed' | 'publish';
  mode: 'provision' | 'verify-only';
  openshift: boolean;
  issuer: string;
  /** The issuer is the root URL of an S3 bucket the harness can create and publish to. */
  publishable: boolean;
  servesDocuments: () => Promise<boolean>;
}): Promise<{ control: IssuerControl; why: string }> {
  const readOnly = { control: { mode: 'read-only', issuer: o.issuer } as IssuerControl };
  if (o.mode === 'verify-only') return { ...readOnly, why: 'verify-only changes nothing' };
  const managed = { control: { mode: 'managed', issuer: o.issuer } as IssuerControl };
  if (o.setting === 'managed') return { ...managed, why: 'setting IRSA_LIVE_ISSUER=managed' };
  if (o.setting === 'auto' && (await o.servesDocuments()))
    return { ...managed, why: 'the issuer serves its own discovery documents (a managed issuer)' };
  if (o.openshift) return { control: { mode: 'patchable' }, why: 'the harness publishes and patches the issuer' };
  return {
    ...readOnly,
    why: o.publishable
      ? "the harness publishes into the issuer's S3 bucket"
      : 'the issuer serves no documents and is no S3 bucket the harness can publish to',
  };
}

function fail(where: string, e: unknown, hint: string): never {
  if (isUsageError(e)) throw e;
  const status = kubeStatus(e);
  const msg = (e as Error)?.message?.split('\n')[0] ?? String(e);
  throw new UsageError(`${where}: ${status ? `HTTP ${status}: ` : ''}${msg}`, hint, { cause: e });
}

/** The images this target's cluster pulls, resolved from the settings; bad settings are exit 2. */
export function liveImages(config: HarnessConfig, setup: LoadedSetup, env: NodeJS.ProcessEnv = process.env) {
  const images = resolveImages(setup, configuredImages(config), env);
  // IRSA_WEBHOOK_IMAGE, the older name of the setting for this target, wins where it is set.
  const webhook = config.live.webhookImage
    ? { ref: config.live.webhookImage, source: 'setting IRSA_WEBHOOK_IMAGE' }
    : { ref: images.webhook.ref, source: describeImageSource('webhook', images.webhook) };
  return {
    webhook,
    app: { ref: images.app.ref, source: describeImageSource('app', images.app) },
    verify: { ref: images.verify.ref, source: describeImageSource('verify', images.verify) },
    /** Set when the app image is not the setup's: every pod the harness creates then uses it. */
    appOverride: images.app.source === 'setup' ? undefined : images.app.ref,
  };
}

function webhookRegistration(
  config: HarnessConfig,
  setup: LoadedSetup,
  facts: ClusterFacts,
  webhookImage: string,
): { reg: WebhookRegistration; version?: string } {
  const live = config.live;
  if (facts.webhook) {
    return {
      reg: { mode: 'existing', configurationName: facts.webhook.configurationName },
      ...(facts.webhook.version ? { version: facts.webhook.version } : {}),
    };
  }
  if (live.mode === 'verify-only') {
    // Nothing to deploy in verify-only: the webhook checks report that none is registered.
    return { reg: { mode: 'existing', configurationName: '' } };
  }
  const d = facts.dialect;
  const tag = /:(v\d+\.\d+\.\d+)/.exec(webhookImage);
  return {
    reg: {
      mode: 'harness-service',
      namespace: live.webhookNamespace,
      serviceName: DEPLOYED_WEBHOOK_NAME,
      path: '/mutate',
      caBundle: '',
      deploy: {
        image: webhookImage,
        flags: {
          ...setup.spec.webhook.flags,
          'annotation-prefix': d.annotationPrefix,
          'token-audience': d.audience,
          'token-mount-path': d.mountPath,
        },
      },
    },
    ...(tag ? { version: tag[1] } : {}),
  };
}

/**
 * The live target as far as its connection goes: kubeconfig, AWS endpoint, CA and region. What
 * detection fills in later (account, issuer, webhook, dialect) is still empty. Shared by the live
 * target and sweep.
 */
export function liveConnectionDescriptor(
  config: HarnessConfig,
  c: { kubeconfigPath: string; server: string; region: string },
): TargetDescriptor {
  const live = config.live;
  if (live.awsCaBundle && !existsSync(live.awsCaBundle)) {
    throw new UsageError(
      `IRSA_AWS_CA_BUNDLE ${live.awsCaBundle} does not exist`,
      'point it at the PEM file of the CA that signed the AWS endpoint certificate',
    );
  }
  // An endpoint of AWS's own (FIPS, dual-stack, VPC) behaves as AWS; anything else is an emulator.
  const emulator = live.awsEndpoint !== undefined && !isAwsHostedEndpoint(live.awsEndpoint, c.region);
  return {
    name: 'live',
    envId: `live-${new URL(c.server).hostname}`,
    kubeconfigPath: c.kubeconfigPath,
    ...(live.context ? { kubeContext: live.context } : {}),
    aws: {
      region: c.region,
      ...(live.awsEndpoint ? { endpoint: live.awsEndpoint } : {}),
      // Emulators serve buckets path-style; real S3 virtual-hosted.
      forcePathStyle: emulator,
      ...(live.awsCaBundle ? { caBundlePath: path.resolve(live.awsCaBundle) } : {}),
      accountId: '',
      eventuallyConsistent: !emulator,
    },
    podAwsEnv: {},
    issuer: { mode: 'read-only', issuer: '' },
    webhook: { mode: 'existing', configurationName: '' },
    dialect: { annotationPrefix: '', audience: '', mountPath: '', tokenFileName: 'token', defaultExpirationSeconds: 0 },
    podRoot: '',
    logs: {},
  };
}

export async function connectLiveTarget(
  config: HarnessConfig,
  setup: LoadedSetup,
  onProgress: (line: string) => void,
): Promise<StartedTarget> {
  const live = config.live;
  checkModeSettings(live);
  const images = liveImages(config, setup);
  const verifyOnly = live.mode === 'verify-only';
  const { file: kubeconfigPath, cleanup } = resolveKubeconfig(live.kubeconfig);
  let clients: Clients | undefined;
  try {
    const kc = loadKubeConfig(kubeconfigPath, live.context);
    const server = kc.getCurrentCluster()?.server ?? 'unknown';
    log.info(`live target (${live.mode}): cluster ${server}, context ${kc.getCurrentContext()}`);

    const { region, source: regionSource } = await resolveRegion(config);
    const descriptor: TargetDescriptor = {
      ...liveConnectionDescriptor(config, { kubeconfigPath, server, region }),
      ...(verifyOnly ? { readOnly: live.noPod ? {} : { podNamespace: live.namespace as string } } : {}),
    };
    const aws = descriptor.aws;
    clients = createClients(descriptor);

    // The guard comes before anything that touches the cluster or the account.
    const caller = await callerIdentity(clients.sts, live.awsEndpoint ?? `STS in ${region}`);
    log.info(
      `AWS identity: ${caller.arn} (account ${caller.account}), region ${region} (${regionSource})${live.awsEndpoint ? `, endpoint ${live.awsEndpoint}` : ''}`,
    );
    checkAccountGuard({ mode: live.mode, confirmedAccountId: live.accountId, caller });
    checkPartition(caller, region, regionSource);
    aws.accountId = caller.account;

    const facts = await detectCluster(clients, live).catch((e: unknown) =>
      fail(
        `cannot read the cluster at ${server}`,
        e,
        'check KUBECONFIG / IRSA_KUBE_CONTEXT and that the credentials are valid (`oc login`, `kubectl get --raw /version`)',
      ),
    );
    const issuer = await observeClusterIssuer(clients, config.timeouts.assertSeconds).catch((e: unknown) =>
      fail(
        'cannot read the cluster issuer (TokenRequest for default/default)',
        e,
        'the harness needs to create tokens (serviceaccounts/token create) in the default namespace',
      ),
    );
    if (verifyOnly) {
      const ns = live.namespace as string;
      const sa = live.serviceAccount as string;
      await clients.core.readNamespacedServiceAccount({ namespace: ns, name: sa }).catch((e: unknown) => {
        if (isNotFound(e))
          throw new UsageError(
            `ServiceAccount ${ns}/${sa} (IRSA_VERIFY_NAMESPACE/IRSA_VERIFY_SERVICE_ACCOUNT) does not exist`,
            'name the ServiceAccount whose pods use IRSA',
          );
        fail(`cannot read ServiceAccount ${ns}/${sa}`, e, 'the harness needs to read ServiceAccounts');
      });
    }

    const { control: issuerControl, why: issuerWhy } = await chooseIssuerControl({
      setting: live.issuer,
      mode: live.mode,
      openshift: facts.openshift !== undefined,
      issuer,
      publishable: bucketForIssuer(aws, issuer) !== undefined,
      servesDocuments: () => servesDiscoveryDocuments(clients as Clients, issuer),
    });
    const { reg, version } = webhookRegistration(config, setup, facts, images.webhook.ref);
    descriptor.issuer = issuerControl;
    descriptor.webhook = reg;
    if (images.appOverride) descriptor.podTemplate = { image: images.appOverride };
    if (version) descriptor.webhookVersion = version;
    if (facts.openshift) descriptor.openshift = facts.openshift.version;
    descriptor.dialect = facts.dialect;
    if (live.awsEndpoint) {
      // Pods must reach the same endpoint (and trust its CA) as the harness.
      descriptor.podAwsEnv = {
        AWS_ENDPOINT_URL: live.awsEndpoint,
        AWS_REGION: region,
        AWS_DEFAULT_REGION: region,
        ...(aws.caBundlePath ? { AWS_CA_BUNDLE: aws.caBundlePath } : {}),
      };
    }
    const detected: DetectedValue[] = [
      ...facts.detected,
      { name: 'service-account issuer', value: issuer, source: 'iss of a TokenRequest token (default/default)' },
      {
        name: 'issuer control',
        value: ISSUER_CONTROL_TEXT[issuerControl.mode],
        source: `${facts.openshift ? 'OpenShift' : 'not OpenShift'}, ${live.mode} mode: ${issuerWhy}`,
      },
      {
        name: 'webhook registration',
        value:
          reg.mode === 'existing'
            ? reg.configurationName || 'none (verify-only deploys nothing)'
            : `deployed by the harness into ${reg.mode === 'harness-service' ? reg.namespace : '?'} at provisioning`,
        source: facts.webhook ? 'the cluster has one' : 'the cluster has none',
      },
      ...(reg.mode === 'harness-service'
        ? [{ name: 'webhook image (deployed)', value: images.webhook.ref, source: images.webhook.source }]
        : []),
      verifyOnly
        ? { name: 'verify pod image', value: images.verify.ref, source: images.verify.source }
        : { name: 'app image', value: images.app.ref, source: images.app.source },
      ...proxiesInUse(kc, live.awsEndpoint ?? `https://sts.${region}.${dnsSuffixOf(region)}`),
      { name: 'AWS account', value: caller.account, source: `GetCallerIdentity (${caller.arn})` },
      { name: 'AWS region', value: region, source: regionSource },
    ];
    descriptor.detected = detected;
    log.info(`detected:\n${formatDetected(detected)}`);
    if (issuerControl.mode === 'read-only' && !verifyOnly && !bucketForIssuer(aws, issuer)) {
      log.warn(
        `the cluster's issuer ${issuer} serves no discovery documents and is not an S3 bucket URL in ${region}: provisioning publishes elsewhere and the issuer checks will fail (the run prints the --service-account-issuer flag to set)`,
      );
    }
    onProgress(`live target described: ${JSON.stringify({ issuer: issuerControl, webhook: reg.mode })}`);
    return {
      descriptor,
      // Attached, not started: only client-side resources are released.
      stop: async () => cleanup(),
    };
  } catch (e) {
    cleanup();
    throw e;
  } finally {
    clients?.destroy();
  }
}
