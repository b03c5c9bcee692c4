/**
 * What a harness killed outright (SIGKILL, a crash of the machine's OOM killer: no exit handler
 * ran) leaves on this machine, found by `npm run sweep`:
 *   - run directories (<state root>/runs/<run id>: state file with the emulator's admin
 *     credentials, ledger) whose owner process is gone; their run ids are then no longer "in
 *     progress", so sweep deletes what those runs left on a warm environment or a live target;
 *   - work directories of a run's own embedded environment (<TMPDIR>/irsa-<env id>-XXXXXX: keys,
 *     kubeconfigs, etcd's data) whose owner is gone, and any process still using one (the
 *     components themselves die with their parent: support/process.ts dieWithParent);
 *   - a warm environment's state file whose processes are all gone (a machine restart).
 * Owners are recognised by pid and start time (support/owner.ts); a directory without an owner
 * record is not the harness's to judge and is left alone, as is everything of a live owner and a
 * warm environment that runs.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OWNER_FILE, type OwnerRecord, readOwner } from './owner.ts';
import { identityAlive, readProcStat } from './process.ts';

export interface LocalLeftover {
  what: string;
  /** Directory to remove, or process to kill. */
  dir?: string;
  pid?: number;
  /** A warm environment's stale state file (removed with what it names). */
  stateFile?: string;
}

export interface LocalFindResult {
  found: LocalLeftover[];
  kept: { what: string; why: string }[];
  problems: string[];
  /** Run ids whose owner runs: their resources are in progress. */
  liveRunIds: Set<string>;
}

/** The work directory of an environment: `irsa-<env id>-` and mkdtemp's six characters. */
const WORK_DIR = /^irsa-(.+)-[A-Za-z0-9]{6}$/;
/** A directory that has just been made may not have its owner record yet. */
const GRACE_MS = 60_000;

function describeOwner(o: OwnerRecord): string {
  return `pid ${o.pid}, since ${o.createdAt}`;
}

function listDir(dir: string, problems: string[]): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      problems.push(`listing ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return [];
  }
}

/** Processes (other than this one) whose command line, working directory or environment name `dir`. */
export function processesUsing(dir: string): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid || readProcStat(pid)?.state === 'Z') continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      let cwd = '';
      let environ = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
        environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      } catch {
        // not ours to read
      }
      if (cmd.includes(dir) || cwd === dir || cwd.startsWith(`${dir}/`) || environ.includes(dir))
        out.push({ pid, cmd });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function youngerThanGrace(dir: string): boolean {
  try {
    return Date.now() - statSync(dir).mtimeMs < GRACE_MS;
  } catch {
    return true;
  }
}

export interface LocalRoots {
  runsRoot: string;
  envsRoot: string;
  /** Where environments' work directories are made (default: the system temporary directory). */
  workRoot?: string;
}

/** Finds what dead harness processes left on this machine; changes nothing. */
export function findLocalLeftovers(
  roots: LocalRoots,
  environmentAlive: (stateFile: string) => boolean,
): LocalFindResult {
  const result: LocalFindResult = { found: [], kept: [], problems: [], liveRunIds: new Set() };
  for (const id of listDir(roots.runsRoot, result.problems)) {
    const dir = path.join(roots.runsRoot, id);
    const owner = readOwner(dir);
    if (!owner) {
      if (youngerThanGrace(dir)) result.liveRunIds.add(id);
      else result.found.push({ what: `run directory ${dir} (no owner record)`, dir });
    } else if (identityAlive(owner)) {
      result.liveRunIds.add(id);
      result.kept.push({ what: `run ${id}`, why: `in progress (${describeOwner(owner)})` });
    } else result.found.push({ what: `run directory ${dir} of run ${id} (its process ${owner.pid} is gone)`, dir });
  }
  const workRoot = roots.workRoot ?? tmpdir();
  for (const name of listDir(workRoot, result.problems)) {
    if (!WORK_DIR.test(name)) continue;
    const dir = path.join(workRoot, name);
    try {
      const s = lstatSync(dir);
      if (!s.isDirectory() || s.uid !== process.getuid?.()) continue;
    } catch {
      continue;
    }
    if (!existsSync(path.join(dir, OWNER_FILE))) continue;
    const owner = readOwner(dir);
    if (owner?.kind !== 'environment' || owner.keepAlive) continue;
    if (identityAlive(owner)) {
      result.kept.push({ what: `environment ${owner.id}`, why: `its run is in progress (${describeOwner(owner)})` });
      continue;
    }
    for (const p of processesUsing(dir))
      result.found.push({ what: `process ${p.pid} of environment ${owner.id} (${p.cmd.slice(0, 100)})`, pid: p.pid });
    result.found.push({
      what: `work directory ${dir} of environment ${owner.id} (its process ${owner.pid} is gone)`,
      dir,
    });
  }
  for (const name of listDir(roots.envsRoot, result.problems)) {
    if (!name.endsWith('.json')) continue;
    const stateFile = path.join(roots.envsRoot, name);
    if (!environmentAlive(stateFile))
      result.found.push({ what: `state file ${stateFile} of a warm environment whose processes are gone`, stateFile });
  }
  return result;
}

/** Removes what findLocalLeftovers found: processes first, then directories and stale state. */
export async function removeLocalLeftovers(
  found: LocalLeftover[],
  stopStale: (stateFile: string) => Promise<void>,
): Promise<{ removed: string[]; failed: { what: string; error: string }[] }> {
  const removed: string[] = [];
  const failed: { what: string; error: string }[] = [];
  for (const l of found.filter((x) => x.pid !== undefined)) {
    try {
      process.kill(l.pid as number, 'SIGKILL');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') {
        failed.push({ what: l.what, error: (e as Error).message });
        continue;
      }
    }
    removed.push(l.what);
  }
  for (const l of found.filter((x) => x.pid === undefined)) {
    try {
      if (l.stateFile) await stopStale(l.stateFile);
      if (l.dir) rmSync(l.dir, { recursive: true, force: true });
      removed.push(l.what);
    } catch (e) {
      failed.push({ what: l.what, error: (e as Error).message });
    }
  }
  return { removed, failed };
}
