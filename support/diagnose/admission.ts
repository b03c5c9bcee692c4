/**
 * Why was a pod admitted without the role although its ServiceAccount has one? Read-only
 * diagnosis of the admission path (irsa-facts §2 and §5.1, §5.4): which mutating webhooks
 * intercept the pod (rules, objectSelector against the pod's labels, namespaceSelector against its
 * namespace's labels), and for each one with failurePolicy Ignore whether its webhook can answer:
 * a Service that does not exist or has no ready endpoint, a URL that refuses connections, or the
 * admission version trap (admissionReviewVersions listing v1 first for a webhook release that
 * answers without apiVersion/kind). kube-apiserver's fail-open counter
 * (apiserver_admission_webhook_fail_open_count) says which webhooks it ignored.
 *
 * Also the pure helpers the silent-failure scenarios need: label selector matching, and the labels
 * that let one pod bypass a webhook configuration's objectSelectors (its opt-out).
 */
import type {
  V1LabelSelector,
  V1LabelSelectorRequirement,
  V1MutatingWebhook,
  V1MutatingWebhookConfiguration,
  V1Pod,
} from '@kubernetes/client-node';
import { preflightWebhookConfiguration } from './webhook.ts';

export function requirementMatches(r: V1LabelSelectorRequirement, labels: Record<string, string>): boolean {
  const has = Object.hasOwn(labels, r.key);
  const value = labels[r.key];
  switch (r.operator) {
    case 'In':
      return has && (r.values ?? []).includes(value as string);
    case 'NotIn':
      return !has || !(r.values ?? []).includes(value as string);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      // An unknown operator matches nothing (kube-apiserver rejects such selectors anyway).
      return false;
  }
}

/** Kubernetes semantics: an absent or empty selector matches everything. */
export function selectorMatches(selector: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  return (selector.matchExpressions ?? []).every((r) => requirementMatches(r, labels));
}

const OPT_OUT_VALUE = 'true';

/**
 * Labels to add to `base` so that none of `selectors` matches, without changing a label `base`
 * already has; undefined when only removing or changing labels could do it (e.g. no selector).
 */
export function escapeLabels(
  selectors: (V1LabelSelector | undefined)[],
  base: Record<string, string>,
): Record<string, string> | undefined {
  const added: Record<string, string> = {};
  const all = () => ({ ...base, ...added });
  for (const [i, selector] of selectors.entries()) {
    if (!selectorMatches(selector, all())) continue;
    const candidates: Record<string, string>[] = [];
    for (const [k, v] of Object.entries(selector?.matchLabels ?? {}))
      if (!Object.hasOwn(base, k)) candidates.push({ [k]: `${v}-not`.slice(0, 63) });
    for (const r of selector?.matchExpressions ?? []) {
      if (Object.hasOwn(base, r.key)) continue;
      if (r.operator === 'DoesNotExist') candidates.push({ [r.key]: OPT_OUT_VALUE });
      if (r.operator === 'NotIn' && r.values?.[0] !== undefined) candidates.push({ [r.key]: r.values[0] });
    }
    const fits = candidates.find((c) => {
      const labels = { ...all(), ...c };
      return selectors.slice(0, i + 1).every((s) => !selectorMatches(s, labels));
    });
    if (!fits) return undefined;
    Object.assign(added, fits);
  }
  return added;
}

/** Does this webhook's rules cover pod CREATE in the core group? */
export function interceptsPodCreate(w: V1MutatingWebhook): boolean {
  return (w.rules ?? []).some(
    (r) =>
      (r.operations ?? []).some((o) => o === 'CREATE' || o === '*') &&
      (r.apiGroups ?? []).some((g) => g === '' || g === '*') &&
      (r.resources ?? []).some((res) => res === 'pods' || res === '*'),
  );
}

/** `apiserver_admission_webhook_fail_open_count{name=…,type="admit"}` by webhook name, from /metrics text. */
export function parseFailOpenCounts(metrics: string): Map<string, number> {
  const counts = new Map<string, number>();
  const line = /^apiserver_admission_webhook_fail_open_count\{([^}]*)\}\s+([0-9.eE+-]+)/gm;
  for (const m of metrics.matchAll(line)) {
    const labels = Object.fromEntries(
      [...(m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (labels.type !== 'admit' || !labels.name) continue;
    counts.set(labels.name, (counts.get(labels.name) ?? 0) + Number(m[2]));
  }
  return counts;
}

export type EndpointState = { state: 'ready' } | { state: 'unreachable'; detail: string };

export interface AdmissionDiagnosisInput {
  pod: V1Pod;
  namespaceLabels: Record<string, string>;
  configurations: V1MutatingWebhookConfiguration[];
  /** Whether a webhook's client config can answer: a Service with ready endpoints, a URL that accepts connections. */
  endpointState: (clientConfig: NonNullable<V1MutatingWebhook['clientConfig']>) => Promise<EndpointState>;
  webhookVersion?: string;
  /** Fail-open counts by webhook name, when kube-apiserver's metrics are readable. */
  failOpen?: Map<string, number>;
}

export interface InterceptingWebhook {
  configuration: string;
  webhook: string;
  failurePolicy: string;
  /** Why it cannot have mutated the pod, if the diagnosis found a reason. */
  problem?: string;
}

export interface AdmissionDiagnosis {
  intercepting: InterceptingWebhook[];
  /** Configurations with a pod CREATE webhook whose selectors let this pod through. */
  bypassed: string[];
  /** One sentence per cause found, naming configuration, webhook and why; empty if none found. */
  causes: string[];
}

/** Which webhooks intercepted the pod's creation, and which of them can have failed open, and why. */
export async function diagnoseAdmission(input: AdmissionDiagnosisInput): Promise<AdmissionDiagnosis> {
  const labels = input.pod.metadata?.labels ?? {};
  const out: AdmissionDiagnosis = { intercepting: [], bypassed: [], causes: [] };
  for (const cfg of input.configurations) {
    const name = cfg.metadata?.name ?? '?';
    const preflight = preflightWebhookConfiguration(cfg, { webhookVersion: input.webhookVersion });
    for (const w of (cfg.webhooks ?? []).filter(interceptsPodCreate)) {
      if (!selectorMatches(w.objectSelector, labels) || !selectorMatches(w.namespaceSelector, input.namespaceLabels)) {
        out.bypassed.push(`${name}/${w.name}`);
        continue;
      }
      const failurePolicy = w.failurePolicy ?? 'Fail';
      const entry: InterceptingWebhook = { configuration: name, webhook: w.name, failurePolicy };
      out.intercepting.push(entry);
      if (failurePolicy !== 'Ignore') continue;
      const problems: string[] = [];
      const endpoint = w.clientConfig ? await input.endpointState(w.clientConfig) : undefined;
      if (endpoint?.state === 'unreachable') problems.push(`its webhook is unreachable: ${endpoint.detail}`);
      const trap = preflight.find(
        (f) => f.severity === 'error' && f.message.startsWith(`${name}/${w.name} lists admissionReviewVersions`),
      );
      if (trap) problems.push(`the admission version trap: ${trap.message}`);
      const failedOpen = input.failOpen?.get(w.name);
      if (problems.length === 0 && !failedOpen) continue;
      entry.problem = problems.join('; ') || 'kube-apiserver counted fail-open calls of it';
      out.causes.push(
        `${name}/${w.name} intercepts the pod with failurePolicy Ignore and ${entry.problem}${failedOpen ? ` (kube-apiserver failed open on it ${failedOpen} time(s))` : ''}, so kube-apiserver admitted the pod without its mutation and reported nothing`,
      );
    }
  }
  return out;
}
