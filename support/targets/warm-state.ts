/**
 * A warm environment's state file (`npm run env -- up`, IRSA_ATTACH, sweep's default): where this
 * user's lives, whether its processes still run, and reading it.
 * The file names pids to signal, directories to remove and a kubeconfig to load, so it is trusted
 * only as far as this user wrote it: a regular file of this user's that nobody else may write
 * (support/paths.ts checkOwnFile), and its kubeconfig only authenticates with client
 * certificates, as the embedded target writes it. A kubeconfig with a credential plugin (`exec`,
 * `auth-provider`) would make the harness run a command the file names: refused (exit 2).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.ts';
import { checkOwnFile, envsRoot } from '../paths.ts';
import type { TargetDescriptor } from './target.ts';

/** What every reader of a state file needs; the embedded target writes more (embedded/index.ts EnvState). */
export interface WarmState {
  envId?: string;
  descriptor: TargetDescriptor;
  processes?: { name: string; pid: number; command: string }[];
  webhookFlags?: Record<string, string>;
  [key: string]: unknown;
}

/** This user's warm environment (`npm run env -- up`): one per user, in the state directory. */
export const WARM_STATE = path.join(envsRoot, 'warm.json');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids of the environment's processes that are alive. */
export function alivePids(pids: number[]): number[] {
  return pids.filter(alive);
}

/** True when every process of the environment in `stateFile` is alive. */
export function environmentAlive(stateFile: string): boolean {
  try {
    const s = JSON.parse(readFileSync(stateFile, 'utf8')) as { processes?: { pid: number }[] };
    return (s.processes ?? []).length > 0 && (s.processes ?? []).every((p) => alive(p.pid));
  } catch {
    return false;
  }
}

const HINT = 'pass the state file `npm run env -- up` printed (--attach or IRSA_ATTACH)';

/** Refuses a kubeconfig whose users run a command or a provider to get credentials. */
export function checkKubeconfigHasNoPlugins(file: string, namedBy: string): void {
  let config: { users?: { name?: string; user?: Record<string, unknown> }[] };
  try {
    config = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as typeof config;
  } catch (e) {
    throw new UsageError(`cannot read the kubeconfig ${file} named by ${namedBy}: ${(e as Error).message}`, HINT);
  }
  for (const u of config.users ?? []) {
    const plugin = ['exec', 'auth-provider'].find((k) => u.user?.[k] !== undefined);
    if (plugin)
      throw new UsageError(
        `the kubeconfig ${file} named by ${namedBy} has user ${JSON.stringify(u.name)} with a credential plugin (${plugin}): a warm environment's kubeconfig never runs one`,
        `${HINT}; a state file naming such a kubeconfig was not written by the harness`,
      );
  }
}

/** Reads and checks a warm environment's state file (UsageError, exit 2, when it cannot be trusted). */
export function readWarmState(file: string): WarmState {
  checkOwnFile(file, 'warm environment state');
  let state: Partial<WarmState>;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as Partial<WarmState>;
  } catch (e) {
    throw new UsageError(`${file} is not a warm environment state file: ${(e as Error).message}`, HINT);
  }
  if (!state.descriptor?.kubeconfigPath || !state.descriptor.aws)
    throw new UsageError(`${file} holds no target descriptor`, HINT);
  checkKubeconfigHasNoPlugins(state.descriptor.kubeconfigPath, file);
  return state as WarmState;
}
