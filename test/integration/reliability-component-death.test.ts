/**
 * A component of the run's own embedded target dies mid-run (issue 16, item 1): each component is
 * sent SIGKILL while the application feature's first scenario runs, and
 *   - the run exits 1 within 30 s of the death;
 *   - its last line names the component and how it ended ("killed by SIGKILL"), and a failed step
 *     says the same with the component's last log lines (the step in flight fails with it, the
 *     scenarios after it are not started);
 *   - nothing of the run is left: no process, no port, no run directory (the emulator's admin
 *     credentials), no work directory.
 * Components: moto, the pod identity webhook, kube-apiserver, etcd and kwok on the kwok node;
 * containerd and the kubelet on a real node (skipped where none can run). Two runs at a time.
 * And a component of a warm environment a run is attached to (`npm run env -- up`): the run names
 * it and says the environment must be replaced.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { readMessages, scenarioOutcomes } from '../../support/outcomes.ts';
import { chooseKubeNode } from '../../support/targets/embedded/real-node.ts';
import { readWarmState } from '../../support/targets/warm-state.ts';
import { binariesMissing } from '../support/binaries.ts';
import {
  descendants,
  disposeRuns,
  type IrsaRun,
  leftoversOf,
  limited,
  scenarioNamespace,
  startIrsa,
} from '../support/reliability-support.ts';

interface Case {
  component: string;
  /** How the component's process is recognised (argv[0]'s base name, or a script in its command line). */
  matches: (cmd: string) => boolean;
  node: 'kwok' | 'kubelet';
}

const argv0 = (name: string) => (cmd: string) => path.basename(cmd.split(' ')[0] ?? '') === name;
const CASES: Case[] = [
  { component: 'moto', matches: (cmd) => cmd.includes('tools/moto/launcher.py'), node: 'kwok' },
  { component: 'pod-identity-webhook', matches: argv0('amazon-eks-pod-identity-webhook'), node: 'kwok' },
  { component: 'kube-apiserver', matches: argv0('kube-apiserver'), node: 'kwok' },
  { component: 'etcd', matches: argv0('etcd'), node: 'kwok' },
  { component: 'kwok', matches: argv0('kwok'), node: 'kwok' },
  { component: 'containerd', matches: argv0('containerd'), node: 'kubelet' },
  { component: 'kubelet', matches: argv0('kubelet'), node: 'kubelet' },
];

const missing = binariesMissing();
const noRealNode = chooseKubeNode('auto').why;

