/**
 * An embedded environment's state file: what a later process needs to stop an environment it did
 * not start (a warm one, `npm run env -- up`; one whose process was killed, `npm run sweep`), how
 * long each component gets between SIGTERM and SIGKILL, and the check that its ports are closed.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { UsageError } from '../../errors.ts';
import { checkOwnFile } from '../../paths.ts';
import { portListening, processCommand, stopProcessGroup } from '../../process.ts';
import type { TargetDescriptor } from '../target.ts';
import { clearPendingDeletions } from '../warm-deletions.ts';
import { destroyNodeCgroups, type NodeCgroups } from './real-node.ts';

/** What a later process needs to stop an environment it did not start. */
export interface EnvState {
  envId: string;
  ownerPid: number;
  startedAt: string;
  workDir: string;
  logsDir: string;
  /** Process group leaders; `command` guards against signalling a reused pid. */
  processes: { name: string; pid: number; command: string }[];
  ports: Record<string, number>;
  /** The webhook flags this environment runs with (an attaching run checks them against its setup). */
  webhookFlags: Record<string, string>;
  descriptor: TargetDescriptor;
  /** The real node's cgroups (kubeNode kubelet): stopping kills their processes and removes them. */
  realNode?: NodeCgroups;
}

/** Default grace between SIGTERM and SIGKILL (used also for a component spawned while the start was stopped). */
export const STOP_GRACE_MS = 1000;
/**
 * etcd and kube-apiserver drain connections for seconds on SIGTERM; their state is thrown away
 * with the environment, so they get a short grace before SIGKILL (as does the AWS CLI fork
 * server, whose running commands belong to pods that go with the environment).
 */
const STATELESS_STOP = new Set(['etcd', 'kube-apiserver', 'aws-cli-forkserver']);
const STATELESS_STOP_GRACE_MS = 300;

/** Milliseconds component `name` gets between SIGTERM and SIGKILL when the environment stops. */
export function stopGraceMs(name: string): number {
  return STATELESS_STOP.has(name) ? STATELESS_STOP_GRACE_MS : STOP_GRACE_MS;
}

/**
 * Stops an environment from its state file (e.g. a warm one started by `irsa env up` in another
 * process): stops its process groups, removes its temporary directory and the state file.
 * Idempotent; a missing state file means there is nothing to stop.
 */
export async function stopEnvironmentFromState(stateFile: string): Promise<void> {
  let state: EnvState;
  // It names pids to signal and directories to remove: only a file of this user's that nobody else may write.
  if (existsSync(stateFile)) checkOwnFile(stateFile, 'environment state');
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as EnvState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new UsageError(
      `cannot read the environment state ${stateFile}: ${(e as Error).message}`,
      'delete it and stop leftover processes by hand',
    );
  }
  // A real node's processes (kubelet, containerd, shims, containers) go first, by cgroup.
  if (state.realNode) destroyNodeCgroups(state.realNode);
  await Promise.all(
    state.processes.map(async (p) => {
      const running = processCommand(p.pid);
      // A leader that is gone (or a pid now used by another program) is not ours to signal.
      if (running !== undefined && running !== p.command) return;
      await stopProcessGroup(p.pid, stopGraceMs(p.name));
    }),
  );
  // Only ever delete a directory this module created (a corrupted state file must not point rm elsewhere).
  const workDir = resolve(state.workDir);
  if (dirname(workDir) === resolve(tmpdir()) && basename(workDir).startsWith(`irsa-${state.envId}-`)) {
    rmSync(workDir, { recursive: true, force: true });
  }
  rmSync(stateFile, { force: true });
  // A run's lock on it (support/targets/warm-lock.ts) goes with it.
  rmSync(`${stateFile}.lock`, { force: true });
  clearPendingDeletions(stateFile);
}

/** Ports of a state that still accept connections (for tests and `env down` checks). */
export async function listeningPorts(ports: Record<string, number>): Promise<string[]> {
  const results = await Promise.all(
    Object.entries(ports).map(async ([name, p]) => ((await portListening(p)) ? `${name}:${p}` : undefined)),
  );
  return results.filter((r): r is string => r !== undefined);
}
