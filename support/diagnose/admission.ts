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
import https from 'node:https';
import net from 'node:net';
import {
  DiscoveryV1Api,
  type V1LabelSelector,
  type V1LabelSelectorRequirement,
  type V1MutatingWebhook,
  type V1MutatingWebhookConfiguration,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Clients } from '../clients.ts';
import { isNotFound } from '../kube/errors.ts';
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

/** kube-apiserver's fail-open counters, or undefined when /metrics is not readable. */
export async function failOpenCounts(clients: Clients): Promise<Map<string, number> | undefined> {
  const kc = clients.kc;
  const server = kc.getCurrentCluster()?.server;
  if (!server) return undefined;
  const opts: https.RequestOptions = { method: 'GET' };
  await kc.applyToHTTPSOptions(opts);
  const url = new URL('/metrics', server);
  return await new Promise((resolve) => {
    const req = https.request(url, { ...opts, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve(res.statusCode === 200 ? parseFailOpenCounts(Buffer.concat(chunks).toString('utf8')) : undefined),
      );
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Can a webhook's client config answer? Checked from the harness: a Service's ready endpoints, a URL's port. */
export async function endpointState(
  clients: Clients,
  clientConfig: NonNullable<V1MutatingWebhook['clientConfig']>,
): Promise<EndpointState> {
  const svc = clientConfig.service;
  if (svc) {
    try {
      await clients.core.readNamespacedService({ namespace: svc.namespace, name: svc.name });
    } catch (e) {
      if (isNotFound(e)) return { state: 'unreachable', detail: `Service ${svc.namespace}/${svc.name} does not exist` };
      throw e;
    }
    const slices = await clients.kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
      namespace: svc.namespace,
      labelSelector: `kubernetes.io/service-name=${svc.name}`,
    });
    const ready = slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready);
    return ready.length > 0
      ? { state: 'ready' }
      : { state: 'unreachable', detail: `Service ${svc.namespace}/${svc.name} has no ready endpoint` };
  }
  if (!clientConfig.url) return { state: 'unreachable', detail: 'the client config names neither a Service nor a URL' };
  const u = new URL(clientConfig.url);
  const port = Number(u.port || 443);
  return await new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port, timeout: 3000 }, () => {
      socket.destroy();
      resolve({ state: 'ready' });
    });
    socket.on('error', (e) =>
      resolve({ state: 'unreachable', detail: `${clientConfig.url}: ${e.message} (from the harness)` }),
    );
    socket.on('timeout', () => {
      socket.destroy();
      resolve({ state: 'unreachable', detail: `${clientConfig.url}: no connection within 3 s (from the harness)` });
    });
  });
}

/**
 * Why a pod that should carry the webhook's mutation does not, in one sentence for an assertion
 * message: the configurations that failed open on it, or that none intercepts it, or that one
 * intercepted it and answered without mutating (its ServiceAccount cache, its annotation prefix).
 */
export async function explainUnmutatedPod(
  clients: Clients,
  pod: V1Pod,
  webhookVersion: string | undefined,
): Promise<string> {
  try {
    const ns = await clients.core.readNamespace({ name: pod.metadata?.namespace as string });
    const list = await clients.admission.listMutatingWebhookConfiguration();
    const d = await diagnoseAdmission({
      pod,
      namespaceLabels: ns.metadata?.labels ?? {},
      configurations: list.items,
      endpointState: (c) => endpointState(clients, c),
      webhookVersion,
      failOpen: (await failOpenCounts(clients)) ?? new Map(),
    });
    if (d.causes.length > 0) return d.causes.join('; ');
    if (d.intercepting.length === 0)
      return `no MutatingWebhookConfiguration intercepts the creation of this pod${d.bypassed.length ? ` (its labels opt it out of ${d.bypassed.join(', ')})` : ' (none is registered for pod CREATE)'}`;
    return `${d.intercepting.map((i) => `${i.configuration}/${i.webhook} (failurePolicy ${i.failurePolicy})`).join(', ')} intercepted it and answered without mutating it: does the webhook's annotation prefix match the ServiceAccount's annotation, and did its ServiceAccount cache know the annotation when the pod was created? (see the webhook's log)`;
  } catch (e) {
    return `the admission path could not be diagnosed: ${(e as Error).message}`;
  }
}
