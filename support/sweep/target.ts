/**
 * The target a sweep connects to: a warm environment's state file (--attach / IRSA_ATTACH), else
 * what the target's module says sweep connects to (the machine's warm environment, the live
 * cluster and account with the live target's account guard), or why there is nothing to sweep
 * (the docker target's containers are removed with their run).
 */
import { existsSync } from 'node:fs';
import type { HarnessConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import type { SweepConnection } from '../targets/module.ts';
import { loadTargetModule } from '../targets/registry.ts';
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

/** The target to sweep, from the settings: an attached state file, else the target module's answer. */
export async function sweepTarget(
  config: HarnessConfig,
  onProgress: (line: string) => void = () => undefined,
): Promise<SweepConnection | { nothing: string }> {
  if (config.attach) return { descriptor: readAttachedDescriptor(config.attach), close: async () => undefined };
  return (await loadTargetModule(config.target)).sweepConnection(config, onProgress);
}
