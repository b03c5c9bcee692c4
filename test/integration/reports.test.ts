/**
 * Reports a person reads (issue 15, item 8): every attachment has a file name that says what it
 * is; a failed step carries its diagnosis itself (not a collapsed hook): the pod, the namespace's
 * events, the webhook's log lines for that pod and the emulator's lines for the AWS calls the
 * scenario made; the capability matrix is in the HTML report; JUnit skipped cases carry the reason
 * (test/integration/docker-capability-skip.test.ts runs that end to end, with the terminal's skipped list).
 * The cases that need no child process or listener are test/unit/reports.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClients } from '../../support/clients.ts';
import { collectDiagnostics, type ScenarioEvidence } from '../../support/diagnose/scenario.ts';
import { readMessages } from '../../support/outcomes.ts';
import { repoRoot } from '../../support/paths.ts';
import { binariesMissing } from '../support/binaries.ts';
import { FakeKubeApi, fakeLiveDescriptor } from '../support/live-fake-kube.ts';
import { disposeRuns, type IrsaRun, startIrsa } from '../support/reliability-support.ts';

describe("on the live target, the webhook's pods", () => {
  let api: FakeKubeApi;
  before(async () => {
    const ns = 'openshift-cloud-credential-operator';
    api = await FakeKubeApi.start({
      'GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pod-identity-webhook': {
        body: {
          webhooks: [
            {
              name: 'pod-identity-webhook.amazonaws.com',
              clientConfig: { service: { namespace: ns, name: 'pod-identity-webhook' } },
            },
          ],
        },
      },
      [`GET /api/v1/namespaces/${ns}/services/pod-identity-webhook`]: {
        body: { spec: { selector: { app: 'pod-identity-webhook' } } },
      },
      [`GET /api/v1/namespaces/${ns}/pods`]: { body: { items: [{ metadata: { name: 'pod-identity-webhook-1' } }] } },
      [`GET /api/v1/namespaces/${ns}/pods/pod-identity-webhook-1/log`]: {
        contentType: 'text/plain',
        body: 'I1206 handler.go:569] Pod was mutated. Pod=app-x, ServiceAccount=sa, Namespace=team-a\nI1206 handler.go:569] Pod was mutated. Pod=y, ServiceAccount=sa, Namespace=team-b\n',
      },
      'GET /api/v1/namespaces/team-a/events': {
        body: {
          items: [
            {
              involvedObject: { kind: 'Pod', name: 'app-x' },
              reason: 'Pulled',
              type: 'Normal',
              message: 'ok',
              metadata: {},
            },
          ],
        },
      },
    });
  });
  after(async () => api.stop());

  it("a failed scenario gets their lines about its namespace, and its namespace's events", async () => {
    const clients = createClients(
      fakeLiveDescriptor(api.kubeconfigPath, {
        webhook: { mode: 'existing', configurationName: 'pod-identity-webhook' },
      }),
    );
    try {
      const world = {
        clients,
        state: {
          target: { name: 'live', logs: {}, webhook: { mode: 'existing', configurationName: 'pod-identity-webhook' } },
        },
        tenants: new Map([['a', { namespace: 'team-a', appBucket: 'b', roleName: 'r', policyName: 'p' }]]),
        pods: new Map(),
        tokens: new Map(),
        buckets: new Map(),
        startedAt: new Date(Date.now() - 5000),
      } as unknown as ScenarioEvidence;
      const d = await collectDiagnostics(world);
      const webhook = d.find((x) => x.fileName === 'pod-identity-webhook log (this scenario).txt');
      assert.match(
        webhook?.body ?? '',
        /^# from pods pod-identity-webhook-1 of Service openshift-cloud-credential-operator\/pod-identity-webhook\n.*Namespace=team-a$/,
      );
      assert.doesNotMatch(webhook?.body ?? '', /team-b/);
      assert.match(d.find((x) => x.fileName === 'events in team-a.txt')?.body ?? '', /Pod\/app-x: ok/);
      const logRequest = api.requests.find((q) => q.path.endsWith('/log'));
      assert.ok(Number(logRequest?.query.get('sinceSeconds')) >= 5, 'only the lines since the scenario started');
    } finally {
      clients.destroy();
    }
  });
});

const missing = binariesMissing();

describe('a failed scenario in the reports', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 300_000,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'irsa-reports-'));
  const runs: IrsaRun[] = [];
  after(async () => disposeRuns(runs, undefined, dir));

  it('the failed step carries the pod, the events, its webhook lines and its AWS calls; every attachment is named', async () => {
    const run = startIrsa(['conformance', '--name', 'Writing to another bucket is denied'], {
      IRSA_SETUP: path.join(repoRoot, 'fixtures/faults/01-permission-put-anywhere'),
    });
    runs.push(run);
    const r = await run.exited;
    assert.equal(r.code, 1, r.stderr.slice(-1500));
    const messages = readMessages(path.join(run.reportsDir, 'cucumber.ndjson'));
    const attachments = messages.flatMap((m) => (m.attachment ? [m.attachment] : []));
    assert.deepEqual(
      attachments
        .filter((a) => !a.fileName && a.mediaType !== 'text/x.cucumber.log+plain')
        .map((a) => a.body.slice(0, 80)),
      [],
      'every attachment has a file name',
    );
    const failedStep = messages.find((m) => m.testStepFinished?.testStepResult.status === 'FAILED')?.testStepFinished;
    assert.ok(failedStep);
    const onIt = attachments.filter((a) => a.testStepId === failedStep.testStepId);
    const named = (re: RegExp) => onIt.find((a) => re.test(a.fileName ?? ''));
    assert.ok(named(/^pod sample-iam-webhook-app-[^/]+\/sample-app-[a-z0-9-]+\.yaml$/), 'the pod');
    assert.ok(named(/^last command in the pod of team sample\.txt$/));
    const events = named(/^events in sample-iam-webhook-app-.*\.txt$/);
    assert.match(events?.body ?? '', /Normal +Scheduled +Pod\/sample-app-/);
    const webhook = named(/^pod-identity-webhook log \(this scenario\)\.txt$/);
    assert.match(webhook?.body ?? '', /Pod was mutated\. Pod=sample-app-.*Namespace=sample-iam-webhook-app-/);
    const moto = named(/^moto log \(this scenario's calls\)\.txt$/);
    // The fault lets the role write anywhere: the emulator's log shows the write with its session.
    const session = /sts:AssumeRoleWithWebIdentity RoleArn=\S+ocp-iam-role-\S+ RoleSessionName=\S+ -> (ASIA\w+)/.exec(
      moto?.body ?? '',
    );
    assert.ok(session, `the web-identity exchange of the scenario's role:\n${moto?.body}`);
    assert.match(
      moto?.body ?? '',
      new RegExp(`PUT /ocp-iam-other-not-ours-\\S+/ocp-validation\\.txt 200 ${session[1]} `),
    );
    const hookIds = new Set(
      messages.flatMap((m) => (m.testCase ? m.testCase.testSteps.filter((s) => s.hookId).map((s) => s.id) : [])),
    );
    assert.deepEqual(
      attachments.filter((a) => a.testStepId && hookIds.has(a.testStepId)).map((a) => a.fileName),
      [],
      'nothing is hidden under a hook',
    );
  });
});
