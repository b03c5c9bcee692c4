/**
 * What the reports are made of, in process: the capability matrix attachment, a skipped step's
 * reason in JUnit, the webhook's and the emulator's lines for a scenario, events and skipped
 * scenarios. The live target's webhook pods (a fake API) and a failed scenario on a real
 * environment are test/integration/reports.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Envelope } from '@cucumber/messages';
import { formatSkipped } from '../../support/cli/conformance.ts';
import { emulatorLinesFor, formatEvents, webhookLinesFor } from '../../support/diagnose/scenario.ts';
import { withCapabilityMatrix } from '../../support/formatters/html.ts';
import { skippedWithMessages, withSkipReasons } from '../../support/formatters/junit.ts';
import { CAPABILITIES_HOOK } from '../../support/outcomes.ts';

describe('what the reports are made of', () => {
  it('the capability matrix is attached under the first run of its test-run hook', () => {
    const t = withCapabilityMatrix(() => 'Capabilities of the embedded target: …');
    const out = [
      { hook: { id: 'h1', name: CAPABILITIES_HOOK, sourceReference: {} } },
      { testRunHookStarted: { id: 'r1', hookId: 'h1', testRunStartedId: 't', timestamp: { seconds: 1, nanos: 0 } } },
      { testRunHookStarted: { id: 'r2', hookId: 'h1', testRunStartedId: 't', timestamp: { seconds: 2, nanos: 0 } } },
    ].flatMap((e) => t(e as Envelope));
    const attachments = out.filter((e) => e.attachment).map((e) => e.attachment);
    assert.equal(attachments.length, 1, 'once, not once per worker');
    assert.equal(attachments[0]?.testRunHookStartedId, 'r1');
    assert.equal(attachments[0]?.fileName, 'capabilities.txt');
  });

  it("a skipped step's result carries the reason, and JUnit's <skipped> gets it as message", () => {
    const t = withSkipReasons();
    t({ attachment: { testCaseStartedId: 'c', testStepId: 'hook', body: 'Skipped: the target lacks x' } } as Envelope);
    const f = t({
      testStepFinished: {
        testCaseStartedId: 'c',
        testStepId: 'step',
        testStepResult: { status: 'SKIPPED', duration: { seconds: 0, nanos: 0 } },
        timestamp: { seconds: 0, nanos: 0 },
      },
    } as Envelope);
    assert.equal(f.testStepFinished?.testStepResult.message, 'the target lacks x');
    assert.equal(
      skippedWithMessages('<skipped>\n  <![CDATA[lacks "x" & <y>]]>\n</skipped>'),
      '<skipped message="lacks &quot;x&quot; &amp; &lt;y&gt;">\n  <![CDATA[lacks "x" & <y>]]>\n</skipped>',
    );
  });

  it("the webhook's lines for the scenario's namespaces, and the emulator's for its calls", () => {
    const webhook = [
      'I1206 16:57:00.259230 1 handler.go:569] Pod was mutated. Pod=a, ServiceAccount=s, Namespace=ns-mine',
      'I1206 16:57:00.288622 1 handler.go:569] Pod was mutated. Pod=b, ServiceAccount=s, Namespace=ns-other',
    ].join('\n');
    assert.deepEqual(webhookLinesFor(webhook, ['ns-mine']), [webhook.split('\n')[0]]);
    const moto = [
      '[moto] 2026-12-06T16:56:00.000Z PUT /bucket-mine/ 200 AKIAADMIN s3:PUT',
      '[moto] 2026-12-06T16:57:00.100Z PUT /bucket-mine/ 200 AKIAADMIN s3:PUT',
      '[moto] 2026-12-06T16:57:00.200Z PUT /bucket-other/ 200 AKIAADMIN s3:PUT',
      '[moto] AssumeRoleWithWebIdentity arn:aws:iam::1:role/role-mine: sub x allowed by S',
      '[moto] 2026-12-06T16:57:00.300Z POST / 200 anonymous sts:AssumeRoleWithWebIdentity RoleArn=arn:aws:iam::1:role/role-mine RoleSessionName=s -> ASIAMINE',
      '[moto] 2026-12-06T16:57:00.400Z PUT /someone-elses/x 200 ASIAMINE s3:PUT',
      '[moto] 2026-12-06T16:57:00.500Z PUT /someone-elses/y 200 ASIAOTHER s3:PUT',
    ];
    const lines = emulatorLinesFor(moto.join('\n'), new Date('2026-12-06T16:57:00.000Z'), ['bucket-mine', 'role-mine']);
    assert.deepEqual(lines, [moto[1], moto[3], moto[4], moto[5]], 'its window, its names and its session, no other');
  });

  it('events and skipped scenarios, one line each', () => {
    const events = formatEvents([
      {
        involvedObject: { kind: 'Pod', name: 'p' },
        reason: 'Failed',
        type: 'Warning',
        message: 'pulling image "x": denied',
        count: 3,
        lastTimestamp: new Date('2026-12-06T16:57:02Z'),
        metadata: {},
      },
      {
        involvedObject: { kind: 'Pod', name: 'p' },
        reason: 'Scheduled',
        type: 'Normal',
        message: 'assigned',
        lastTimestamp: new Date('2026-12-06T16:57:01Z'),
        metadata: {},
      },
    ]).split('\n');
    assert.match(events[0] ?? '', /^16:57:01 Normal +Scheduled +Pod\/p: assigned$/);
    assert.match(events[1] ?? '', /^16:57:02 Warning +Failed +Pod\/p: pulling image "x": denied \(x3\)$/);
    assert.equal(
      formatSkipped([
        { name: 'A', uri: 'features/a.feature', line: 7, status: 'SKIPPED', skipReason: 'the target lacks x' },
      ]),
      'Skipped (1):\n  features/a.feature:7  A\n      the target lacks x',
    );
  });
});