describe('a component of the run’s own target dies mid-run', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 900_000,
}, () => {
  const runs: IrsaRun[] = [];
  after(async () => {
    await Promise.allSettled(results.values());
    await disposeRuns(runs, undefined);
  });

  type Outcome = { run: IrsaRun; code: number | null; stderr: string; secondsAfterDeath: number };
  const results = new Map<string, Promise<Outcome>>();
  // Two runs at a time: each starts a whole target, CPU-bound on two cores.
  const turn = limited(2);
  const schedule = (c: Case) =>
    results.set(
      c.component,
      turn(async () => {
        const run = startIrsa(['conformance', 'features/02-application.feature'], { IRSA_KUBE_NODE: c.node });
        runs.push(run);
        await run.waitForLedger(scenarioNamespace);
        const victim = descendants(run.child.pid as number).find((p) => c.matches(p.cmd));
        assert.ok(victim, `a ${c.component} process runs below the harness`);
        run.record();
        process.kill(victim.pid, 'SIGKILL');
        const killedAt = Date.now();
        const r = await run.exited;
        return { run, code: r.code, stderr: r.stderr, secondsAfterDeath: (Date.now() - killedAt) / 1000 };
      }),
    );

  it('a component of an attached warm environment: the run names it, exits 1 within 30 s, and says what to do', async (t) => {
    // A warm environment as `npm run env -- up` starts it: it outlives its starter, so nothing but
    // the killed component goes.
    const up = startIrsa(['env', 'up'], { IRSA_KUBE_NODE: 'kwok' });
    runs.push(up);
    const started = await up.exited;
    assert.equal(started.code, 0, started.stderr);
    const statePath = /IRSA_ATTACH=(\S+)/.exec(started.stdout)?.[1] as string;
    const state = readWarmState(statePath);
    try {
      const run = startIrsa(
        ['conformance', 'features/02-application.feature'],
        { IRSA_ATTACH: statePath },
        tmpdir(),
        up,
      );
      runs.push(run);
      await run.waitForLedger(scenarioNamespace);
      const webhook = (state.processes ?? []).find((p) => p.name === 'pod-identity-webhook');
      assert.ok(webhook, 'the environment has a webhook');
      process.kill(webhook.pid, 'SIGKILL');
      const killedAt = Date.now();
      const r = await run.exited;
      const seconds = (Date.now() - killedAt) / 1000;
      t.diagnostic(`exit ${r.code} ${seconds.toFixed(1)} s after the webhook was killed`);
      assert.equal(r.code, 1, r.stderr.slice(-2500));
      assert.ok(seconds < 30, `the run ended ${seconds.toFixed(1)} s after the death`);
      assert.match(r.stderr, /^irsa: pod-identity-webhook of the warm environment died during the run/m);
      assert.match(r.stderr, /the warm environment is broken: stop it with `npm run env -- down`/);
      assert.deepEqual(
        (await leftoversOf(run)).tempDirs.filter((d) => d.includes(run.runId() as string)),
        [],
      );
    } finally {
      const down = startIrsa(['env', 'down'], {}, tmpdir(), up);
      runs.push(down);
      assert.equal((await down.exited).code, 0);
    }
    assert.deepEqual(await leftoversOf(up), { processes: [], ports: [], tempDirs: [] }, 'env down left nothing');
  });

  for (const c of CASES) {
    const skip = c.node === 'kubelet' && noRealNode ? `no real node here: ${noRealNode}` : false;
    it(`${c.component}: the run says so, exits 1 within 30 s and leaves nothing`, { skip }, async (t) => {
      if (results.size === 0) for (const x of CASES) if (!(x.node === 'kubelet' && noRealNode)) schedule(x);
      const { run, code, stderr, secondsAfterDeath } = await (results.get(c.component) as Promise<Outcome>);
      t.diagnostic(`exit ${code} ${secondsAfterDeath.toFixed(1)} s after ${c.component} was killed`);
      assert.equal(code, 1, `exit code 1\n${stderr.slice(-2500)}`);
      assert.ok(secondsAfterDeath < 30, `the run ended ${secondsAfterDeath.toFixed(1)} s after the death`);
      const lastCause = stderr.split('\n').filter((l) => l.startsWith('irsa: '));
      assert.match(
        lastCause.at(-1) ?? '',
        new RegExp(`^irsa: ${c.component} of the run's target died during the run \\(killed by SIGKILL\\)`),
        stderr.slice(-2500),
      );
      const outcomes = scenarioOutcomes(readMessages(path.join(run.reportsDir, 'cucumber.ndjson')));
      const named = outcomes.filter(
        (o) =>
          o.status === 'FAILED' &&
          (o.message ?? '').includes(`${c.component} of the run's target died during the run (killed by SIGKILL)`) &&
          (o.message ?? '').includes('Last lines of its log'),
      );
      assert.ok(
        named.length > 0,
        `a failed step names the component and its log:\n${outcomes.map((o) => `${o.status} ${o.name}: ${(o.message ?? '').slice(0, 300)}`).join('\n')}`,
      );
      const notStarted = outcomes.filter((o) => o.status === 'SKIPPED');
      assert.ok(notStarted.length > 0, 'the scenarios after the death were not started');
      assert.deepEqual(
        await leftoversOf(run),
        { processes: [], ports: [], tempDirs: [] },
        'nothing of the run is left',
      );
    });
  }
});
