/**
 * What kind of cluster the live target talks to, read from the cluster (never assumed): the
 * Kubernetes version, OpenShift and its version (ClusterVersion, authentication.config), the pod
 * identity webhook the cluster already has (its MutatingWebhookConfiguration, the Deployment
 * behind it and that Deployment's flags), and from those the webhook dialect: annotation prefix,
 * audience, mount path, token expiration. A setting wins over a detected value, a detected value
 * over upstream's default; every value carries where it came from, for the report.
 */
import type { V1Deployment, V1MutatingWebhook, V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { VersionApi } from '@kubernetes/client-node';
import type { Clients } from '../../clients.ts';
import type { HarnessConfig } from '../../config.ts';
import { UsageError } from '../../errors.ts';
import { isNotFound, kubeStatus } from '../../kube/errors.ts';
import { UPSTREAM_DEFAULT_DIALECT } from '../dialect.ts';
import type { DetectedValue, WebhookDialect } from '../target.ts';

export { UPSTREAM_DEFAULT_DIALECT };

/** Where OpenShift (4.6+ on AWS) runs its built-in pod identity webhook. */
export const OPENSHIFT_WEBHOOK_NAMESPACE = 'openshift-cloud-credential-operator';

export interface OpenShiftInfo {
  version: string;
  /** spec.serviceAccountIssuer of authentication.config.openshift.io/cluster ('' = the cluster default). */
  serviceAccountIssuer?: string;
}

export interface DetectedWebhook {
  configurationName: string;
  /** The Service the configuration calls, when it calls one (not a URL). */
  service?: { namespace: string; name: string };
  url?: string;
  /** The webhook's flags, read from the Deployment behind the Service when readable. */
  flags: Record<string, string>;
  /** Where the flags were read, e.g. "Deployment openshift-cloud-credential-operator/pod-identity-webhook". */
  flagsSource?: string;
  image?: string;
  /** A release tag in the image (v0.6.17) when there is one. */
  version?: string;
}

export interface ClusterFacts {
  apiServer: string;
  kubernetesVersion: string;
  openshift?: OpenShiftInfo;
  webhook?: DetectedWebhook;
  dialect: WebhookDialect;
  detected: DetectedValue[];
}

function record(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** 404 (no such API or object) and 403 (not allowed to read it) mean "not found out", not failure. */
function absent(e: unknown): boolean {
  return isNotFound(e) || kubeStatus(e) === 403;
}

export async function detectOpenShift(c: Clients): Promise<OpenShiftInfo | undefined> {
  let version: string | undefined;
  try {
    const cv = record(
      await c.custom.getClusterCustomObject({
        group: 'config.openshift.io',
        version: 'v1',
        plural: 'clusterversions',
        name: 'version',
      }),
    );
    const status = record(cv.status);
    const desired = record(status.desired);
    const history = Array.isArray(status.history) ? status.history.map(record) : [];
    const completed = history.find((h) => h.state === 'Completed');
    version = String(desired.version ?? completed?.version ?? history[0]?.version ?? 'unknown');
  } catch (e) {
    if (!absent(e)) throw e;
  }
  let serviceAccountIssuer: string | undefined;
  let hasAuthentication = false;
  try {
    const auth = record(
      await c.custom.getClusterCustomObject({
        group: 'config.openshift.io',
        version: 'v1',
        plural: 'authentications',
        name: 'cluster',
      }),
    );
    hasAuthentication = true;
    serviceAccountIssuer = String(record(auth.spec).serviceAccountIssuer ?? '');
  } catch (e) {
    if (!absent(e)) throw e;
  }
  if (version === undefined && !hasAuthentication) return undefined;
  return { version: version ?? 'unknown', ...(serviceAccountIssuer !== undefined ? { serviceAccountIssuer } : {}) };
}

/** A webhook of the configuration that is the pod identity webhook (upstream, EKS and OpenShift names). */
export function isPodIdentityWebhook(w: V1MutatingWebhook): boolean {
  return (
    /pod-identity-webhook|iam-for-pods/.test(w.name) ||
    w.clientConfig?.service?.name === 'pod-identity-webhook' ||
    /pod-identity-webhook/.test(w.clientConfig?.url ?? '')
  );
}

/** Parses `--name=value` / `--name value` flags of a container's command and args. */
export function parseFlags(argv: string[]): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const m = /^--?([A-Za-z0-9][A-Za-z0-9-]*)(?:=(.*))?$/.exec(a);
    if (!m) continue;
    const name = m[1] as string;
    if (m[2] !== undefined) flags[name] = m[2];
    else if (i + 1 < argv.length && !(argv[i + 1] as string).startsWith('-')) flags[name] = argv[++i] as string;
    else flags[name] = 'true';
  }
  return flags;
}

