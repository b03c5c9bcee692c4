/**
 * Interrupted runs clean up (issue 6): `bash tools/irsa conformance` is sent SIGINT during each
 * phase, and afterwards no process it started is alive, no port it opened listens, no temporary
 * directory of it remains (run directory, the embedded target's work directory), it exited 130,
 * and the environment holds none of the run's tagged or labelled resources.
 *
 * Phases and how each is hit deterministically:
 *   target start    owned target, on the progress line "embedded: etcd ready" (IRSA_VERBOSE):
 *                   kube-apiserver and the rest are still starting; and SIGTERM (exit 143) on
 *                   "embedded: kube-apiserver ready", while the second wave starts
 *   probes          attached warm environment, on the first ledger entry of scope "probe":
 *                   the capability probes are creating resources and waiting for a pod
 *   provisioning    attached, on the first ledger entry of scope "run" (the discovery bucket):
 *                   the identity provider and webhook registration are in flight
 *   mid-scenario    attached and owned, on the first scenario namespace in the ledger: the
 *                   scenario is creating its ServiceAccount and Deployment / waiting for the pod
 *   teardown        attached, IRSA_TEST_PAUSE_AT=teardown (test-only) holds the end-of-run
 *                   teardown until the signal arrives, with the run's resources still recorded
 *   forced exit     a second SIGINT: exits at once, names what it left; sweep removes it
 * None of them leaves a report file (no 0-byte junit.xml or rerun file), and none claims that
 * IRSA_KEEP_ON_FAILURE kept anything.
 * Attached runs share one warm environment (started here), which must survive every run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runSweep } from '../../support/cli/sweep.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';
import { binariesMissing } from '../support/binaries.ts';
import {
  APP_SCENARIO,
  deadPids,
  disposeRuns,
  INFRA_SCENARIO,
  type IrsaRun,
  leftoversOf,
  reportFiles,
  scenarioNamespace,
  startIrsa,
  startWarmEnvironment,
  taggedResourcesOf,
  type WarmEnvironment,
} from '../support/reliability-support.ts';

/**
 * `reports`: none, or (interrupted in the teardown, after the suite finished) the complete reports
 * of what ran.
 */
async function assertCleanAfterInterrupt(
  run: IrsaRun,
  warm?: WarmEnvironment,
  signal = 'SIGINT',
  reports: 'none' | 'complete' = 'none',
): Promise<void> {
  const result = await run.exited;
  const code = signal === 'SIGTERM' ? 143 : 130;
  assert.equal(
    result.code,
    code,
    `exit code ${code} after ${signal} (got ${result.code}, signal ${result.signal})\n${result.stderr.slice(-2000)}`,
  );
  assert.match(result.stderr, new RegExp(`${signal}: no new steps start; cleaning up`));
  // No half-written reports (issue 16): complete ones of what ran, or none; an interrupted run none.
  if (reports === 'none') assert.deepEqual(reportFiles(run.reportsDir), [], 'no report file of the interrupted run');
  else
    for (const f of ['cucumber.ndjson', 'junit.xml'])
      assert.ok(statSync(path.join(run.reportsDir, f)).size > 0, `${f} is complete`);
  assert.doesNotMatch(result.stderr, /kept for inspection/, 'nothing was kept (IRSA_KEEP_ON_FAILURE is off)');
  const left = await leftoversOf(run);
  assert.deepEqual(left, { processes: [], ports: [], tempDirs: [] }, 'nothing of the run is left');
  if (warm) {
    assert.ok(result.runId, 'the run printed its id');
    assert.deepEqual(await taggedResourcesOf(warm.descriptor, result.runId), [], "the run's resources are deleted");
    assert.deepEqual(deadPids(warm.pids), [], 'the attached environment keeps running');
  }
}

const missing = binariesMissing();

