/**
 * Scenario lifecycle: skip what the target cannot do (with the probe's reason), refuse to start
 * steps after an interrupt or a target component's death (support/target-death.ts), attach the
 * diagnostics of a failed step to that step (not to a hook a reader has to unfold), then delete the
 * scenario's resources in reverse order (or keep them with IRSA_KEEP_ON_FAILURE). The test-run
 * hook named CAPABILITIES_HOOK carries the capability matrix in the HTML report
 * (support/formatters/html.ts attaches it).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  After,
  AfterAll,
  AfterStep,
  Before,
  BeforeAll,
  BeforeStep,
  Status,
  setDefaultTimeout,
} from '@cucumber/cucumber';
import { flushLedger } from '../cleanup.ts';
import { collectDiagnostics } from '../diagnose/scenario.ts';
import { describeRef } from '../ledger.ts';
import { CAPABILITIES_HOOK, SKIP_PREFIX } from '../outcomes.ts';
import { describeDeath, readDeath, TargetDiedError } from '../target-death.ts';
import type { Capability } from '../targets/target.ts';
import { type IrsaWorld, releaseWorkerShared, workerShared } from './world.ts';

// Steps carry their own per-operation timeouts; this is the outer bound of one step.
setDefaultTimeout(180_000);

function runInterrupted(world: IrsaWorld): boolean {
  return existsSync(path.join(world.state.runDir, 'INTERRUPTED'));
}

BeforeAll({ name: CAPABILITIES_HOOK }, () => undefined);

const SKIP_REASON = { mediaType: 'text/plain', fileName: 'skip reason.txt' };

/** Attaches the failure's diagnostics where the reader looks: to the failed step (or to the hook). */
async function diagnose(world: IrsaWorld): Promise<void> {
  world.diagnosed = true;
  try {
    for (const d of await collectDiagnostics(world))
      world.attach(d.body, { mediaType: d.mediaType, fileName: d.fileName });
  } catch (e) {
    world.attach(`diagnostics could not be collected: ${(e as Error).message}`, {
      mediaType: 'text/plain',
      fileName: 'diagnostics error.txt',
    });
  }
}

Before(function (this: IrsaWorld, { pickle }) {
  // After SIGINT/SIGTERM the remaining scenarios are skipped: they must not create anything
  // while the coordinator cleans up.
  if (runInterrupted(this)) {
    this.attach(`${SKIP_PREFIX}the run was interrupted (SIGINT/SIGTERM)`, SKIP_REASON);
    return 'skipped';
  }
  // After a component of the target died, nothing further starts (support/target-death.ts).
  const death = readDeath(this.state.runDir);
  if (death) {
    this.attach(`${SKIP_PREFIX}${describeDeath(death)}`, SKIP_REASON);
    return 'skipped';
  }
  const caps = this.state.target.capabilities;
  const missing: string[] = [];
  for (const tag of pickle.tags.map((t) => t.name)) {
    if (!tag.startsWith('@requires-')) continue;
    const cap = tag.slice('@requires-'.length) as Capability;
    const result = caps?.[cap];
    if (!result) missing.push(`${cap}: unknown capability (see support/targets/target.ts)`);
    else if (!result.available) missing.push(`${cap}: ${result.reason}`);
  }
  if (missing.length > 0) {
    this.attach(`${SKIP_PREFIX}the ${this.state.target.name} target lacks ${missing.join('; ')}`, SKIP_REASON);
    return 'skipped';
  }
  return undefined;
});

BeforeStep(function (this: IrsaWorld) {
  if (runInterrupted(this)) {
    throw new Error('the run was interrupted (SIGINT/SIGTERM): no further steps are started');
  }
  const death = readDeath(this.state.runDir);
  if (death) throw new TargetDiedError(death);
});

// A step hook's attachments belong to the step: the diagnosis sits under the failed step itself.
AfterStep(async function (this: IrsaWorld, { result }) {
  // An interrupt fails the scenario's next step; diagnostics of that would only delay the cleanup.
  // A dead component has nothing to tell through the dead target: the failure names it already.
  if (result.status === Status.FAILED && !runInterrupted(this) && !readDeath(this.state.runDir)) await diagnose(this);
});

After(async function (this: IrsaWorld, { result, pickle }) {
  // Nothing to diagnose or delete through a dead component: the run's target goes with everything
  // in it, a warm environment has to be replaced (the coordinator says how).
  if (readDeath(this.state.runDir)) return;
  const failed = result?.status === Status.FAILED;
  // A failure outside the steps (a hook): its diagnostics go to this hook.
  if (failed && !this.diagnosed && !runInterrupted(this)) await diagnose(this);
  const { config } = this.state;
  const keep = failed && config.keepOnFailure;
  const report = await flushLedger(this.clients, workerShared().ledger, {
    scope: this.scopeId,
    timeoutSeconds: config.timeouts.cleanupSeconds,
    keep,
    keepReason: `kept after failure of "${pickle.name}"`,
  });
  if (report.kept.length > 0) {
    this.attach(
      `Kept for inspection (IRSA_KEEP_ON_FAILURE):\n${report.kept.map((k) => `  - ${k}`).join('\n')}\nRemove them later with: npm run sweep -- --run-id ${this.state.runId}`,
      { mediaType: 'text/plain', fileName: 'kept for inspection.txt' },
    );
  }
  if (report.failed.length > 0) {
    // Never hide the scenario's own failure: report cleanup problems as an attachment, and the
    // coordinator retries what is still outstanding at the end of the run.
    this.attach(`Cleanup problems:\n${report.failed.map((f) => `  - ${f.what}: ${f.error}`).join('\n')}`, {
      mediaType: 'text/plain',
      fileName: 'cleanup problems.txt',
    });
  }
});

AfterAll(() => {
  releaseWorkerShared();
});

export { describeRef };
