/**
 * One run at a time on a warm environment (issue 16, item 7). Runs on one environment would share
 * its discovery bucket and identity provider (the cluster's issuer is fixed when the environment
 * starts, so both are per environment, not per run) and delete them under each other; a second
 * run is therefore refused at once, exit 2 "environment busy", before it creates anything.
 *
 * The lock is `<state file>.lock`, created exclusively, naming its holder by pid and start time.
 * A lock whose holder is gone (a run killed outright) is taken over; a second file, also created
 * exclusively, keeps two runs from taking over the same stale lock at once.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { UsageError } from '../errors.ts';
import { identityAlive, type ProcessIdentity, processIdentity } from '../process.ts';

interface Holder extends ProcessIdentity {
  since: string;
}

function readHolder(lock: string): Holder | undefined {
  try {
    return JSON.parse(readFileSync(lock, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Removes a lock whose holder is gone, unless another run is doing the same right now. */
function takeOverStale(lock: string, stale: Holder | undefined): void {
  const token = `${lock}.takeover`;
  try {
    writeFileSync(token, String(process.pid), { flag: 'wx', mode: 0o600 });
  } catch {
    // Another run takes it over (or died doing so, seconds ago): wait, then look again.
    try {
      if (Date.now() - statSync(token).mtimeMs > 10_000) rmSync(token, { force: true });
    } catch {
      // gone meanwhile
    }
    sleepSync(100);
    return;
  }
  try {
    const now = readHolder(lock);
    if (!now || (now.pid === stale?.pid && now.start === stale?.start)) rmSync(lock, { force: true });
  } finally {
    rmSync(token, { force: true });
  }
}

/** Takes the warm environment for this process; returns the release. UsageError when another run has it. */
export function lockWarmEnvironment(stateFile: string): () => void {
  const lock = `${stateFile}.lock`;
  const mine: Holder = { ...processIdentity(), since: new Date().toISOString() };
  const release = () => {
    const holder = readHolder(lock);
    if (holder?.pid === mine.pid && holder.start === mine.start) rmSync(lock, { force: true });
    process.off('exit', release);
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(lock, JSON.stringify(mine), { flag: 'wx', mode: 0o600 });
      // Also when this process ends without its teardown (a forced exit).
      process.on('exit', release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new UsageError(
          `cannot lock the warm environment ${stateFile}: ${(e as Error).message}`,
          'check the permissions of its directory',
        );
    }
    const holder = readHolder(lock);
    if (holder && identityAlive(holder))
      throw new UsageError(
        `environment busy: another run (process ${holder.pid}, since ${holder.since}) uses the warm environment ${stateFile}`,
        'wait for it to finish, start another warm environment (its own TMPDIR) or run without IRSA_ATTACH',
      );
    takeOverStale(lock, holder);
  }
  throw new UsageError(
    `environment busy: could not take the warm environment ${stateFile} (${lock} keeps changing)`,
    'wait for the other runs to finish, or run without IRSA_ATTACH',
  );
}
