/**
 * The live target as the harness's registry knows it (support/targets/module.ts): a connection to
 * a real cluster and account (never owned: stopping it only lets go), the scenarios its mode
 * selects (provision, verify-only), the verify-only verdict written after the run, and sweep's
 * connection with the account guard.
 */
import path from 'node:path';
import type { TargetModule } from '../module.ts';
import { tagsForLiveMode, writeVerifySummary } from './summary.ts';

const liveTarget: TargetModule = {
  async start({ config, setup, onProgress }) {
    const { connectLiveTarget } = await import('./index.ts');
    const t = await connectLiveTarget(config, setup, onProgress);
    return { ...t, owned: false };
  },

  // The live mode decides the scenarios: verify-only runs @infrastructure and @verify-only, provision the rest.
  selectScenarios: (config, tagExpression) => tagsForLiveMode(config.live.mode, tagExpression),
  selectionMode: (config) => `${config.live.mode} mode`,

  async afterRun({ config, runId, descriptor, counts, scenarios, print }) {
    if (config.live.mode !== 'verify-only') return { failed: false };
    // verify-only is a verdict on an existing setup: a run where every check was skipped proved nothing.
    const noCheckRan = counts.passed + counts.failed + counts.other === 0;
    if (noCheckRan)
      print(
        `irsa: no check ran: all ${counts.skipped} selected checks were skipped (their reasons are above and in the summary)`,
      );
    const file = writeVerifySummary({ runId, finishedAt: new Date(), descriptor, config, checks: scenarios });
    print(`Verify summary: ${path.relative(process.cwd(), file)}`);
    return { failed: noCheckRan };
  },

  async sweepConnection(config, onProgress) {
    return (await import('./sweep.ts')).liveSweepConnection(config, onProgress);
  },
};

export default liveTarget;
