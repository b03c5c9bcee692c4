/**
 * The suite in the China partition (issue 15, item 6): on the embedded target started in
 * cn-north-1, the infrastructure and application features pass, and every ARN the harness built
 * (policies, trust policies, simulations, probes) is an arn:aws-cn: one. The only arn:aws: left in
 * the messages is the literal one feature 03 gives a pod, which is not selected here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { readMessages, scenarioOutcomes } from '../../support/outcomes.ts';
import { binariesMissing } from '../support/binaries.ts';
import { disposeRuns, type IrsaRun, startIrsa } from '../support/reliability-support.ts';

const missing = binariesMissing();

describe('the suite in aws-cn', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 300_000,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'irsa-partition-run-'));
  const runs: IrsaRun[] = [];
  after(async () => disposeRuns(runs, undefined, dir));

  it('passes, with every ARN in the partition', async () => {
    const run = startIrsa(['conformance', 'features/01-infrastructure.feature', 'features/02-application.feature'], {
      IRSA_REGION: 'cn-north-1',
    });
    runs.push(run);
    const r = await run.exited;
    const ndjson = path.join(run.reportsDir, 'cucumber.ndjson');
    const failed = scenarioOutcomes(readMessages(ndjson)).filter((s) => s.status !== 'PASSED');
    assert.deepEqual(
      failed.map((s) => `${s.name}: ${s.status} ${s.message?.split('\n')[0] ?? ''}`),
      [],
    );
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const text = readFileSync(ndjson, 'utf8');
    assert.match(text, /arn:aws-cn:iam::\d{12}:role\//, 'role ARNs in the partition');
    assert.match(text, /arn:aws-cn:sts::\d{12}:assumed-role\//, 'sessions in the partition');
    assert.doesNotMatch(text, /arn:aws:/, 'no ARN of the aws partition');
  });
});
