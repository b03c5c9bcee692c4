/**
 * The harness's configuration: defaults < config file (IRSA_CONFIG) < cucumber's worldParameters
 * (a profile's, `--world-parameters '{"region":"eu-west-1"}'`; the same keys as the file) <
 * environment variables, validated with one schema into one typed object. A bad value becomes a UsageError naming the
 * setting, what was wrong and how to fix it, before anything is created (exit code 2).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { isKnownRegion, UNKNOWN_REGION_MESSAGE } from './aws/regions.ts';
import { UsageError } from './errors.ts';
import { repoRoot } from './paths.ts';
import { TARGET_NAMES } from './targets/target.ts';

const positiveInt = z.coerce.number().int().positive();
const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');

export const configSchema = z
  .object({
    target: z.enum(TARGET_NAMES).default('embedded'),
    /** Setup description directory (fixtures/setups/default when unset). */
    setup: z.string().min(1).default('fixtures/setups/default'),
    reportsDir: z.string().min(1).default('reports'),
    region: z
      .string()
      .regex(/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/, 'not an AWS region name such as us-east-1')
      .refine(isKnownRegion, UNKNOWN_REGION_MESSAGE)
      .default('us-east-1'),
    /** Number of tenants in the isolation matrix. */
    /** Up to the rows of the tenant-matrix outlines (features/05-tenant-isolation.feature). */
    tenants: positiveInt.max(50).default(3),
    keepOnFailure: bool.default(false),
    lintProfile: z.enum(['default', 'strict']).default('default'),
    verbose: bool.default(false),
    /** Attach to a warm environment (state file printed by `npm run env -- up`) instead of starting one. */
    attach: z.string().optional(),
    timeouts: z
      .object({
        startSeconds: positiveInt.default(120),
        applySeconds: positiveInt.default(15),
        assertSeconds: positiveInt.default(60),
        cleanupSeconds: positiveInt.default(60),
      })
      .strict()
      .default({ startSeconds: 120, applySeconds: 15, assertSeconds: 60, cleanupSeconds: 60 }),
    embedded: z
      .object({
        /** Directory with kube-apiserver, kube-controller-manager, kube-scheduler (e.g. envtest's). */
        kubeBinDir: z.string().optional(),
        etcdBinary: z.string().optional(),
        /** `off`: pods start the AWS CLI plainly instead of from tools/aws-cli-forkserver.py. */
        awsCliForkserver: z.enum(['on', 'off']).default('on'),
        /**
         * The node: `kubelet` runs containerd and a real kubelet, pods in real containers (needs
         * root, cgroup v1, overlayfs); `kwok` emulates pods (kwok marks them Running, exec runs a
         * local process); `auto` is kubelet where a real node can run, else kwok.
         */
        kubeNode: z.enum(['auto', 'kwok', 'kubelet']).default('auto'),
        /**
         * OCI archives the real node imports into its containerd at start, besides its own images
         * (e.g. the harness's image from `npm run image`, to run it as a Job in the cluster); each
         * is named by its index.json. A comma-separated list in IRSA_NODE_IMAGES.
         */
        nodeImages: z
          .preprocess(
            (v) =>
              typeof v === 'string'
                ? v
                    .split(',')
                    .map((x) => x.trim())
                    .filter(Boolean)
                : v,
            z.array(z.string().min(1)),
          )
          .default([]),
      })
      .strict()
      .default({ awsCliForkserver: 'on', kubeNode: 'auto', nodeImages: [] }),
    /**
     * Image overrides by name (support/targets/docker/images.ts): k3s, localstack, moto, webhook,
     * app, verify; the docker target runs the first five, the live target webhook, app and verify.
     */
    images: z.record(z.string(), z.string()).default({}),
    docker: z
      .object({
        aws: z.enum(['localstack', 'moto']).default('moto'),
        /** Older place of the image overrides (`images` wins). */
        images: z.record(z.string(), z.string()).default({}),
        /** A K3s registries.yaml (mirrors, credentials) for the images K3s pulls itself (pause, CoreDNS). */
        k3sRegistries: z.string().optional(),
      })
      .strict()
      .default({ aws: 'moto', images: {} }),
    live: z
      .object({
        kubeconfig: z.string().optional(),
        context: z.string().optional(),
        /** The AWS account id the user confirms; writes happen only when the caller is in it. */
        accountId: z
          .string()
          .regex(/^\d{12}$/, 'an AWS account id is 12 digits')
          .optional(),
        mode: z.enum(['provision', 'verify-only']).default('provision'),
        /** verify-only: what to verify. */
        namespace: z.string().optional(),
        serviceAccount: z.string().optional(),
        roleArn: z.string().optional(),
        allowedBucket: z.string().optional(),
        deniedBucket: z.string().optional(),
        /** verify-only: run no pod at all (skips the in-pod checks). */
        noPod: bool.default(false),
        annotationPrefix: z.string().optional(),
        audience: z.string().optional(),
        /** Where the webhook mounts the token (detected from the webhook's Deployment when readable). */
        mountPath: z.string().startsWith('/', 'an absolute path').optional(),
        /**
         * AWS endpoint override for every AWS client (IRSA_AWS_ENDPOINT, else AWS_ENDPOINT_URL): an
         * emulator reached through the live code path, or one of AWS's own (FIPS, VPC) endpoints.
         */
        awsEndpoint: z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).optional(),
        /** PEM file of a CA to trust for awsEndpoint. */
        awsCaBundle: z.string().optional(),
        /** Name of the cluster's MutatingWebhookConfiguration of the pod identity webhook (else detected). */
        webhookConfiguration: z.string().optional(),
        /** Older name of images.webhook (IRSA_IMAGE_WEBHOOK) for this target; wins when set. */
        webhookImage: z.string().optional(),
        /** provision on a cluster without a webhook: the namespace the harness deploys it into. */
        webhookNamespace: z.string().default('irsa-pod-identity-webhook'),
        /**
         * provision: what to do with the cluster's service-account issuer. auto: use it as it is when
         * it already serves its discovery documents (EKS and other managed issuers), else publish
         * (to the issuer's S3 bucket, or on OpenShift a new one the issuer is patched to); managed:
         * always use it as it is; publish: never.
         */
        issuer: z.enum(['auto', 'managed', 'publish']).default('auto'),
        /** OpenShift provision: how long the kube-apiserver rollout after the issuer patch may take. */
        issuerRolloutSeconds: positiveInt.default(1800),
      })
      .strict()
      .default({
        mode: 'provision',
        noPod: false,
        webhookNamespace: 'irsa-pod-identity-webhook',
        issuer: 'auto',
        issuerRolloutSeconds: 1800,
      }),
  })
  .strict();

