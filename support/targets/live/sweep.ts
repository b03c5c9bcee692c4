/**
 * The live target as sweep needs it: the cluster (kubeconfig, context) and the AWS account, with
 * the live target's account guard (deletions happen only in the confirmed account, IRSA_AWS_ACCOUNT_ID).
 * Less than a run's connection: no dialect or webhook detection, no issuer, no verify-only settings.
 */
import { createClients, loadKubeConfig } from '../../clients.ts';
import type { HarnessConfig } from '../../config.ts';
import type { SweepConnection } from '../module.ts';
import { callerIdentity, checkAccountGuard } from './guard.ts';
import { liveConnectionDescriptor, resolveKubeconfig, resolveRegion } from './index.ts';

export async function liveSweepConnection(
  config: HarnessConfig,
  onProgress: (line: string) => void,
): Promise<SweepConnection> {
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
