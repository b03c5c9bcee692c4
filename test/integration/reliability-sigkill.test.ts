/**
 * A harness killed outright (issue 16, item 2): `bash tools/irsa conformance` is sent SIGKILL (no
 * exit handler, no signal handler runs) in three phases, and
 *   - at once nothing of it runs: no process it started is alive and no port it opened listens
 *     (every component of its own target dies with it by the parent-death signal; a real node's
 *     watcher stops the node);
 *   - what it left on disk (its run directory with the emulator's admin credentials, the target's
 *     work directory) and on a warm environment it was attached to (its tagged resources) is
 *     found by `npm run sweep` (the run's process is gone, so the run is no longer in progress),
 *     which removes it and exits 0; afterwards nothing of the run is left anywhere.
 * Phases: its own target starting (kwok), a scenario on its own target (the default node: a real
 * one where it can run), a scenario on an attached warm environment.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { binariesMissing } from '../support/binaries.ts';
import {
  APP_SCENARIO,
  deadPids,
  disposeRuns,
  INFRA_SCENARIO,
  type IrsaRun,
  leftoversOf,
  scenarioNamespace,
  startIrsa,
  startWarmEnvironment,
  taggedResourcesOf,
  type WarmEnvironment,
} from '../support/reliability-support.ts';

const missing = binariesMissing();

describe('a harness killed with SIGKILL', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 600_000,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'irsa-rel-sigkill-'));
  let warm: WarmEnvironment;
  const runs: IrsaRun[] = [];
  const irsa = (argv: string[], env: Record<string, string> = {}, sameTmpAs?: IrsaRun) => {
    const run = startIrsa(argv, env, tmpdir(), sameTmpAs);
    runs.push(run);
    return run;
  };

  before(async () => {
    warm = await startWarmEnvironment(dir);
  });

  after(async () => {
    await disposeRuns(runs, warm, dir);
  });

  /** SIGKILL now; nothing may run afterwards, and what is on disk is the sweep's. Returns the run id. */
  async function kill(run: IrsaRun): Promise<string> {
    const runId = run.runId();
    assert.ok(runId, 'the run printed its id');
    run.signal('SIGKILL');
    const result = await run.exited;
    assert.equal(result.signal, 'SIGKILL');
    // The kernel delivers the parent-death signal at once; the real node's watcher polls once a
    // second, then stops the node and deletes its work directory (containerd's unpacked images):
    // seconds on a quiet machine, more than 10 s at a load average of 12 on 2 cores (seen twice).
    const left = await leftoversOf(run, 30_000);
    assert.deepEqual(
      { processes: left.processes, ports: left.ports },
      { processes: [], ports: [] },
      'nothing of the killed run runs',
    );
    assert.ok(left.tempDirs.length > 0, 'its run directory is left for the sweep (no handler ran)');
    return runId;
  }

  async function sweepAfter(run: IrsaRun, argv: string[] = []): Promise<string> {
    const sweep = irsa(['sweep', ...argv], {}, run);
    const result = await sweep.exited;
    assert.equal(result.code, 0, `sweep exits 0\n${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /removed run directory .* \(its process \d+ is gone\)/, result.stdout);
    assert.deepEqual(await leftoversOf(run), { processes: [], ports: [], tempDirs: [] }, 'the sweep left nothing');
    return result.stdout;
  }

  it('while its own target starts: the components die with it, sweep removes the directories', async () => {
    const run = irsa(['conformance', ...INFRA_SCENARIO], { IRSA_VERBOSE: 'true', IRSA_KUBE_NODE: 'kwok' });
    await run.waitForOutput(/embedded: kube-apiserver ready/);
    await kill(run);
    const out = await sweepAfter(run);
    assert.match(out, /removed work directory .*irsa-env/, 'the target’s work directory (keys) is removed');
  });

  it('in a scenario on its own target (a real node where one can run): the same', async () => {
    const run = irsa(['conformance', ...APP_SCENARIO]);
    await run.waitForLedger(scenarioNamespace);
    await kill(run);
    await sweepAfter(run);
  });

  it('in a scenario on a warm environment: sweep deletes what the run created there', async () => {
    const run = irsa(['conformance', ...APP_SCENARIO], { IRSA_ATTACH: warm.statePath });
    await run.waitForLedger(scenarioNamespace);
    const runId = await kill(run);
    assert.notDeepEqual(
      await taggedResourcesOf(warm.descriptor, runId, { waitForNamespaces: false }),
      [],
      'the run left resources on the environment',
    );
    const out = await sweepAfter(run, ['--attach', warm.statePath]);
    assert.match(out, /swept \d+ resource\(s\), 0 failed/, out);
    assert.deepEqual(await taggedResourcesOf(warm.descriptor, runId), [], 'nothing of the run is left on it');
    assert.deepEqual(deadPids(warm.pids), [], 'the environment keeps running');
  });
});
