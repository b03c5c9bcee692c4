/**
 * The run's target made ready for the scenarios, once started: its secrets registered for
 * redaction, the cluster's issuer read, what earlier runs on a warm environment handed over
 * checked, and its capabilities measured (or, on a warm environment that measured them in full
 * before, taken from its state file), and returned. What runs here stops when the target dies
 * (untilDeath).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { measureCapabilities } from '../capabilities.ts';
import { createClients } from '../clients.ts';
import type { HarnessConfig } from '../config.ts';
import { observeClusterIssuer } from '../kube/cluster.ts';
import type { Ledger } from '../ledger.ts';
import { log } from '../log.ts';
import { registerSecret } from '../redact.ts';
import type { TargetHandle } from '../targets/module.ts';
import type { CapabilityMatrix, TargetDescriptor } from '../targets/target.ts';
import { checkPendingDeletions, describeStuck } from '../targets/warm-deletions.ts';

/** Stores the measured capabilities in a warm environment's state file for the runs after this one. */
function rememberCapabilities(stateFile: string, descriptor: TargetDescriptor): void {
  try {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { descriptor: TargetDescriptor };
    state.descriptor.capabilities = descriptor.capabilities;
    state.descriptor.capabilitiesMeasuredAt = descriptor.capabilitiesMeasuredAt;
    writeFileSync(`${stateFile}.tmp`, JSON.stringify(state, null, 2), { mode: 0o600 });
    renameSync(`${stateFile}.tmp`, stateFile);
  } catch (e) {
    log.debug(`capabilities not stored in ${stateFile}: ${(e as Error).message}`);
  }
}

export async function readyTarget(input: {
  target: TargetHandle;
  config: HarnessConfig;
  runId: string;
  ledger: Ledger;
  /** When the start began (the "ready in" line counts from it). */
  started: number;
  /** Races what runs against the target with its death. */
  untilDeath: <T>(p: Promise<T>) => Promise<T>;
  /** The signal that interrupted the run, if one did (read when it matters). */
  interrupted: () => NodeJS.Signals | undefined;
}): Promise<CapabilityMatrix> {
  const { target, config, runId, ledger, started, untilDeath, interrupted } = input;
  for (const secret of [
    target.descriptor.aws.credentials?.secretAccessKey,
    target.descriptor.aws.credentials?.sessionToken,
  ])
    if (secret) registerSecret(secret);
  const clients = createClients(target.descriptor);
  try {
    const issuer = await untilDeath(observeClusterIssuer(clients, config.timeouts.assertSeconds));
    log.info(`target ready in ${((Date.now() - started) / 1000).toFixed(1)} s; cluster issuer ${issuer}`);
    if (config.attach) {
      // What earlier runs on this environment handed over: gone by now, or say what holds it.
      const check = await checkPendingDeletions(config.attach, clients, config.timeouts.cleanupSeconds);
      for (const line of describeStuck(check)) log.warn(line);
    }
    if (config.attach && target.descriptor.capabilities) {
      // Measured by the first run on this warm environment (below); what the environment can
      // do does not change while it runs.
      log.info(
        `capabilities as measured on this environment at ${target.descriptor.capabilitiesMeasuredAt ?? 'its first run'}`,
      );
      return target.descriptor.capabilities;
    }
    const probing = Date.now();
    const probed = await untilDeath(
      measureCapabilities({
        clients,
        target: target.descriptor,
        config,
        runId,
        ledger,
        issuer,
        log: log.warn,
      }),
    );
    target.descriptor.capabilities = probed.matrix;
    target.descriptor.capabilitiesMeasuredAt = new Date().toISOString();
    log.debug(`capabilities measured in ${((Date.now() - probing) / 1000).toFixed(1)} s`);
    // Kept for the environment's later runs only when measured in full: an interrupt deletes
    // the probe's pod under it (it would read as "cannot run pods"), and a probe that failed
    // with an error measured nothing. The next run then measures again.
    if (config.attach && !interrupted() && probed.errors.length === 0)
      rememberCapabilities(config.attach, target.descriptor);
    else if (config.attach && !interrupted())
      log.info(`capabilities not kept for the environment's next runs: a probe failed (${probed.errors.join('; ')})`);
    return probed.matrix;
  } finally {
    clients.destroy();
  }
}
