/**
 * A component of the target that dies while a run uses it (issue 16, item 1). The coordinator
 * notices at once (the process is its child, or for a warm environment a pid it watches), writes
 * this record into the run directory and says so; cucumber's workers read it: the step in flight
 * fails with it, no further step or scenario starts, nothing is cleaned up against the dead
 * target (it goes with everything in it), and the run exits 1.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { identityAlive, type ProcessIdentity } from './process.ts';

export const DEATH_FILE = 'TARGET-DIED';

export interface TargetDeath {
  component: string;
  /** Exit code or signal; both null when the process was not this run's child (a warm environment's). */
  code: number | null;
  signal: string | null;
  logFile?: string;
  /** The last lines of its log, already redacted (support/process.ts readLogTail). */
  logTail: string;
  /** False for a warm environment, which the run does not own. */
  owned: boolean;
  at: string;
}

export class TargetDiedError extends Error {
  override readonly name = 'TargetDiedError';
  /** `failure`: what the step in flight failed with, as the component died under it. */
  constructor(
    readonly death: TargetDeath,
    failure?: unknown,
  ) {
    const was =
      failure === undefined ? '' : (failure instanceof Error ? failure.message : String(failure)).split('\n')[0];
    super(`${describeDeath(death)}${was ? `\n(the step failed with: ${was})` : ''}`);
  }
}

function exitWords(d: TargetDeath): string {
  if (d.signal) return `killed by ${d.signal}`;
  if (d.code !== null) return `exit code ${d.code}`;
  return 'its exit status went to the process that started the environment';
}

/** One line naming the component and how it ended, then its log's last lines. */
export function describeDeath(d: TargetDeath): string {
  const where = d.owned ? "the run's target" : 'the warm environment';
  const head = `${d.component} of ${where} died during the run (${exitWords(d)}); the run stops`;
  if (!d.logTail) return `${head}${d.logFile ? ` (log: ${d.logFile})` : ''}`;
  const tail = d.logTail
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return `${head}. Last lines of its log${d.logFile ? ` (${d.logFile})` : ''}:\n${tail}`;
}

export function recordDeath(runDir: string, d: TargetDeath): void {
  const file = path.join(runDir, DEATH_FILE);
  try {
    writeFileSync(`${file}.tmp`, JSON.stringify(d), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  } catch {
    // The run directory is gone: the run is over anyway.
  }
}

export function readDeath(runDir: string): TargetDeath | undefined {
  const file = path.join(runDir, DEATH_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TargetDeath;
  } catch {
    return undefined;
  }
}

/** True when a component of the list is no longer running (it may not be recorded yet). */
export function someComponentGone(components: ProcessIdentity[] | undefined): boolean {
  return (components ?? []).some((c) => !identityAlive(c));
}
