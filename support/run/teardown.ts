/**
 * The end of a run on its target, once per run (the coordinator's teardown, also after a signal):
 * the ledger flushed in reverse order (what IRSA_KEEP_ON_FAILURE keeps stays), namespace deletion
 * confirmed or handed over to a warm environment, what could not be deleted named with the sweep
 * that removes it, and the target stopped (a run's own) or let go (an attached one). Through a
 * dead component nothing is deleted: the target is only stopped.
 */
import { flushLedger, waitForNamespacesGone } from '../cleanup.ts';
import { createClients } from '../clients.ts';
import type { HarnessConfig } from '../config.ts';
import { describeRef, type Ledger } from '../ledger.ts';
import { log } from '../log.ts';
import { LABEL_RUN_ID } from '../names.ts';
import type { TargetHandle } from '../targets/module.ts';
import { recordPendingDeletion, runNamespaces } from '../targets/warm-deletions.ts';

export async function cleanUpAfterRun(input: {
  target: TargetHandle;
  ledger: Ledger;
  config: HarnessConfig;
  runId: string;
  /** A component of the target died during the run. */
  died: boolean;
  /** Resolved when the main flow (start, probes, cucumber) has returned: nothing creates resources after it. */
  mainSettled: Promise<void>;
  /** The signal that interrupted the run, if one did (read when it matters: one may arrive meanwhile). */
  interrupted: () => NodeJS.Signals | undefined;
}): Promise<void> {
  const { target: t, ledger, config, runId, died, mainSettled, interrupted } = input;
  if (died) {
    // Nothing can be deleted through a dead component, and nothing needs to be: a run's own
    // target went with everything in it; a warm environment must be replaced.
    log.info(
      t.owned
        ? "the run's resources went with its target"
        : `the warm environment is broken: stop it with \`npm run env -- down\` (its resources go with it), or remove only this run's with \`npm run sweep -- --run-id ${runId}\` once it is replaced`,
    );
    await t.stop();
    return;
  }
  const c = createClients(t.descriptor);
  try {
    // Resources kept by IRSA_KEEP_ON_FAILURE stay for inspection (sweep removes them later).
    const flush = () => flushLedger(c, ledger, { timeoutSeconds: config.timeouts.cleanupSeconds, skipKept: true });
    // An interrupted run's own target is stopped at once (the embedded target stops itself on
    // the signal): what it holds goes with it, and a flush would only race that stop.
    const report = interrupted() && t.owned ? { deleted: [], failed: [], kept: [] } : await flush();
    if (interrupted() && !t.owned) {
      // A step or probe still running may create resources after the flush read the ledger
      // (an attached target outlives the run, so they would leak): wait until the main flow
      // has returned, at most the apply timeout, and flush what was recorded meanwhile.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        mainSettled,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, config.timeouts.applySeconds * 1000);
        }),
      ]);
      clearTimeout(timer);
      const again = await flush();
      report.deleted.push(...again.deleted);
      report.failed = again.failed;
    }
    if (!t.owned && config.attach) {
      // A warm environment: the namespaces are terminating (their pods are gone already); the
      // environment confirms they are gone, at the next run or `env -- status`
      // (support/targets/warm-deletions.ts says why this run does not wait 5 s for it).
      const { present, notDeleting } = await runNamespaces(c, runId);
      for (const name of notDeleting)
        report.failed.push({ what: `namespace ${name}`, error: 'its deletion was not requested' });
      const terminating = present.filter((n) => !notDeleting.includes(n));
      if (terminating.length)
        recordPendingDeletion(config.attach, {
          runId,
          requestedAt: new Date().toISOString(),
          namespaces: terminating,
        });
    } else if (!t.owned && !t.descriptor.readOnly) {
      // Namespace deletion is only requested by the flushes: confirm here, once per run, that
      // the namespace controller finished (an owned target goes away with everything in it).
      // Verify-only creates no namespace, and its least-privilege RBAC (deploy/rbac.yaml) may
      // not list them.
      const left = await waitForNamespacesGone(c, `${LABEL_RUN_ID}=${runId}`, config.timeouts.cleanupSeconds);
      for (const name of left)
        report.failed.push({ what: `namespace ${name}`, error: 'still terminating at the cleanup timeout' });
    }
    if (report.deleted.length) log.debug(`deleted at the end of the run: ${report.deleted.join(', ')}`);
    for (const f of report.failed)
      log.warn(`could not delete ${f.what}: ${f.error} (remove it with \`npm run sweep -- --run-id ${runId}\`)`);
    // What IRSA_KEEP_ON_FAILURE kept, if anything, and if it still exists: an interrupted run's
    // own target went with everything in it.
    const kept =
      interrupted() && t.owned
        ? []
        : ledger.kept().filter((e) => !report.failed.some((f) => f.what === describeRef(e.ref)));
    if (kept.length)
      log.info(
        `kept for inspection (IRSA_KEEP_ON_FAILURE): ${kept.map((e) => describeRef(e.ref)).join(', ')}; remove with \`npm run sweep -- --run-id ${runId}\``,
      );
  } finally {
    c.destroy();
    // A run's own target is stopped; an attached one is only let go (its death watch ends).
    await t.stop();
  }
}
