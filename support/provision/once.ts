/**
 * Run-scoped resources that several scenarios share, created exactly once per run whichever
 * worker thread asks first (the tenant matrix's tenants): the first caller of a key takes a lock
 * file in the run directory and creates; the others watch the directory until the result (or
 * the failure) is published there. The same protocol as the infrastructure (ensure.ts), for any
 * key. Results are JSON, so they cross worker threads; they must not hold secrets (the run
 * directory is mode 0700 and removed at the end of the run, but it is still a file).
 */
import { closeSync, existsSync, openSync, readFileSync, renameSync, watch, writeFileSync } from 'node:fs';
import path from 'node:path';
import { OperationTimeout } from '../errors.ts';

const cache = new Map<string, Promise<unknown>>();

function files(runDir: string, key: string): { done: string; failed: string; lock: string } {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(key)) throw new Error(`runOnce key ${JSON.stringify(key)} is not a file-safe name`);
  const base = path.join(runDir, `once-${key}`);
  return { done: `${base}.json`, failed: `${base}.failed.json`, lock: `${base}.lock` };
}

function publish(file: string, value: unknown): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(value), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The published result, undefined while nobody finished; throws the creator's failure. */
function readResult<T>(runDir: string, key: string): { value: T } | undefined {
  const f = files(runDir, key);
  if (existsSync(f.failed)) {
    const { message } = JSON.parse(readFileSync(f.failed, 'utf8')) as { message: string };
    throw new Error(`${key} could not be created (by another scenario of this run): ${message}`);
  }
  return existsSync(f.done) ? { value: JSON.parse(readFileSync(f.done, 'utf8')) as T } : undefined;
}

async function waitForResult<T>(runDir: string, key: string, timeoutSeconds: number): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const watcher = watch(runDir);
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      watcher.close();
      fn();
    };
    const check = () => {
      try {
        const r = readResult<T>(runDir, key);
        if (r) finish(() => resolve(r.value));
      } catch (e) {
        finish(() => reject(e));
      }
    };
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(new OperationTimeout(`waiting for ${key}`, 'the scenario creating it to finish', timeoutSeconds)),
        ),
      timeoutSeconds * 1000,
    );
    watcher.on('change', check);
    // The result may have been published between the lock attempt and the watch starting.
    check();
  });
}

/**
 * Returns the result of `create` for `key`, running it at most once per run directory across
 * every worker thread; concurrent callers in one thread share one promise.
 */
export function runOnce<T>(runDir: string, key: string, timeoutSeconds: number, create: () => Promise<T>): Promise<T> {
  const cached = cache.get(`${runDir}\0${key}`);
  if (cached) return cached as Promise<T>;
  const p = (async () => {
    const done = readResult<T>(runDir, key);
    if (done) return done.value;
    const f = files(runDir, key);
    let fd: number | undefined;
    try {
      fd = openSync(f.lock, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (fd === undefined) return await waitForResult<T>(runDir, key, timeoutSeconds);
    closeSync(fd);
    try {
      const value = await create();
      publish(f.done, value);
      return value;
    } catch (e) {
      publish(f.failed, { message: e instanceof Error ? e.message : String(e) });
      throw e;
    }
  })();
  cache.set(`${runDir}\0${key}`, p);
  return p;
}
