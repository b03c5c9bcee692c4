/**
 * The target a sweep connects to: a warm environment's state file (--attach / IRSA_ATTACH, else
 * the one `npm run env -- up` made) for the embedded target, the live cluster and AWS account
 * (with the live target's account guard) for the live target; the docker target has nothing to
 * sweep (its containers are removed with their run).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createClients, loadKubeConfig } from '../clients.ts';
import type { HarnessConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { envsRoot } from '../paths.ts';
import type { TargetDescriptor } from '../targets/target.ts';
import { readWarmState } from '../targets/warm-state.ts';

/** Reads a warm environment's state file: the descriptor of a target this process did not start. */
export function readAttachedDescriptor(file: string): TargetDescriptor {
  if (!existsSync(file)) {
    throw new UsageError(
      `no warm environment state at ${file}`,
      'pass the state file `npm run env -- up` printed (--attach or IRSA_ATTACH)',
    );
  }
  return readWarmState(file).descriptor;
}

/** The target to sweep, from the settings: attached state file, the machine's warm environment, or live. */
export async function sweepTarget(
  config: HarnessConfig,
  onProgress: (line: string) => void = () => undefined,
): Promise<{ descriptor: TargetDescriptor; close(): Promise<void> }> {
  if (config.attach) return { descriptor: readAttachedDescriptor(config.attach), close: async () => undefined };
  switch (config.target) {
    case 'embedded': {
      const warm = path.join(envsRoot, 'warm.json');
      if (existsSync(warm)) return { descriptor: readAttachedDescriptor(warm), close: async () => undefined };
      throw new UsageError(
        'no embedded environment to sweep: a run’s own embedded target is stopped with the run, and no warm environment is running',
        'pass --attach <state file> of a warm environment (npm run env -- up), or IRSA_TARGET=live for a real cluster and account',
      );
    }
    case 'docker':
      throw new UsageError(
        'the docker target’s containers are removed with their run: there is nothing to sweep',
        'sweep a live target (IRSA_TARGET=live) or a warm embedded environment (--attach)',
      );
    case 'live':
      return liveSweepTarget(config, onProgress);
  }
}

/**
 * The live target as sweep needs it: the cluster (kubeconfig, context) and the AWS account, with
 * the live target's account guard (deletions happen only in the confirmed account, IRSA_AWS_ACCOUNT_ID).
 * Less than a run's connection: no dialect or webhook detection, no issuer, no verify-only settings.
 */
async function liveSweepTarget(
  config: HarnessConfig,
  onProgress: (line: string) => void,
): Promise<{ descriptor: TargetDescriptor; close(): Promise<void> }> {
  const { liveConnectionDescriptor, resolveKubeconfig, resolveRegion } = await import('../targets/live/index.ts');
  const { callerIdentity, checkAccountGuard } = await import('../targets/live/guard.ts');
  const live = config.live;
  const { file, cleanup } = resolveKubeconfig(live.kubeconfig);
  try {
    const kc = loadKubeConfig(file, live.context);
    const { region } = await resolveRegion(config);
    const descriptor = liveConnectionDescriptor(config, {
      kubeconfigPath: file,
      server: kc.getCurrentCluster()?.server ?? 'https://unknown',
      region,
    });
    const c = createClients(descriptor);
    try {
      const caller = await callerIdentity(c.sts, live.awsEndpoint ?? `STS in ${region}`);
      // Sweeping deletes: the confirmation is required as in provision mode.
      checkAccountGuard({ mode: 'provision', confirmedAccountId: live.accountId, caller });
      descriptor.aws.accountId = caller.account;
      onProgress(`sweeping ${kc.getCurrentCluster()?.server} and AWS account ${caller.account} (${caller.arn})`);
    } finally {
      c.destroy();
    }
    return { descriptor, close: async () => cleanup() };
  } catch (e) {
    cleanup();
    throw e;
  }
}