async function webhookDeployment(
  c: Clients,
  service: { namespace: string; name: string },
): Promise<V1Deployment | undefined> {
  // The Deployment behind the Service: same name (upstream, OpenShift), else the one whose pod labels the selector matches.
  try {
    return await c.apps.readNamespacedDeployment({ namespace: service.namespace, name: service.name });
  } catch (e) {
    if (!absent(e)) throw e;
  }
  try {
    const svc = await c.core.readNamespacedService({ namespace: service.namespace, name: service.name });
    const selector = svc.spec?.selector ?? {};
    if (Object.keys(selector).length === 0) return undefined;
    const list = await c.apps.listNamespacedDeployment({ namespace: service.namespace });
    return list.items.find((d) =>
      Object.entries(selector).every(([k, v]) => d.spec?.template.metadata?.labels?.[k] === v),
    );
  } catch (e) {
    if (!absent(e)) throw e;
    return undefined;
  }
}

function pickConfiguration(
  configs: V1MutatingWebhookConfiguration[],
  openshift: boolean,
): V1MutatingWebhookConfiguration | undefined {
  const candidates = configs.filter((cfg) => (cfg.webhooks ?? []).some(isPodIdentityWebhook));
  if (openshift) {
    const builtIn = candidates.find((cfg) =>
      (cfg.webhooks ?? []).some((w) => w.clientConfig?.service?.namespace === OPENSHIFT_WEBHOOK_NAMESPACE),
    );
    if (builtIn) return builtIn;
  }
  return candidates[0];
}

export async function detectWebhook(
  c: Clients,
  opts: { configurationName?: string; openshift: boolean },
): Promise<DetectedWebhook | undefined> {
  let cfg: V1MutatingWebhookConfiguration | undefined;
  if (opts.configurationName) {
    try {
      cfg = await c.admission.readMutatingWebhookConfiguration({ name: opts.configurationName });
    } catch (e) {
      if (!isNotFound(e)) throw e;
      throw new UsageError(
        `IRSA_WEBHOOK_CONFIGURATION names MutatingWebhookConfiguration ${opts.configurationName}, which the cluster does not have`,
        'list them with `kubectl get mutatingwebhookconfigurations`, or unset it to let the harness detect the webhook',
      );
    }
  } else {
    cfg = pickConfiguration((await c.admission.listMutatingWebhookConfiguration()).items, opts.openshift);
  }
  if (!cfg) return undefined;
  const hook = (cfg.webhooks ?? []).find(isPodIdentityWebhook) ?? cfg.webhooks?.[0];
  const svc = hook?.clientConfig?.service;
  const detected: DetectedWebhook = { configurationName: cfg.metadata?.name as string, flags: {} };
  if (hook?.clientConfig?.url) detected.url = hook.clientConfig.url;
  if (svc?.namespace && svc.name) {
    detected.service = { namespace: svc.namespace, name: svc.name };
    const deployment = await webhookDeployment(c, detected.service);
    const container =
      deployment?.spec?.template.spec?.containers.find((x) => /webhook/.test(x.name)) ??
      deployment?.spec?.template.spec?.containers[0];
    if (deployment && container) {
      detected.flags = parseFlags([...(container.command ?? []), ...(container.args ?? [])]);
      detected.flagsSource = `Deployment ${deployment.metadata?.namespace}/${deployment.metadata?.name}`;
      if (container.image) {
        detected.image = container.image;
        const tag = /:(v\d+\.\d+\.\d+)(?:[-@].*)?$/.exec(container.image);
        if (tag) detected.version = tag[1];
      }
    }
  }
  return detected;
}

type LiveSettings = HarnessConfig['live'];

