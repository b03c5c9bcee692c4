/**
 * Finished runs clean up (issue 6): after a passing run, a run whose check fails, and a run whose
 * provisioning fails half-way (a broken setup description), on an attached warm environment, no
 * process of the run is alive, no port it opened listens, no temporary directory remains, and the
 * environment holds none of the run's tagged or labelled resources; the environment keeps running.
 * With IRSA_KEEP_ON_FAILURE the failed scenario's resources stay (and only those), the run says how
 * to remove them, and sweep does. Exit codes: 0 passed, 1 a check failed.
 * Two runs at once on one warm environment: the second is refused at once, exit 2 "environment
 * busy"; a lock left by a killed run is taken over (issue 16, item 7).
 * Runs are narrowed with --name (cucumber merges explicit feature paths with the configured ones).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runSweep } from '../../support/cli/sweep.ts';
import { repoRoot } from '../../support/paths.ts';
import { binariesMissing } from '../support/binaries.ts';
import {
  deadPids,
  disposeRuns,
  type IrsaRun,
  leftoversOf,
  reportFiles,
  startIrsa,
  startWarmEnvironment,
  taggedResourcesOf,
  type WarmEnvironment,
} from '../support/reliability-support.ts';

const FAILING_SCENARIO = 'A check fails after the team created its resources';
const FAILING_FEATURE = `Feature: A failing check (test/integration/reliability-runs.test.ts)
  Scenario: ${FAILING_SCENARIO}
    Given the infrastructure team has set up IRSA for the cluster as the setup description says
    And team "sample" has an app bucket, a least-privilege policy and a role trusted by its ServiceAccount "s3-manager"
    Then the identity provider lists the client ID "not-the-audience-of-any-token"
`;

const missing = binariesMissing();

describe('finished runs', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 300_000,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'irsa-rel-runs-'));
  let warm: WarmEnvironment;
  let failingFeature: string;
  const runs: IrsaRun[] = [];
  const attached = (argv: string[], env: Record<string, string> = {}) => {
    const run = startIrsa(['conformance', ...argv], { IRSA_ATTACH: warm.statePath, ...env });
    runs.push(run);
    return run;
  };

  before(async () => {
    failingFeature = path.join(dir, 'failing.feature');
    writeFileSync(failingFeature, FAILING_FEATURE);
    warm = await startWarmEnvironment(dir);
  });

  after(async () => {
    await disposeRuns(runs, warm, dir);
  });

  async function assertClean(run: IrsaRun, exitCode: number): Promise<string> {
    const result = await run.exited;
    assert.equal(result.code, exitCode, `exit code ${exitCode} (got ${result.code})\n${result.stderr.slice(-2500)}`);
    assert.deepEqual(await leftoversOf(run), { processes: [], ports: [], tempDirs: [] }, 'nothing of the run is left');
    assert.ok(result.runId, 'the run printed its id');
    assert.deepEqual(deadPids(warm.pids), [], 'the attached environment keeps running');
    return result.runId;
  }

  it('a passing run deletes everything it created', async () => {
    const run = attached(['--name', 'The discovery document has the fields STS reads']);
    const runId = await assertClean(run, 0);
    assert.ok(run.ledgerEntries().length === 0, 'the run directory (and its ledger) is gone');
    assert.match(run.stderr(), /1 passed, 0 failed/);
    assert.deepEqual(await taggedResourcesOf(warm.descriptor, runId), []);
    // The reports, complete: published when the suite finished (support/reports.ts).
    for (const f of ['cucumber.html', 'cucumber.ndjson', 'junit.xml'])
      assert.ok(statSync(path.join(run.reportsDir, f)).size > 0, `${f} is written`);
    assert.match(readFileSync(path.join(run.reportsDir, 'junit.xml'), 'utf8'), /<testsuite[^>]*tests="1"/);
    assert.deepEqual(
      reportFiles(run.reportsDir).filter((f) => f.endsWith('.partial')),
      [],
      'nothing half-written',
    );
  });

  it('a run with a failing check deletes everything it created and exits 1', async () => {
    const run = attached([failingFeature, '--name', FAILING_SCENARIO]);
    const runId = await assertClean(run, 1);
    assert.match(run.stderr(), /0 passed, 1 failed/);
    assert.deepEqual(await taggedResourcesOf(warm.descriptor, runId), []);
  });

  it('a run whose provisioning fails half-way (broken setup) deletes what was created before the failure', async () => {
    // The webhook configuration is refused by the API server (invalid sideEffects), after the
    // discovery bucket and the identity provider were created.
    const broken = path.join(dir, 'broken-setup');
    mkdirSync(broken);
    writeFileSync(
      path.join(broken, 'setup.yaml'),
      `extends: ${path.join(repoRoot, 'fixtures/setups/default')}\ndescription: invalid webhook configuration\n`,
    );
    cpSync(
      path.join(repoRoot, 'fixtures/setups/default/mutating-webhook-configuration.yaml'),
      path.join(broken, 'mutating-webhook-configuration.yaml'),
    );
    const file = path.join(broken, 'mutating-webhook-configuration.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('sideEffects: None', 'sideEffects: Sometimes'));
    const run = attached(['--name', 'The discovery document has the fields STS reads'], { IRSA_SETUP: broken });
    const runId = await assertClean(run, 1);
    assert.match(run.stderr(), /0 passed, 1 failed/);
    assert.match(run.stdout(), /sideEffects/, 'it failed where the setup is broken');
    assert.deepEqual(await taggedResourcesOf(warm.descriptor, runId), []);
  });

  it('two runs at once on one warm environment: one runs, the other is refused at once, exit 2 "environment busy"', async (t) => {
    const scenario = ['--name', 'The discovery document has the fields STS reads'];
    const both = [attached(scenario), attached(scenario)];
    const results = await Promise.all(both.map((r) => r.exited));
    assert.deepEqual(
      results.map((r) => r.code).sort(),
      [0, 2],
      results.map((r) => r.stderr.slice(-1500)).join('\n----\n'),
    );
    const refused = results.find((r) => r.code === 2) as (typeof results)[number];
    const ran = results.find((r) => r.code === 0) as (typeof results)[number];
    t.diagnostic(`refused after ${refused.seconds.toFixed(1)} s; the other run took ${ran.seconds.toFixed(1)} s`);
    const causes = refused.stderr.split('\n').filter((l) => l.startsWith('irsa: '));
    assert.equal(causes.length, 1, refused.stderr);
    assert.match(
      causes[0] as string,
      /^irsa: environment busy: another run \(process \d+, since .*\) uses the warm environment/,
    );
    assert.ok(refused.seconds < ran.seconds, 'refused before the other run was over');
    for (const r of both) assert.deepEqual(await leftoversOf(r), { processes: [], ports: [], tempDirs: [] });
    for (const r of results) assert.deepEqual(await taggedResourcesOf(warm.descriptor, r.runId as string), []);
    assert.equal(existsSync(`${warm.statePath}.lock`), false, 'the lock is released');
  });

  it('a lock left by a run that was killed is taken over', async () => {
    const gone = spawnSync('true');
    writeFileSync(
      `${warm.statePath}.lock`,
      JSON.stringify({ pid: gone.pid, start: '1', since: new Date().toISOString() }),
      { mode: 0o600 },
    );
    const run = attached(['--name', 'The discovery document has the fields STS reads']);
    await assertClean(run, 0);
    assert.equal(existsSync(`${warm.statePath}.lock`), false, 'the lock is released');
  });

  it('IRSA_KEEP_ON_FAILURE keeps the failed scenario’s resources, says how to remove them, and sweep does', async () => {
    const run = attached([failingFeature, '--name', FAILING_SCENARIO], { IRSA_KEEP_ON_FAILURE: 'true' });
    const result = await run.exited;
    assert.equal(result.code, 1, result.stderr.slice(-2000));
    const runId = result.runId as string;
    assert.match(result.stderr, new RegExp(`kept for inspection .*sweep -- --run-id ${runId}`));
    const kept = await taggedResourcesOf(warm.descriptor, runId);
    assert.ok(
      kept.some((k) => k.startsWith('IAM role')),
      `the scenario's role is kept: ${kept.join(', ')}`,
    );
    assert.ok(
      !kept.some((k) => k.startsWith('IAM OIDC provider')),
      `the run's infrastructure is not: ${kept.join(', ')}`,
    );
    assert.deepEqual(await leftoversOf(run), { processes: [], ports: [], tempDirs: [] });
    const lines: string[] = [];
    assert.equal(
      await runSweep(['--attach', warm.statePath, '--run-id', runId], { env: {}, out: (l) => lines.push(l) }),
      0,
    );
    assert.deepEqual(await taggedResourcesOf(warm.descriptor, runId), [], lines.join('\n'));
  });
});
