/**
 * The docker target as the harness's registry knows it (support/targets/module.ts): its pre-flight
 * (image settings, registries file, a container engine that answers) before anything is created,
 * its start, and nothing for sweep (its containers are removed with their run).
 */
import { UsageError } from '../../errors.ts';
import type { TargetModule } from '../module.ts';

const dockerTarget: TargetModule = {
  async preflight({ config, setup, dryRun }) {
    // A dry run starts nothing, so it needs no engine.
    if (!dryRun) await (await import('./index.ts')).preflightDockerTarget(config, setup);
  },

  async start({ config, setup, onProgress }) {
    const { startDockerTarget } = await import('./index.ts');
    const t = await startDockerTarget(config, setup, onProgress);
    return { ...t, owned: true };
  },

  async sweepConnection() {
    throw new UsageError(
      'the docker target’s containers are removed with their run: there is nothing to sweep',
      'sweep a live target (IRSA_TARGET=live) or a warm embedded environment (--attach)',
    );
  },
};

export default dockerTarget;