/** The dialect from settings, then the webhook's flags, then upstream's defaults; each with its source. */
export function resolveDialect(
  settings: Pick<LiveSettings, 'annotationPrefix' | 'audience' | 'mountPath'>,
  webhook: DetectedWebhook | undefined,
): { dialect: WebhookDialect; detected: DetectedValue[] } {
  const detected: DetectedValue[] = [];
  const pick = (name: string, setting: string | undefined, envName: string, flag: string, fallback: string) => {
    let value = fallback;
    let source = "default (upstream webhook's)";
    const fromFlag = webhook?.flags[flag];
    if (setting !== undefined) {
      value = setting;
      source = `setting ${envName}`;
    } else if (fromFlag !== undefined) {
      value = fromFlag;
      source = `flag --${flag} of ${webhook?.flagsSource}`;
    }
    detected.push({ name, value, source });
    return value;
  };
  const d = UPSTREAM_DEFAULT_DIALECT;
  const dialect: WebhookDialect = {
    annotationPrefix: pick(
      'annotation prefix',
      settings.annotationPrefix,
      'IRSA_ANNOTATION_PREFIX',
      'annotation-prefix',
      d.annotationPrefix,
    ),
    audience: pick('token audience', settings.audience, 'IRSA_AUDIENCE', 'token-audience', d.audience),
    mountPath: pick(
      'token mount path',
      settings.mountPath,
      'IRSA_TOKEN_MOUNT_PATH',
      'token-mount-path',
      d.mountPath,
    ).replace(/\/+$/, ''),
    tokenFileName: d.tokenFileName,
    defaultExpirationSeconds: Number(
      pick('token expiration (s)', undefined, '', 'token-expiration', String(d.defaultExpirationSeconds)),
    ),
  };
  return { dialect, detected };
}

export async function detectCluster(c: Clients, settings: LiveSettings): Promise<ClusterFacts> {
  const apiServer = c.kc.getCurrentCluster()?.server ?? 'unknown';
  const version = await c.kc.makeApiClient(VersionApi).getCode();
  const openshift = await detectOpenShift(c);
  const webhook = await detectWebhook(c, {
    ...(settings.webhookConfiguration ? { configurationName: settings.webhookConfiguration } : {}),
    openshift: openshift !== undefined,
  });
  const { dialect, detected: dialectValues } = resolveDialect(settings, webhook);
  const detected: DetectedValue[] = [
    { name: 'API server', value: apiServer, source: `kubeconfig context ${c.kc.getCurrentContext()}` },
    { name: 'Kubernetes version', value: version.gitVersion, source: 'GET /version' },
    openshift
      ? {
          name: 'OpenShift',
          value: openshift.version,
          source: 'ClusterVersion version (config.openshift.io/v1)',
        }
      : { name: 'OpenShift', value: 'no', source: 'no config.openshift.io ClusterVersion or Authentication' },
  ];
  if (openshift?.serviceAccountIssuer !== undefined) {
    detected.push({
      name: 'OpenShift spec.serviceAccountIssuer',
      value: openshift.serviceAccountIssuer || '(empty: the cluster default)',
      source: 'authentication.config.openshift.io/cluster',
    });
  }
  if (webhook) {
    detected.push({
      name: 'pod identity webhook',
      value: `MutatingWebhookConfiguration ${webhook.configurationName}`,
      source: settings.webhookConfiguration
        ? 'setting IRSA_WEBHOOK_CONFIGURATION'
        : 'detected (mutatingwebhookconfigurations)',
    });
    if (webhook.service)
      detected.push({
        name: 'webhook namespace',
        value: webhook.service.namespace,
        source: `clientConfig.service of ${webhook.configurationName}`,
      });
    if (webhook.image)
      detected.push({
        name: 'webhook image',
        value: webhook.image,
        source: webhook.flagsSource ?? 'the webhook Deployment',
      });
  } else {
    detected.push({ name: 'pod identity webhook', value: 'none found', source: 'mutatingwebhookconfigurations' });
  }
  detected.push(...dialectValues);
  return {
    apiServer,
    kubernetesVersion: version.gitVersion,
    ...(openshift ? { openshift } : {}),
    ...(webhook ? { webhook } : {}),
    dialect,
    detected,
  };
}
