/**
 * What an embedded target for a configuration and a setup starts with: a new environment id, its
 * logs and discovery bucket, the setup's webhook flags and the `embedded` settings. A run's own
 * target, a warm environment (`npm run env -- up`) and the self-test's shared environments start
 * the same way; each caller adds only what differs (a state file, signal handling).
 */
import path from 'node:path';
import type { HarnessConfig } from '../../config.ts';
import { discoveryBucketFor, newEnvId } from '../../names.ts';
import type { EmbeddedOptions } from './index.ts';

/** The settings the options come from (a HarnessConfig has them). */
export type EmbeddedConfig = Pick<HarnessConfig, 'reportsDir' | 'region' | 'embedded'> & {
  timeouts: Pick<HarnessConfig['timeouts'], 'startSeconds'>;
};

/** The setup's part in them (a LoadedSetup has it): the webhook's flags. */
export interface EmbeddedSetup {
  spec: { webhook: { flags: Record<string, string> } };
}

export function embeddedOptionsFor(
  config: EmbeddedConfig,
  setup: EmbeddedSetup,
  overrides: Partial<EmbeddedOptions> = {},
): EmbeddedOptions & { envId: string } {
  const envId = overrides.envId ?? newEnvId();
  return {
    logsDir: path.join(config.reportsDir, 'logs', envId),
    discoveryBucket: discoveryBucketFor(envId),
    webhookFlags: setup.spec.webhook.flags,
    region: config.region,
    startTimeoutMs: config.timeouts.startSeconds * 1000,
    settings: config.embedded,
    ...overrides,
    envId,
  };
}