export type HarnessConfig = z.infer<typeof configSchema> & { setupDir: string; configFile?: string };

/** Environment variable -> config path. Documented in the README's settings table. */
export const ENV_SETTINGS: Record<string, string> = {
  IRSA_TARGET: 'target',
  IRSA_SETUP: 'setup',
  IRSA_REPORTS_DIR: 'reportsDir',
  IRSA_REGION: 'region',
  IRSA_TENANTS: 'tenants',
  IRSA_KEEP_ON_FAILURE: 'keepOnFailure',
  IRSA_LINT_PROFILE: 'lintProfile',
  IRSA_VERBOSE: 'verbose',
  IRSA_ATTACH: 'attach',
  IRSA_START_TIMEOUT: 'timeouts.startSeconds',
  IRSA_APPLY_TIMEOUT: 'timeouts.applySeconds',
  IRSA_ASSERT_TIMEOUT: 'timeouts.assertSeconds',
  IRSA_CLEANUP_TIMEOUT: 'timeouts.cleanupSeconds',
  IRSA_KUBE_BIN_DIR: 'embedded.kubeBinDir',
  IRSA_ETCD_BIN: 'embedded.etcdBinary',
  IRSA_AWS_CLI_FORKSERVER: 'embedded.awsCliForkserver',
  IRSA_KUBE_NODE: 'embedded.kubeNode',
  IRSA_NODE_IMAGES: 'embedded.nodeImages',
  IRSA_DOCKER_AWS: 'docker.aws',
  IRSA_IMAGE_K3S: 'images.k3s',
  IRSA_IMAGE_LOCALSTACK: 'images.localstack',
  IRSA_IMAGE_MOTO: 'images.moto',
  IRSA_IMAGE_WEBHOOK: 'images.webhook',
  IRSA_IMAGE_APP: 'images.app',
  IRSA_IMAGE_VERIFY: 'images.verify',
  IRSA_K3S_REGISTRIES: 'docker.k3sRegistries',
  // KUBECONFIG first, so that IRSA_KUBECONFIG wins when both are set.
  KUBECONFIG: 'live.kubeconfig',
  IRSA_KUBECONFIG: 'live.kubeconfig',
  IRSA_KUBE_CONTEXT: 'live.context',
  IRSA_AWS_ACCOUNT_ID: 'live.accountId',
  IRSA_LIVE_MODE: 'live.mode',
  IRSA_VERIFY_NAMESPACE: 'live.namespace',
  IRSA_VERIFY_SERVICE_ACCOUNT: 'live.serviceAccount',
  IRSA_VERIFY_ROLE_ARN: 'live.roleArn',
  IRSA_VERIFY_ALLOWED_BUCKET: 'live.allowedBucket',
  IRSA_VERIFY_DENIED_BUCKET: 'live.deniedBucket',
  IRSA_VERIFY_NO_POD: 'live.noPod',
  IRSA_ANNOTATION_PREFIX: 'live.annotationPrefix',
  IRSA_AUDIENCE: 'live.audience',
  IRSA_TOKEN_MOUNT_PATH: 'live.mountPath',
  // The AWS SDK's own variables first, so that IRSA_AWS_ENDPOINT / IRSA_AWS_CA_BUNDLE win when both are set.
  AWS_ENDPOINT_URL: 'live.awsEndpoint',
  IRSA_AWS_ENDPOINT: 'live.awsEndpoint',
  AWS_CA_BUNDLE: 'live.awsCaBundle',
  IRSA_AWS_CA_BUNDLE: 'live.awsCaBundle',
  IRSA_WEBHOOK_CONFIGURATION: 'live.webhookConfiguration',
  IRSA_WEBHOOK_IMAGE: 'live.webhookImage',
  IRSA_WEBHOOK_NAMESPACE: 'live.webhookNamespace',
  IRSA_ISSUER_ROLLOUT_TIMEOUT: 'live.issuerRolloutSeconds',
  IRSA_LIVE_ISSUER: 'live.issuer',
};

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[keys[keys.length - 1] as string] = value;
}

function readConfigFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) {
    throw new UsageError(
      `config file ${file} does not exist`,
      'set IRSA_CONFIG to a readable YAML or JSON file, or unset it',
    );
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    const first = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    throw new UsageError(
      `config file ${file} is not valid YAML/JSON: ${first}`,
      'fix the syntax at the position named above',
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`config file ${file} must hold a mapping of settings`, 'see README "Settings" for the keys');
  }
  return parsed as Record<string, unknown>;
}

/** Formats the first schema problem as "<setting>: <problem>", naming where the value came from. */
function describeIssue(issue: z.core.$ZodIssue, fromEnv: Map<string, string>, fromWorld: Set<string>): string {
  const key = issue.path.join('.');
  const envName = fromEnv.get(key);
  // The settings the issue is about (an unknown key names its parent): did one come from worldParameters?
  const paths = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k].join('.')) : [key];
  const world = paths.some((p) => [...fromWorld].some((w) => w === p || w.startsWith(`${p}.`)));
  const where = envName
    ? `${envName} (${key})`
    : world
      ? `${key || 'worldParameters'} (from --world-parameters or the profile)`
      : key || 'config';
  return `${where}: ${issue.message}`;
}

/** The dotted paths of an object's leaves: {a: {b: 1}} -> a.b. */
function leafPaths(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? leafPaths(v as Record<string, unknown>, `${prefix}${k}.`)
      : [`${prefix}${k}`],
  );
}

/** Deep-merges `layer` into `base` (objects merged, anything else replaced). */
function mergeInto(base: Record<string, unknown>, layer: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(layer)) {
    const cur = base[k];
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && typeof cur === 'object' && cur !== null)
      mergeInto(cur as Record<string, unknown>, v as Record<string, unknown>);
    else base[k] = v;
  }
}

export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Record<string, unknown> = {},
  worldParameters: Record<string, unknown> = {},
): HarnessConfig {
  const configFile = env.IRSA_CONFIG ? path.resolve(env.IRSA_CONFIG) : undefined;
  const raw: Record<string, unknown> = configFile ? readConfigFile(configFile) : {};
  mergeInto(raw, structuredClone(worldParameters));
  const fromWorld = new Set(leafPaths(worldParameters));
  const fromEnv = new Map<string, string>();
  for (const [name, key] of Object.entries(ENV_SETTINGS)) {
    const value = env[name];
    if (value !== undefined && value !== '') {
      setPath(raw, key, value);
      fromEnv.set(key, name);
    }
  }
  for (const [key, value] of Object.entries(overrides)) setPath(raw, key, value);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0] as z.core.$ZodIssue;
    throw new UsageError(
      `invalid setting ${describeIssue(issue, fromEnv, fromWorld)}`,
      'see README "Settings" for the allowed values (environment variables, the IRSA_CONFIG file, or worldParameters with its keys)',
    );
  }
  const cfg = result.data;
  const setupDir = path.resolve(repoRoot, cfg.setup);
  if (!existsSync(path.join(setupDir, 'setup.yaml')) || !statSync(setupDir).isDirectory()) {
    throw new UsageError(
      `setup description ${setupDir} has no setup.yaml`,
      'point IRSA_SETUP at a directory like fixtures/setups/default',
    );
  }
  return {
    ...cfg,
    setupDir,
    reportsDir: path.resolve(repoRoot, cfg.reportsDir),
    ...(configFile ? { configFile } : {}),
  };
}
