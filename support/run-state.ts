/**
 * The run's state file: what the coordinator knows before cucumber's workers start (run id,
 * config, the target's descriptor with probed capabilities) and what the infrastructure
 * scenario publishes for the others (issuer, identity provider ARN, discovery bucket).
 * Workers find it through IRSA_RUN_STATE. Mode 0600: it holds emulator admin credentials.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { HarnessConfig } from './config.ts';
import type { ProcessIdentity } from './process.ts';
import type { TargetDescriptor } from './targets/target.ts';

export interface InfrastructureState {
  issuer: string;
  discoveryBucket: string;
  discoveryUrl: string;
  identityProviderArn: string;
  identityProviderUrl: string;
  clientIds: string[];
  webhookConfigurationName?: string;
  publishedKids: string[];
}

export interface RunState {
  runId: string;
  runDir: string;
  startedAt: string;
  config: HarnessConfig;
  target: TargetDescriptor;
  /** The target's processes on this machine, for workers to tell a dead component (support/target-death.ts). */
  components?: ProcessIdentity[];
  infrastructure?: InfrastructureState;
}

export function runStatePath(runDir: string): string {
  return `${runDir}/state.json`;
}

export function writeRunState(state: RunState): void {
  const file = runStatePath(state.runDir);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function readRunState(file = process.env.IRSA_RUN_STATE): RunState {
  if (!file || !existsSync(file)) {
    throw new Error(
      'no run state: the suite must be started through `npm run conformance` (tools/irsa), which starts the target first',
    );
  }
  return JSON.parse(readFileSync(file, 'utf8')) as RunState;
}
