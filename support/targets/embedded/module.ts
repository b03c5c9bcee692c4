/**
 * The embedded target as the harness's registry knows it (support/targets/module.ts): its
 * pre-flight (the real node's requirements), its set-up (components built or found in the cache),
 * its start, and what sweep finds of it (a warm environment; a run's own target dies with the run).
 */
import { existsSync } from 'node:fs';
import { processIdentity } from '../../process.ts';
import type { TargetModule } from '../module.ts';
import { readWarmState, WARM_STATE } from '../warm-state.ts';
import { embeddedOptionsFor } from './options.ts';

const embeddedTarget: TargetModule = {
  async preflight({ config }) {
    // A real node needs root and kernel features: said before the dry run, as bad input.
    if (!config.attach && config.embedded.kubeNode === 'kubelet') (await import('./real-node.ts')).preflightRealNode();
  },

  async prepare(env) {
    // Built (or found in the cache) only now: after the input is known to be good.
    await (await import('./setup.ts')).ensureEmbeddedSetup(env);
  },

  async start({ config, setup, onProgress, onDeath }) {
    const { startEmbeddedTarget } = await import('./index.ts');
    const t = await startEmbeddedTarget({
      ...embeddedOptionsFor(config, setup),
      onProgress,
      onUnexpectedExit: (component, logTail, exit) =>
        onDeath({
          component,
          code: exit.code,
          signal: exit.signal,
          logFile: exit.logFile,
          logTail,
          owned: true,
          at: new Date().toISOString(),
        }),
    });
    const components = t.state.processes.map((p) => processIdentity(p.pid));
    return { ...t, owned: true, timings: t.timings, components };
  },

  async sweepConnection() {
    // A run's own embedded target is stopped with the run (what it leaves is on this machine,
    // swept with the local leftovers); only a warm environment outlives it.
    if (!existsSync(WARM_STATE))
      return { nothing: 'no warm embedded environment runs here: nothing to sweep on a cluster or in AWS' };
    return { descriptor: readWarmState(WARM_STATE).descriptor, close: async () => undefined };
  },
};

export default embeddedTarget;
