/**
 * What a failed scenario attaches, to the step that failed, before its resources are deleted. Each
 * attachment has a file name that says what it is:
 *   pod <ns>/<name>.yaml                      each pod the scenario looked at, as the API server has it
 *   token claims of team <label>.json         the decoded claims of a token it read (never the token)
 *   last command in the pod of team <label>.txt
 *   events in <namespace>.txt                 the Kubernetes events of the scenario's namespaces
 *   pod-identity-webhook log (this scenario).txt   the webhook's lines about those namespaces (the
 *                                             log file of the embedded and docker targets; on live,
 *                                             the logs of the webhook's pods when it runs in the cluster)
 *   moto log (this scenario's calls).txt      the emulator's lines for the AWS calls the scenario
 *                                             made: from its start, naming its buckets, roles,
 *                                             policies or namespaces, or made with credentials
 *                                             issued to its roles
 * Everything passes through the world's attach, so through redact(). What is read of the scenario
 * is ScenarioEvidence, which the World satisfies: diagnose/ does not depend on cucumber/.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { Clients } from '../clients.ts';
import type { ExecResult } from '../kube/ops.ts';
import { describeToken } from '../oidc/token.ts';
import type { RunState } from '../run-state.ts';

/** What a scenario leaves behind to diagnose; the World (support/cucumber/world.ts) is one. */
export interface ScenarioEvidence {
  readonly clients: Clients;
  readonly state: Pick<RunState, 'target'>;
  /** The teams, by label: their namespaces and the names their AWS calls carry. */
  readonly tenants: ReadonlyMap<string, { namespace: string; appBucket: string; roleName: string; policyName: string }>;
  /** The pods the scenario looked at, by team label. */
  readonly pods: ReadonlyMap<string, V1Pod>;
  /** Web-identity tokens read from pods, by team label (only their claims are attached). */
  readonly tokens: ReadonlyMap<string, string>;
  /** Extra buckets the scenario created, by name in the feature. */
  readonly buckets: ReadonlyMap<string, string>;
  readonly lastExec?: ExecResult & { command: string; label: string };
  /** When the scenario started: log lines from then on are its own. */
  readonly startedAt: Date;
}

export interface Diagnostic {
  body: string;
  mediaType: string;
  fileName: string;
}

const MAX_LINES = 200;

/** The last `max` of `lines`, saying how many were left out. */
function capped(lines: string[], max = MAX_LINES): string {
  return lines.length > max
    ? [`(${lines.length - max} earlier lines left out)`, ...lines.slice(-max)].join('\n')
    : lines.join('\n');
}

/** The webhook's log lines that name one of the namespaces ("Pod was mutated. …, Namespace=<ns>"). */
export function webhookLinesFor(text: string, namespaces: string[]): string[] {
  return text.split('\n').filter((l) => namespaces.some((ns) => ns && l.includes(ns)));
}

const MOTO_LINE = /^\[moto\] (\d{4}-\d\d-\d\dT[\d:.]+Z) (\S+) (\S+) (\S+) (\S+) (.*)$/;
const ISSUED = /(?:RoleArn|UserName)=(\S+).* -> (\S+)$/;

/**
 * The emulator's lines for the AWS calls of a scenario (tools/moto/launcher.py's format): from
 * `since` on, those that name one of `markers` (its buckets, roles, policies, namespaces) and
 * those made with credentials the emulator issued for a marked role or user. A line without a
 * time (the web-identity decisions) is kept when it names a marker: those names are the scenario's.
 */
export function emulatorLinesFor(text: string, since: Date, markers: string[]): string[] {
  const lines = text.split('\n').filter(Boolean);
  const marked = (l: string) => markers.some((m) => m && l.includes(m));
  const keys = new Set<string>();
  for (const l of lines) {
    const m = ISSUED.exec(l);
    if (m && marked(m[1] as string)) keys.add(m[2] as string);
  }
  const from = since.getTime() - 2000;
  return lines.filter((l) => {
    const m = MOTO_LINE.exec(l);
    if (!m) return l.startsWith('[moto] ') && marked(l);
    if (Date.parse(m[1] as string) < from) return false;
    return marked(l) || keys.has(m[5] as string);
  });
}

function eventTime(e: CoreV1Event): Date | undefined {
  const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
  return t ? new Date(t) : undefined;
}

/** One line per event, oldest first: time, type, reason, object and message. */
export function formatEvents(events: CoreV1Event[]): string {
  return [...events]
    .sort((a, b) => (eventTime(a)?.getTime() ?? 0) - (eventTime(b)?.getTime() ?? 0))
    .map((e) => {
      const when = eventTime(e)?.toISOString().slice(11, 19) ?? '--:--:--';
      const what = `${e.involvedObject.kind ?? '?'}/${e.involvedObject.name ?? '?'}`;
      const times = (e.count ?? 1) > 1 ? ` (x${e.count})` : '';
      return `${when} ${(e.type ?? '').padEnd(7)} ${(e.reason ?? '').padEnd(20)} ${what}: ${e.message ?? ''}${times}`;
    })
    .join('\n');
}

