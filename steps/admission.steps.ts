/**
 * Steps about admission failures that pass silently: a mutating webhook with failurePolicy Ignore
 * whose call fails (a Service that does not exist, or answers kube-apiserver rejects because of
 * the admission version trap) lets a pod through unmutated, and nothing reports it. The scenarios
 * register, in their own ledger scope, a copy of the pod identity webhook's configuration that
 * intercepts only pods carrying the scenario's label, and create a pod that the real configuration
 * lets through by its own opt-out (objectSelector). Whether kube-apiserver really called the copy
 * and failed open is read from its fail-open counter (/metrics), not assumed.
 */
import assert from 'node:assert/strict';
import { Given, Then, When } from '@cucumber/cucumber';
import type { V1MutatingWebhook, V1MutatingWebhookConfiguration, V1Pod } from '@kubernetes/client-node';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import {
  diagnoseAdmission,
  endpointState,
  escapeLabels,
  failOpenCounts,
  interceptsPodCreate,
} from '../support/diagnose/admission.ts';
import { answersOnlyV1beta1, preflightWebhookConfiguration } from '../support/diagnose/webhook.ts';
import { kubeLabels } from '../support/names.ts';
import { createPod, samplePodManifest } from '../support/provision/pods.ts';
import { retry } from '../support/retry.ts';

const SCENARIO_LABEL = 'irsa-conformance.io/scenario';

interface CopyState {
  configuration: string;
  webhookNames: string[];
  variant: 'unreachable' | 'admission-v1-first';
}
const copies = new WeakMap<IrsaWorld, CopyState>();
/** How often kube-apiserver failed open on the copy while creating the scenario's pod. */
const copyFailOpen = new WeakMap<IrsaWorld, number>();

function copyOf(world: IrsaWorld): CopyState {
  const c = copies.get(world);
  assert.ok(c, 'no copy of the webhook configuration was registered in this scenario');
  return c;
}

/** The pod identity webhook's configuration as registered on the target (the harness's or the cluster's own). */
async function realConfiguration(world: IrsaWorld): Promise<V1MutatingWebhookConfiguration | undefined> {
  const name = (await world.infrastructure()).webhookConfigurationName;
  return name ? await world.clients.admission.readMutatingWebhookConfiguration({ name }) : undefined;
}

async function registerCopy(
  world: IrsaWorld,
  variant: CopyState['variant'],
  versions?: string[],
): Promise<'skipped' | undefined> {
  const real = await realConfiguration(world);
  if (!real) {
    world.attach('Skipped: the setup registers no pod identity webhook configuration to copy', {
      mediaType: 'text/plain',
      fileName: 'skip reason.txt',
    });
    return 'skipped';
  }
  const name = `irsa-${variant}-${world.state.runId}-${world.scopeId}`;
  const hooks = (real.webhooks ?? []).filter(interceptsPodCreate);
  assert.ok(hooks.length > 0, `the webhook configuration ${real.metadata?.name} has no webhook for pod CREATE`);
  const webhooks: V1MutatingWebhook[] = hooks.map((w, i) => {
    const { objectSelector: _o, namespaceSelector: _n, ...rest } = w;
    const clientConfig =
      variant === 'unreachable'
        ? {
            // The default namespace exists on every cluster; the Service name is the scenario's own.
            service: {
              namespace: 'default',
              name: `no-such-webhook-${world.scopeId}`,
              path: '/mutate',
              port: 443,
            },
            ...(w.clientConfig?.caBundle ? { caBundle: w.clientConfig.caBundle } : {}),
          }
        : w.clientConfig;
    return {
      ...rest,
      name: `${variant}-${i}-${world.scopeId}.irsa-conformance.io`,
      clientConfig: clientConfig as V1MutatingWebhook['clientConfig'],
      failurePolicy: 'Ignore',
      timeoutSeconds: 5,
      ...(versions ? { admissionReviewVersions: versions } : {}),
      objectSelector: { matchLabels: { [SCENARIO_LABEL]: world.scopeId } },
    };
  });
  await world.clients.admission.createMutatingWebhookConfiguration({
    body: { metadata: { name, labels: kubeLabels(world.state.runId) }, webhooks },
  });
  world.shared.ledger.record(world.scopeId, {
    kind: 'k8s-cluster-object',
    apiVersion: 'admissionregistration.k8s.io/v1',
    k8sKind: 'MutatingWebhookConfiguration',
    name,
  });
  copies.set(world, { configuration: name, webhookNames: webhooks.map((w) => w.name), variant });
  world.attach(
    `registered ${name}: ${webhooks.map((w) => `${w.name} (failurePolicy Ignore, admissionReviewVersions ${JSON.stringify(w.admissionReviewVersions)}, ${w.clientConfig.service ? `Service ${w.clientConfig.service.namespace}/${w.clientConfig.service.name}` : w.clientConfig.url})`).join('; ')}, for pods labelled ${SCENARIO_LABEL}=${world.scopeId}`,
    { mediaType: 'text/plain', fileName: 'webhook copy.txt' },
  );
  return undefined;
}

