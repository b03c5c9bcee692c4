/**
 * The other commands obey the interrupt rules of a run (issue 16, item 6): sent SIGINT or SIGTERM
 * while they work, bench, selftest, `env up`, `env down` and sweep exit 130/143 (or by the signal,
 * which a shell reports the same way), and leave no process, no listening port, no temporary
 * directory (bench's irsa-bench-*), no state file and no verdict or summary they did not finish.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ensurePrivateDir, stateRootFor } from '../../support/paths.ts';
import { readWarmState } from '../../support/targets/warm-state.ts';
import { binariesMissing } from '../support/binaries.ts';
import {
  deadPids,
  descendants,
  disposeRuns,
  type IrsaRun,
  leftoversOf,
  type RunResult,
  startIrsa,
} from '../support/reliability-support.ts';

const missing = binariesMissing();

/** Exit 130/143 as the harness exits, or death by the signal itself (a shell reports 128+n either way). */
function interruptedBy(r: RunResult, signal: 'SIGINT' | 'SIGTERM'): boolean {
  return r.code === (signal === 'SIGTERM' ? 143 : 130) || r.signal === signal;
}

/** Resolves once a process below the run's harness has this base name as argv[0] (a component started). */
async function componentRunning(run: IrsaRun, name: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = descendants(run.child.pid as number).some((p) => path.basename(p.cmd.split(' ')[0] ?? '') === name);
    if (found) return;
    if (run.child.exitCode !== null || Date.now() > deadline)
      throw new Error(`no ${name} below the run\n${run.stderr().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function assertNothingLeft(run: IrsaRun): Promise<void> {
  run.record();
  assert.deepEqual(await leftoversOf(run), { processes: [], ports: [], tempDirs: [] }, 'nothing of it is left');
  assert.deepEqual(
    readdirSync(run.tmp).filter((d) => /^irsa-(bench|env|emb)/.test(d)),
    [],
    'no temporary directory of it is left',
  );
}

describe('other commands interrupted', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 600_000,
}, () => {
  const runs: IrsaRun[] = [];
  const servers: Server[] = [];
  const irsa = (argv: string[], env: Record<string, string> = {}, sameTmpAs?: IrsaRun) => {
    const run = startIrsa(argv, { IRSA_KUBE_NODE: 'kwok', ...env }, tmpdir(), sameTmpAs);
    runs.push(run);
    return run;
  };
  after(async () => {
    for (const s of servers) s.close();
    await disposeRuns(runs, undefined);
  });

  it('bench, SIGTERM during a suite run: exit 143, its irsa-bench-* directories gone, no figures', async () => {
    const run = irsa(['bench', '--runs', '1', '--skip', 'start,warm,tenants,other-node']);
    // The suite run (a child conformance process) has started its target.
    await componentRunning(run, 'kube-apiserver');
    run.signal('SIGTERM');
    const r = await run.exited;
    assert.ok(interruptedBy(r, 'SIGTERM'), `exit 143 (got ${r.code}, ${r.signal})\n${r.stderr.slice(-2000)}`);
    assert.match(r.stderr, /bench: SIGTERM: the suite run in progress cleans up/);
    await assertNothingLeft(run);
    const reports = existsSync(run.reportsDir) ? readdirSync(run.reportsDir, { recursive: true }) : [];
    assert.deepEqual(
      reports.filter((f) => String(f).includes('bench')),
      [],
      'no bench.json, no kept reports',
    );
  });

  it('env up, SIGINT while it starts: nothing of the environment is left, no state file', async () => {
    const run = irsa(['env', 'up']);
    await componentRunning(run, 'kube-apiserver');
    run.signal('SIGINT');
    const r = await run.exited;
    assert.ok(interruptedBy(r, 'SIGINT'), `exit 130 (got ${r.code}, ${r.signal})\n${r.stderr.slice(-2000)}`);
    await assertNothingLeft(run);
    assert.deepEqual(readdirSync(path.join(stateRootFor({ TMPDIR: run.tmp }), 'envs')), [], 'no warm state');
  });

  it('env down, SIGTERM while it stops: the stop finishes, then exit 143', async () => {
    const up = irsa(['env', 'up']);
    assert.equal((await up.exited).code, 0, up.stderr());
    const state = readWarmState(path.join(stateRootFor({ TMPDIR: up.tmp }), 'envs', 'warm.json'));
    const pids = (state.processes ?? []).map((p) => p.pid);
    const down = irsa(['env', 'down'], {}, up);
    // Once the stop is under way (a component is gone): the signal must not cut it short.
    for (let i = 0; i < 600 && deadPids(pids).length === 0 && down.child.exitCode === null; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    down.signal('SIGTERM');
    const r = await down.exited;
    assert.ok(
      interruptedBy(r, 'SIGTERM') || r.code === 0,
      `143 (or 0 when the stop was over first): ${r.code}\n${r.stderr}`,
    );
    await assertNothingLeft(up);
  });

  it('sweep, SIGINT while it waits on its target: exit 130 at once, saying so', async () => {
    // A warm environment's state whose endpoints accept connections and never answer.
    const hang = createServer(() => undefined).listen(0, '127.0.0.1');
    servers.push(hang);
    await new Promise((resolve) => hang.once('listening', resolve));
    const port = (hang.address() as { port: number }).port;
    const tmp = mkdtempSync(path.join(tmpdir(), 'irsa-rel-sweep-'));
    const envs = ensurePrivateDir(path.join(stateRootFor({ TMPDIR: tmp }), 'envs'), stateRootFor({ TMPDIR: tmp }));
    const kubeconfig = path.join(envs, 'admin.kubeconfig');
    writeFileSync(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}"}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
      { mode: 0o600 },
    );
    writeFileSync(
      path.join(envs, 'warm.json'),
      JSON.stringify({
        envId: 'envhang',
        processes: [{ name: 'x', pid: process.pid, command: process.execPath }],
        descriptor: {
          name: 'embedded',
          kubeconfigPath: kubeconfig,
          aws: {
            region: 'us-east-1',
            endpoint: `https://127.0.0.1:${port}`,
            forcePathStyle: true,
            credentials: { accessKeyId: 'AKIAIRSATESTHANGING1', secretAccessKey: 'hanging-hanging-hanging-hanging' },
            accountId: '123456789012',
          },
        },
      }),
      { mode: 0o600 },
    );
    try {
      const run = startIrsa(['sweep', '--dry-run'], { TMPDIR: tmp, AWS_EC2_METADATA_DISABLED: 'true' });
      runs.push(run);
      await run.waitForOutput(/nothing left on this machine by killed runs/);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const sent = Date.now();
      run.signal('SIGINT');
      const r = await run.exited;
      assert.equal(r.code, 130, `${r.stdout}\n${r.stderr}`);
      assert.ok(Date.now() - sent < 10_000, 'it stopped at once');
      assert.match(r.stdout, /sweep: SIGINT: stopped; run it again/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('selftest, SIGTERM during a fault’s run: exit 143, no verdict, no summary, nothing left', async () => {
    const run = irsa(['selftest', '--only', '01']);
    await componentRunning(run, 'kube-apiserver');
    // The fault's run is under way on the shared environment.
    await run.waitForOutput(/selftest: 01-[a-z-]+: running/);
    run.signal('SIGTERM');
    const r = await run.exited;
    assert.ok(interruptedBy(r, 'SIGTERM'), `exit 143 (got ${r.code}, ${r.signal})\n${r.stderr.slice(-2000)}`);
    assert.match(r.stdout, /selftest: interrupted; no verdict, no summary written/);
    assert.doesNotMatch(r.stdout, /faults caught/);
    await assertNothingLeft(run);
  });
});