function readText(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** The scenario's namespaces, and the names its AWS calls carry. */
function scenarioNames(world: ScenarioEvidence): { namespaces: string[]; markers: string[] } {
  const namespaces = new Set<string>();
  const markers = new Set<string>();
  for (const t of world.tenants.values()) {
    namespaces.add(t.namespace);
    for (const m of [t.namespace, t.appBucket, t.roleName, t.policyName]) markers.add(m);
  }
  for (const pod of world.pods.values()) if (pod.metadata?.namespace) namespaces.add(pod.metadata.namespace);
  for (const b of world.buckets.values()) markers.add(b);
  for (const ns of namespaces) markers.add(ns);
  return { namespaces: [...namespaces], markers: [...markers] };
}

async function eventsOf(world: ScenarioEvidence, namespace: string): Promise<Diagnostic> {
  const fileName = `events in ${namespace}.txt`;
  try {
    const list = await world.clients.core.listNamespacedEvent({ namespace });
    return { body: formatEvents(list.items) || '(no events)', mediaType: 'text/plain', fileName };
  } catch (e) {
    return {
      body: `events could not be read: ${(e as Error).message.split('\n')[0]}`,
      mediaType: 'text/plain',
      fileName,
    };
  }
}

/** The logs of the webhook's pods, where it runs in the cluster and its pods' logs may be read (live). */
async function webhookPodLogs(world: ScenarioEvidence): Promise<{ text: string; from: string }> {
  const c = world.clients;
  const reg = world.state.target.webhook;
  let service: { namespace: string; name: string } | undefined;
  if (reg.mode === 'harness-service') service = { namespace: reg.namespace, name: reg.serviceName };
  else if (reg.mode === 'existing' && reg.configurationName) {
    const cfg = await c.admission.readMutatingWebhookConfiguration({ name: reg.configurationName });
    const svc = cfg.webhooks?.find((w) => w.clientConfig?.service)?.clientConfig?.service;
    if (!svc?.namespace || !svc.name)
      return {
        text: '',
        from: `the webhook of ${reg.configurationName} runs outside the cluster: no pod logs to read`,
      };
    service = { namespace: svc.namespace, name: svc.name };
  }
  if (!service) return { text: '', from: 'no webhook registration to follow' };
  const svc = await c.core.readNamespacedService(service);
  const selector = Object.entries(svc.spec?.selector ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const pods = await c.core.listNamespacedPod({ namespace: service.namespace, labelSelector: selector });
  const since = Math.max(1, Math.ceil((Date.now() - world.startedAt.getTime()) / 1000) + 5);
  const texts = await Promise.all(
    pods.items.map(async (p) =>
      String(
        await c.core.readNamespacedPodLog({
          namespace: service.namespace,
          name: p.metadata?.name as string,
          sinceSeconds: since,
        }),
      ),
    ),
  );
  return {
    text: texts.join('\n'),
    from: `pods ${pods.items.map((p) => p.metadata?.name).join(', ') || 'none'} of Service ${service.namespace}/${service.name}`,
  };
}

async function webhookLog(world: ScenarioEvidence, namespaces: string[]): Promise<Diagnostic> {
  const fileName = 'pod-identity-webhook log (this scenario).txt';
  const file = world.state.target.logs['pod-identity-webhook'] ?? world.state.target.logs.webhook;
  let text: string;
  let from: string;
  try {
    ({ text, from } = file ? { text: readText(file), from: file } : await webhookPodLogs(world));
  } catch (e) {
    return {
      body: `the webhook's log could not be read: ${(e as Error).message.split('\n')[0]}`,
      mediaType: 'text/plain',
      fileName,
    };
  }
  const lines = webhookLinesFor(text, namespaces);
  const body = lines.length
    ? capped(lines)
    : `(no line names ${namespaces.join(', ') || 'a namespace of this scenario'}: the webhook logs each pod it mutates at -v=3 or more)`;
  return { body: `# from ${from}\n${body}`, mediaType: 'text/plain', fileName };
}

function emulatorLog(world: ScenarioEvidence, markers: string[]): Diagnostic | undefined {
  const logs = world.state.target.logs;
  const name = logs.moto ? 'moto' : logs.localstack ? 'localstack' : undefined;
  if (!name) return undefined;
  const file = logs[name] as string;
  const text = readText(file);
  const lines =
    name === 'moto'
      ? emulatorLinesFor(text, world.startedAt, markers)
      : text.split('\n').filter((l) => markers.some((m) => m && l.includes(m)));
  return {
    body: `# from ${file}\n${lines.length ? capped(lines) : "(no line names this scenario's resources)"}`,
    mediaType: 'text/plain',
    fileName: `${name} log (this scenario's calls).txt`,
  };
}

export async function collectDiagnostics(world: ScenarioEvidence): Promise<Diagnostic[]> {
  const out: Diagnostic[] = [];
  for (const [, pod] of world.pods) {
    const ns = pod.metadata?.namespace as string;
    const name = pod.metadata?.name as string;
    const fresh = await world.clients.core.readNamespacedPod({ namespace: ns, name }).catch(() => pod);
    const { managedFields: _ignored, ...metadata } = fresh.metadata ?? {};
    out.push({
      body: stringify({ metadata, spec: fresh.spec, status: fresh.status }),
      mediaType: 'text/yaml',
      fileName: `pod ${ns}/${name}.yaml`,
    });
  }
  for (const [label, token] of world.tokens) {
    out.push({
      body: JSON.stringify(describeToken(token), null, 2),
      mediaType: 'application/json',
      fileName: `token claims of team ${label} (decoded, signature omitted).json`,
    });
  }
  if (world.lastExec) {
    const e = world.lastExec;
    out.push({
      body: `$ ${e.command}\nexit code ${e.exitCode}\n--- stdout\n${e.stdout.slice(-4000)}\n--- stderr\n${e.stderr.slice(-4000)}`,
      mediaType: 'text/plain',
      fileName: `last command in the pod of team ${e.label}.txt`,
    });
  }
  const { namespaces, markers } = scenarioNames(world);
  out.push(...(await Promise.all(namespaces.map((ns) => eventsOf(world, ns)))));
  if (namespaces.length) out.push(await webhookLog(world, namespaces));
  const emulator = emulatorLog(world, markers);
  if (emulator) out.push(emulator);
  return out;
}