Given(
  'a copy of the pod identity webhook configuration, with failurePolicy Ignore and a webhook Service that does not exist, intercepts the pods labelled for this scenario',
  async function (this: IrsaWorld) {
    return await registerCopy(this, 'unreachable');
  },
);

Given(
  'a copy of the pod identity webhook configuration, with failurePolicy Ignore and admissionReviewVersions {string}, intercepts the pods labelled for this scenario',
  async function (this: IrsaWorld, versions: string) {
    return await registerCopy(
      this,
      'admission-v1-first',
      versions.split(',').map((v) => v.trim()),
    );
  },
);

/** Sum of the copy's fail-open counters. */
function failedOpen(counts: Map<string, number>, copy: CopyState): number {
  return copy.webhookNames.reduce((sum, n) => sum + (counts.get(n) ?? 0), 0);
}

When(
  'team {string} creates a pod of the sample app labelled for this scenario and opted out of the pod identity webhook configuration',
  async function (this: IrsaWorld, label: string) {
    const copy = copyOf(this);
    if (copy.variant === 'admission-v1-first' && answersOnlyV1beta1(this.state.target.webhookVersion) !== true) {
      this.attach(
        `Skipped: the target's pod identity webhook is ${this.state.target.webhookVersion ?? 'of an unknown release'}; the admission version trap needs a release that answers only v1beta1 (v0.6.17 or older)`,
        { mediaType: 'text/plain', fileName: 'skip reason.txt' },
      );
      return 'skipped';
    }
    const tenant = this.tenant(label);
    const ctx = this.provisionContext();
    const real = await realConfiguration(this);
    const pod = samplePodManifest(ctx, tenant.namespace, `${tenant.deployment}-silent`, tenant.serviceAccount);
    const base = { ...pod.metadata?.labels, [SCENARIO_LABEL]: this.scopeId };
    const optOut = escapeLabels(
      (real?.webhooks ?? []).filter(interceptsPodCreate).map((w) => w.objectSelector),
      base,
    );
    if (!optOut) {
      this.attach(
        `Skipped: the webhook configuration ${real?.metadata?.name} intercepts every pod (no objectSelector a pod can opt out with), so a webhook outage cannot be simulated for one pod without touching the configuration`,
        { mediaType: 'text/plain', fileName: 'skip reason.txt' },
      );
      return 'skipped';
    }
    pod.metadata = { ...pod.metadata, labels: { ...base, ...optOut } };
    const before = await failOpenCounts(this.clients);
    if (!before) {
      this.attach(
        "Skipped: kube-apiserver's /metrics is not readable, so the suite cannot tell whether the copy was called and failed open",
        { mediaType: 'text/plain', fileName: 'skip reason.txt' },
      );
      return 'skipped';
    }
    // The API server loads a new configuration through a watch: wait until dry-run creates show the copy failing open.
    const start = failedOpen(before, copy);
    const dryRun: V1Pod = { ...pod, metadata: { ...pod.metadata, name: `${pod.metadata?.name}-dry-run` } };
    const { attempts } = await retry(
      async () => {
        await this.clients.core.createNamespacedPod({ namespace: tenant.namespace, body: dryRun, dryRun: 'All' });
        const now = await failOpenCounts(this.clients);
        if (!now || failedOpen(now, copy) <= start) throw new Error('not yet');
        return now;
      },
      {
        operation: `waiting for kube-apiserver to call the webhook configuration ${copy.configuration}`,
        waitingFor: 'its fail-open counter to count a dry-run pod',
        timeoutSeconds: this.state.config.timeouts.applySeconds,
        retryable: (e) => e instanceof Error && e.message === 'not yet',
        initialDelayMs: 50,
        maxDelayMs: 1000,
      },
    );
    const ready = (await failOpenCounts(this.clients)) ?? new Map<string, number>();
    const admitted = await createPod(ctx, pod);
    this.pods.set(label, admitted);
    const after = (await failOpenCounts(this.clients)) ?? new Map<string, number>();
    copyFailOpen.set(this, failedOpen(after, copy) - failedOpen(ready, copy));
    this.attach(
      `pod ${admitted.metadata?.name} labelled ${JSON.stringify(pod.metadata.labels)}; the copy was active after ${attempts} dry-run create(s)`,
      { mediaType: 'text/plain', fileName: 'pod of the copy.txt' },
    );
    return undefined;
  },
);

