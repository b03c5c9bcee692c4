/**
 * Unit tests of support/diagnose/admission.ts: label selectors as Kubernetes evaluates them, the
 * labels that opt one pod out of a configuration, the fail-open counter, and the diagnosis naming
 * the webhook configuration that let a pod through unmutated.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import {
  diagnoseAdmission,
  escapeLabels,
  parseFailOpenCounts,
  selectorMatches,
} from '../../support/diagnose/admission.ts';

const SKIP = 'eks.amazonaws.com/skip-pod-identity-webhook';
const upstreamSelector = { matchExpressions: [{ key: SKIP, operator: 'DoesNotExist' }] };

function config(
  name: string,
  webhook: Partial<NonNullable<V1MutatingWebhookConfiguration['webhooks']>[number]>,
): V1MutatingWebhookConfiguration {
  return {
    metadata: { name },
    webhooks: [
      {
        name: `${name}.example.io`,
        admissionReviewVersions: ['v1beta1'],
        sideEffects: 'None',
        clientConfig: { service: { namespace: 'ns', name: 'svc' } },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        ...webhook,
      },
    ],
  };
}

describe('selectorMatches', () => {
  it('follows Kubernetes semantics for every operator', () => {
    const l = { app: 'a', tier: 'web' };
    assert.equal(selectorMatches(undefined, l), true);
    assert.equal(selectorMatches({}, l), true);
    assert.equal(selectorMatches({ matchLabels: { app: 'a' } }, l), true);
    assert.equal(selectorMatches({ matchLabels: { app: 'b' } }, l), false);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] }, l), true);
    assert.equal(
      selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['web'] }] }, l),
      false,
    );
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'NotIn', values: ['web'] }] }, l), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'Exists' }] }, l), false);
    assert.equal(selectorMatches(upstreamSelector, l), true);
    assert.equal(selectorMatches(upstreamSelector, { ...l, [SKIP]: 'true' }), false);
  });
});

describe('escapeLabels', () => {
  it("finds upstream's opt-out label", () => {
    assert.deepEqual(escapeLabels([upstreamSelector], { app: 'a' }), { [SKIP]: 'true' });
  });

  it('finds nothing when a configuration intercepts every pod or only changing a label would do', () => {
    assert.equal(escapeLabels([undefined], { app: 'a' }), undefined);
    assert.equal(
      escapeLabels([{ matchExpressions: [{ key: 'app', operator: 'In', values: ['a'] }] }], { app: 'a' }),
      undefined,
    );
  });

  it('adds nothing for a selector the pod already escapes, and satisfies several selectors at once', () => {
    assert.deepEqual(escapeLabels([{ matchExpressions: [{ key: 'opt-in', operator: 'Exists' }] }], {}), {});
    const both = escapeLabels(
      [upstreamSelector, { matchExpressions: [{ key: 'mode', operator: 'NotIn', values: ['off'] }] }],
      {},
    );
    assert.deepEqual(both, { [SKIP]: 'true', mode: 'off' });
  });
});

describe('parseFailOpenCounts', () => {
  it('reads the admit counter by webhook name and ignores validating ones', () => {
    const text = [
      '# HELP apiserver_admission_webhook_fail_open_count [ALPHA] Admission webhook fail open count',
      '# TYPE apiserver_admission_webhook_fail_open_count counter',
      'apiserver_admission_webhook_fail_open_count{name="a.example.io",type="admit"} 2',
      'apiserver_admission_webhook_fail_open_count{name="b.example.io",type="validating"} 5',
      'apiserver_admission_webhook_request_total{name="a.example.io",type="admit"} 9',
    ].join('\n');
    assert.deepEqual([...parseFailOpenCounts(text)], [['a.example.io', 2]]);
  });
});

describe('diagnoseAdmission', () => {
  const pod = { metadata: { name: 'p', labels: { app: 'a', [SKIP]: 'true', scenario: 's1' } } };
  const real = config('pod-identity-webhook', { objectSelector: upstreamSelector, failurePolicy: 'Ignore' });

  it('names the Ignore configuration whose Service is missing, and the real one the pod bypassed', async () => {
    const broken = config('copy', {
      failurePolicy: 'Ignore',
      objectSelector: { matchLabels: { scenario: 's1' } },
      clientConfig: { service: { namespace: 'ns', name: 'gone' } },
    });
    const d = await diagnoseAdmission({
      pod,
      namespaceLabels: {},
      configurations: [real, broken],
      endpointState: async (c) =>
        c.service?.name === 'gone'
          ? { state: 'unreachable', detail: 'Service ns/gone does not exist' }
          : { state: 'ready' },
      failOpen: new Map([['copy.example.io', 1]]),
    });
    assert.deepEqual(d.bypassed, ['pod-identity-webhook/pod-identity-webhook.example.io']);
    assert.equal(d.causes.length, 1);
    assert.match(
      d.causes[0] ?? '',
      /^copy\/copy\.example\.io intercepts the pod with failurePolicy Ignore and its webhook is unreachable: Service ns\/gone does not exist \(kube-apiserver failed open on it 1 time\(s\)\)/,
    );
  });

  it('names the admission version trap of a reachable webhook', async () => {
    const trap = config('trap', {
      failurePolicy: 'Ignore',
      admissionReviewVersions: ['v1', 'v1beta1'],
      objectSelector: { matchLabels: { scenario: 's1' } },
    });
    const d = await diagnoseAdmission({
      pod,
      namespaceLabels: {},
      configurations: [trap],
      endpointState: async () => ({ state: 'ready' }),
      webhookVersion: 'v0.6.17',
    });
    assert.match(d.causes[0] ?? '', /trap\/trap\.example\.io .* the admission version trap: .*\["v1","v1beta1"\]/);
  });

  it('finds no cause for a Fail webhook (a failing call would have refused the pod) or a healthy one', async () => {
    const fail = config('strict', {
      failurePolicy: 'Fail',
      clientConfig: { service: { namespace: 'ns', name: 'gone' } },
    });
    const healthy = config('healthy', { failurePolicy: 'Ignore' });
    const d = await diagnoseAdmission({
      pod: { metadata: { name: 'p', labels: {} } },
      namespaceLabels: {},
      configurations: [fail, healthy],
      endpointState: async (c) =>
        c.service?.name === 'gone' ? { state: 'unreachable', detail: 'missing' } : { state: 'ready' },
    });
    assert.equal(d.intercepting.length, 2);
    assert.deepEqual(d.causes, []);
  });
});