describe('interrupted runs', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 420_000,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'irsa-rel-interrupt-'));
  let warm: WarmEnvironment;
  const runs: IrsaRun[] = [];
  const irsa = (argv: string[], env: Record<string, string> = {}) => {
    const run = startIrsa(['conformance', ...argv], env);
    runs.push(run);
    return run;
  };
  // After the first flush an interrupted attached run waits for steps in flight, at most the apply
  // timeout: creates on the emulator take milliseconds, so 5 s keeps the bound without idling 15 s
  // while a step waits for a pod whose namespace the flush deleted.
  const attached = (argv: string[], env: Record<string, string> = {}) =>
    irsa(argv, { IRSA_ATTACH: warm.statePath, IRSA_APPLY_TIMEOUT: '5', ...env });

  before(async () => {
    warm = await startWarmEnvironment(dir);
  });

  after(async () => {
    await disposeRuns(runs, warm, dir);
  });

  it('during the start of its own target: the half-started target is stopped', async () => {
    const run = irsa(INFRA_SCENARIO, { IRSA_VERBOSE: 'true' });
    await run.waitForOutput(/embedded: etcd ready/);
    assert.ok(run.seen.size > 0, 'components were running when the signal was sent');
    run.signal('SIGINT');
    await assertCleanAfterInterrupt(run);
  });

  it('SIGTERM during the start of its own target: the same, exit 143', async () => {
    const run = irsa(INFRA_SCENARIO, { IRSA_VERBOSE: 'true' });
    await run.waitForOutput(/embedded: kube-apiserver ready/);
    run.signal('SIGTERM');
    await assertCleanAfterInterrupt(run, undefined, 'SIGTERM');
  });

  it('during the capability probes on an attached environment: nothing measured is kept', async () => {
    const run = attached(INFRA_SCENARIO);
    await run.waitForLedger((e) => e.scope === 'probe');
    run.signal('SIGINT');
    await assertCleanAfterInterrupt(run, warm);
    // The interrupt deleted the probe pod under the probe: kept, "cannot run pods" would make
    // every later run on the environment skip the pod scenarios.
    const state = JSON.parse(readFileSync(warm.statePath, 'utf8')) as { descriptor: TargetDescriptor };
    assert.equal(state.descriptor.capabilities, undefined, 'the next run measures the capabilities again');
  });

  it('while the infrastructure is provisioned on an attached environment', async () => {
    const run = attached(INFRA_SCENARIO);
    await run.waitForLedger((e) => e.scope === 'run');
    run.signal('SIGINT');
    await assertCleanAfterInterrupt(run, warm);
  });

  it('in the middle of a scenario on an attached environment', async () => {
    const run = attached(APP_SCENARIO);
    await run.waitForLedger(scenarioNamespace);
    run.signal('SIGINT');
    await assertCleanAfterInterrupt(run, warm);
  });

  it('in the middle of a scenario on its own target: the target is gone', async () => {
    const run = irsa(APP_SCENARIO);
    await run.waitForLedger(scenarioNamespace);
    run.signal('SIGINT');
    await assertCleanAfterInterrupt(run);
  });

  it('during the end-of-run teardown on an attached environment', async () => {
    const run = attached(INFRA_SCENARIO, { IRSA_TEST_PAUSE_AT: 'teardown' });
    await run.waitForOutput(/irsa-test: paused at teardown/);
    const recorded = run.ledgerEntries().filter((e) => e.scope === 'run');
    assert.ok(
      recorded.length >= 2,
      `the run's infrastructure is still to be deleted: ${recorded.map((e) => e.ref.kind)}`,
    );
    run.signal('SIGINT');
    // The suite had finished: its reports are complete.
    await assertCleanAfterInterrupt(run, warm, 'SIGINT', 'complete');
  });

  it('a second SIGINT exits at once and names what it left; sweep removes it', async () => {
    const run = attached(APP_SCENARIO);
    await run.waitForLedger(scenarioNamespace);
    run.signal('SIGINT');
    await run.waitForOutput(/cleaning up/);
    run.signal('SIGINT');
    const result = await run.exited;
    assert.equal(result.code, 130);
    assert.match(result.stderr, /forced exit; left behind: /);
    const left = await leftoversOf(run);
    assert.deepEqual(left, { processes: [], ports: [], tempDirs: [] }, 'no process or directory of the run is left');
    const runId = result.runId as string;
    const lines: string[] = [];
    assert.equal(
      await runSweep(['--attach', warm.statePath, '--run-id', runId], { env: {}, out: (l) => lines.push(l) }),
      0,
      lines.join('\n'),
    );
    assert.deepEqual(await taggedResourcesOf(warm.descriptor, runId), [], 'sweep removed what the forced exit left');
  });
});