Then(
  'the diagnosis of the pod of team {string} names the copy, failurePolicy Ignore and {string}',
  async function (this: IrsaWorld, label: string, reason: string) {
    const copy = copyOf(this);
    const pod = this.pods.get(label);
    assert.ok(pod, `no pod of team ${label} in this scenario`);
    const ns = await this.clients.core.readNamespace({ name: pod.metadata?.namespace as string });
    const list = await this.clients.admission.listMutatingWebhookConfiguration();
    const d = await diagnoseAdmission({
      pod,
      namespaceLabels: ns.metadata?.labels ?? {},
      configurations: list.items,
      endpointState: (c) => endpointState(this.clients, c),
      webhookVersion: this.state.target.webhookVersion,
      failOpen: (await failOpenCounts(this.clients)) ?? new Map(),
    });
    this.attach(
      [
        `intercepting: ${d.intercepting.map((i) => `${i.configuration}/${i.webhook} (${i.failurePolicy})`).join(', ') || 'none'}`,
        `bypassed: ${d.bypassed.join(', ') || 'none'}`,
        ...d.causes.map((c) => `cause: ${c}`),
      ].join('\n'),
      { mediaType: 'text/plain', fileName: 'webhooks intercepting the pod.txt' },
    );
    const failures = copyFailOpen.get(this) ?? 0;
    assert.ok(
      failures > 0,
      `kube-apiserver did not fail open on ${copy.configuration} when the pod was created: the pod went unmutated for another reason than the simulated outage`,
    );
    const cause = d.causes.find((c) => c.startsWith(`${copy.configuration}/`));
    assert.ok(
      cause,
      `the diagnosis does not name ${copy.configuration} as the cause (causes: ${d.causes.join(' | ') || 'none'}; intercepting: ${d.intercepting.map((i) => i.configuration).join(', ') || 'none'})`,
    );
    assert.ok(
      cause.includes('failurePolicy Ignore') && cause.includes(reason),
      `the diagnosis names ${copy.configuration}, but not "${reason}": ${cause}`,
    );
  },
);

Then(
  'the pre-flight of the copy fails with the admission version trap for the webhook release the target runs',
  async function (this: IrsaWorld) {
    const copy = copyOf(this);
    const version = this.state.target.webhookVersion;
    const legacy = answersOnlyV1beta1(version);
    if (legacy === false) {
      this.attach(`Skipped: the pod identity webhook ${version} answers admission review v1; the trap does not apply`, {
        mediaType: 'text/plain',
        fileName: 'skip reason.txt',
      });
      return 'skipped';
    }
    const cfg = await this.clients.admission.readMutatingWebhookConfiguration({ name: copy.configuration });
    const findings = preflightWebhookConfiguration(cfg, { webhookVersion: version });
    for (const f of findings)
      this.attach(`${f.severity}: ${f.message}`, { mediaType: 'text/plain', fileName: 'pre-flight findings.txt' });
    const expected = legacy ? 'error' : 'warning';
    const trap = findings.filter(
      (f) =>
        f.severity === expected &&
        /admissionReviewVersions \["v1"/.test(f.message) &&
        /admitted unmutated/.test(f.message),
    );
    assert.equal(
      trap.length,
      copy.webhookNames.length,
      `the pre-flight of ${copy.configuration} (webhook ${version ?? 'of unknown release'}) does not report the admission version trap as ${expected} for each webhook: ${findings.map((f) => `${f.severity}: ${f.message}`).join(' | ') || 'no findings'}`,
    );
    return undefined;
  },
);
