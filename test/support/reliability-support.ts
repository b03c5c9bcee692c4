/**
 * Shared by the reliability tests (issue 6): runs `bash tools/irsa conformance …` as a child
 * process in its own temporary directory (TMPDIR, reports), watches its output and its run's
 * ledger to interrupt it at a chosen moment, records every process it starts (and their
 * listening ports) while it runs, and afterwards says what of it is left: live processes,
 * listening ports, temporary directories, tagged resources on an attached environment.
 *
 * Processes are recorded from /proc (pid + start time, so a reused pid is not mistaken for a
 * leftover) each time the child prints something and at the moment of the signal; as a catch-all,
 * any process whose command line, working directory or environment mentions the child's temporary
 * directory counts as left behind (every component of the embedded target has its work directory
 * there).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  type FSWatcher,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitForNamespacesGone } from '../../support/cleanup.ts';
import { createClients } from '../../support/clients.ts';
import type { LedgerEntry } from '../../support/ledger.ts';
import { processesUsing } from '../../support/local-leftovers.ts';
import { LABEL_RUN_ID } from '../../support/names.ts';
import { repoRoot, stateRootFor } from '../../support/paths.ts';
import { allPids, portListening, readProcStat, tcpListeners } from '../../support/process.ts';
import { findLeftovers } from '../../support/sweep/sweep.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';

/** Where a run started with TMPDIR=`tmp` keeps its run directories (support/paths.ts). */
export function runsRootIn(tmp: string): string {
  return path.join(stateRootFor({ TMPDIR: tmp }), 'runs');
}

/** A scenario's own namespace in a run's ledger (not the probes', not the run's infrastructure). */
export const scenarioNamespace = (e: LedgerEntry) =>
  e.ref.kind === 'k8s-namespace' && e.scope !== 'probe' && e.scope !== 'run';
/** One scenario of the infrastructure feature, and one that runs a pod. */
export const INFRA_SCENARIO = [
  'features/01-infrastructure.feature',
  '--name',
  'The discovery document has the fields STS reads',
];
export const APP_SCENARIO = ['features/02-application.feature', '--name', 'The webhook injects the role'];

export interface ProcInfo {
  pid: number;
  ppid: number;
  start: string;
  cmd: string;
}

function readProc(pid: number): ProcInfo | undefined {
  const stat = readProcStat(pid);
  // A zombie has exited; only its parent's wait() is missing.
  if (!stat || stat.state === 'Z') return undefined;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    return { pid, ppid: stat.ppid, start: stat.start, cmd };
  } catch {
    return undefined;
  }
}

/** Every process below `root` right now. */
export function descendants(root: number): ProcInfo[] {
  const procs = allPids()
    .map(readProc)
    .filter((p): p is ProcInfo => p !== undefined);
  const byParent = new Map<number, ProcInfo[]>();
  for (const p of procs) byParent.set(p.ppid, [...(byParent.get(p.ppid) ?? []), p]);
  const out: ProcInfo[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift() as number;
    for (const child of byParent.get(pid) ?? []) {
      out.push(child);
      queue.push(child.pid);
    }
  }
  return out;
}

/** TCP ports in LISTEN state owned by the given processes. */
export function listeningPortsOf(pids: number[]): Set<number> {
  return new Set(tcpListeners(pids).map((l) => l.port));
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
  runId?: string;
}

export interface IrsaRun {
  child: ChildProcess;
  /** Temporary directory of this run: TMPDIR of the child, its reports under reports/. */
  tmp: string;
  reportsDir: string;
  stdout(): string;
  stderr(): string;
  runId(): string | undefined;
  /** Resolves when stderr/stdout has a line matching `re` (rejects if the run exits first). */
  waitForOutput(re: RegExp): Promise<string>;
  /** Resolves when the run's ledger holds an entry matching `pred` (rejects if the run exits first). */
  waitForLedger(pred: (e: LedgerEntry) => boolean): Promise<LedgerEntry>;
  /** The ledger's created entries so far (the run directory lives under tmp). */
  ledgerEntries(): LedgerEntry[];
  /** Sends a signal after recording the process tree. */
  signal(sig: NodeJS.Signals): void;
  /** Records the process tree now (before something of it is killed from outside). */
  record(): void;
  exited: Promise<RunResult>;
  /** Every process seen below the child, by pid, and the ports they listened on. */
  seen: Map<number, ProcInfo>;
  ports: Set<number>;
}

const IRSA = path.join(repoRoot, 'tools/irsa');

/**
 * Starts `bash tools/irsa <argv>` with a fresh TMPDIR and reports dir. `env` adds to (and may
 * override) a minimal environment: the parent's PATH/HOME and the bootstrap's variables.
 */
export function startIrsa(
  argv: string[],
  env: Record<string, string> = {},
  tmpParent = tmpdir(),
  /** The TMPDIR of an earlier run (e.g. sweep after a killed run), instead of a new one. */
  sameTmpAs?: IrsaRun,
): IrsaRun {
  const tmp = sameTmpAs?.tmp ?? mkdtempSync(path.join(tmpParent, 'irsa-rel-'));
  // tsx caches compiled modules in <TMPDIR>/tsx-<uid>: share this process's cache (a cold one
  // costs each run about a second of CPU).
  const tsxCache = `tsx-${process.getuid?.() ?? 0}`;
  if (!sameTmpAs && existsSync(path.join(tmpdir(), tsxCache)))
    symlinkSync(path.join(tmpdir(), tsxCache), path.join(tmp, tsxCache));
  const reportsDir = sameTmpAs?.reportsDir ?? path.join(tmp, 'reports');
  const base: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'IRSA_NODE', 'IRSA_CACHE', 'IRSA_BIN_DIR', 'IRSA_VENV']) {
    const v = process.env[k];
    if (v) base[k] = v;
  }
  const child = spawn('bash', [IRSA, ...argv], {
    cwd: repoRoot,
    env: { ...base, TMPDIR: tmp, IRSA_REPORTS_DIR: reportsDir, FORCE_COLOR: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const started = Date.now();
  let out = '';
  let err = '';
  let runId: string | undefined;
  const seen = new Map<number, ProcInfo>();
  const ports = new Set<number>();
  let lastSnapshot = 0;
  let running = true;
  const snapshot = (force = false) => {
    if (!running || child.pid === undefined) return;
    const now = Date.now();
    if (!force && now - lastSnapshot < 100) return;
    lastSnapshot = now;
    const procs = descendants(child.pid);
    for (const p of procs) seen.set(p.pid, p);
    for (const port of listeningPortsOf([child.pid, ...procs.map((p) => p.pid)])) ports.add(port);
  };
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  let watcher: FSWatcher | undefined;
  const runDir = () => (runId ? path.join(runsRootIn(tmp), runId) : undefined);
  const ledgerEntries = (): LedgerEntry[] => {
    const dir = runDir();
    if (!dir) return [];
    try {
      return readFileSync(path.join(dir, 'ledger.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { op: string; entry?: LedgerEntry })
        .filter((l) => l.op === 'created' && l.entry)
        .map((l) => l.entry as LedgerEntry);
    } catch {
      return [];
    }
  };
  const onData = (which: 'out' | 'err') => (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    if (which === 'out') out += text;
    else err += text;
    if (!runId) {
      const m = /irsa-conformance run (ic[a-z0-9]+)/.exec(out + err);
      if (m) {
        runId = m[1];
        const dir = runDir() as string;
        if (existsSync(dir)) {
          watcher = watch(dir, () => notify());
          watcher.on('error', () => undefined);
        }
      }
    }
    snapshot();
    notify();
  };
  child.stdout?.on('data', onData('out'));
  child.stderr?.on('data', onData('err'));
  const exited = new Promise<RunResult>((resolve) => {
    child.on('exit', (code, signal) => {
      running = false;
      watcher?.close();
      notify();
      resolve({
        code,
        signal,
        stdout: out,
        stderr: err,
        seconds: (Date.now() - started) / 1000,
        ...(runId ? { runId } : {}),
      });
    });
  });
  const waitFor = <T>(check: () => T | undefined, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const w = () => {
        const v = check();
        if (v !== undefined) {
          waiters.delete(w);
          resolve(v);
        } else if (!running) {
          waiters.delete(w);
          reject(new Error(`the run exited before ${what}\nstderr:\n${err.slice(-3000)}`));
        }
      };
      waiters.add(w);
      w();
    });
  return {
    child,
    tmp,
    reportsDir,
    stdout: () => out,
    stderr: () => err,
    runId: () => runId,
    waitForOutput: (re) =>
      waitFor(() => {
        const m = re.exec(out + err);
        return m ? m[0] : undefined;
      }, `output matched ${re}`),
    waitForLedger: (pred) => waitFor(() => ledgerEntries().find(pred), 'the ledger held the entry waited for'),
    ledgerEntries,
    signal(sig) {
      snapshot(true);
      child.kill(sig);
    },
    record() {
      snapshot(true);
    },
    exited,
    seen,
    ports,
  };
}

export interface Leftovers {
  processes: string[];
  ports: number[];
  tempDirs: string[];
}

function livingProcesses(run: IrsaRun): string[] {
  const processes = new Map<number, string>();
  for (const p of run.seen.values()) {
    const now = readProc(p.pid);
    if (now && now.start === p.start) processes.set(p.pid, `${p.pid} ${p.cmd.slice(0, 160)}`);
  }
  for (const p of processesUsing(run.tmp)) processes.set(p.pid, `${p.pid} ${p.cmd.slice(0, 160)}`);
  return [...processes.values()];
}

/**
 * What of a finished run is still there: processes, listening ports, temporary directories.
 * Helpers that end when their parent does (tsx's esbuild service notices the closed pipe) get up
 * to `graceMs` to go.
 */
export async function leftoversOf(run: IrsaRun, graceMs = 3000): Promise<Leftovers> {
  const deadline = Date.now() + graceMs;
  let processes = livingProcesses(run);
  while (processes.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    processes = livingProcesses(run);
  }
  // A port the run freed may be taken at once by any other process on a busy machine (every
  // harness probes free ports by listening on them for a moment): a port counts when one of the
  // run's processes (or one using its directory) holds it, or when something unknown still
  // listens there after a few looks.
  let ports: number[] = [...run.ports];
  for (let look = 0; look < 5 && ports.length > 0; look++) {
    if (look > 0) await new Promise((resolve) => setTimeout(resolve, 200));
    const still: number[] = [];
    for (const port of ports) {
      if (!(await portListening(port))) continue;
      const held = tcpListeners(allPids()).filter((l) => l.port === port);
      const ours = held.some((l) => {
        const p = run.seen.get(l.pid);
        return (p && readProc(l.pid)?.start === p.start) || processesUsing(run.tmp).some((x) => x.pid === l.pid);
      });
      if (ours || held.length === 0) still.push(port);
    }
    ports = still;
  }
  const tempDirs: string[] = [];
  const runs = runsRootIn(run.tmp);
  if (existsSync(runs)) for (const d of readdirSync(runs)) tempDirs.push(path.join(runs, d));
  // The embedded target's work directory is <TMPDIR>/irsa-<envId>-XXXXXX.
  for (const d of readdirSync(run.tmp)) if (/^irsa-env/.test(d)) tempDirs.push(path.join(run.tmp, d));
  return { processes, ports, tempDirs };
}

/** Resources on an attached environment that still carry the run's tag or label. */
export async function taggedResourcesOf(
  descriptor: TargetDescriptor,
  runId: string,
  { waitForNamespaces = true } = {},
): Promise<string[]> {
  const c = createClients(descriptor);
  try {
    // A run on a warm environment leaves its namespaces terminating (support/targets/warm-deletions.ts):
    // give the namespace controller its 5 s; a namespace still there afterwards is a leftover.
    if (waitForNamespaces) await waitForNamespacesGone(c, `${LABEL_RUN_ID}=${runId}`, 30);
    const r = await findLeftovers(c, descriptor, { runId });
    if (r.problems.length) throw new Error(`could not list everything: ${r.problems.join('; ')}`);
    // Namespaces count until they are gone, terminating or not.
    return r.found.map((l) => l.what);
  } finally {
    c.destroy();
  }
}

export function removeRun(run: IrsaRun): void {
  rmSync(run.tmp, { recursive: true, force: true });
}

/** A suite's `after`: kills the runs still going, removes them, stops the warm environment, removes `dir`. */
export async function disposeRuns(runs: IrsaRun[], warm: WarmEnvironment | undefined, dir?: string): Promise<void> {
  for (const r of runs) {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    removeRun(r);
  }
  await warm?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** A feature file in a temporary directory (cucumber accepts absolute paths). */
export function writeFeature(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

export interface WarmEnvironment {
  statePath: string;
  descriptor: TargetDescriptor;
  /** Process ids of its components, to check that runs attached to it leave it running. */
  pids: number[];
  stop(): Promise<void>;
}

/**
 * A warm embedded environment in this process, as `npm run env -- up` makes one (the target
 * writes the state file: descriptor, webhook flags), for runs started with IRSA_ATTACH.
 */
export async function startWarmEnvironment(dir: string): Promise<WarmEnvironment> {
  const { startEmbeddedTarget } = await import('../../support/targets/embedded/index.ts');
  const { embeddedTestOptions } = await import('./embedded-options.ts');
  const statePath = path.join(dir, 'warm.json');
  const t = await startEmbeddedTarget(
    embeddedTestOptions(dir, {
      logsDir: path.join(dir, 'logs'),
      envId: `envrel${process.pid.toString(36)}`,
      stateFile: statePath,
    }),
  );
  return { statePath, descriptor: t.descriptor, pids: t.state.processes.map((p) => p.pid), stop: () => t.stop() };
}

/** Pids (of `pids`) that are no longer running. */
export function deadPids(pids: number[]): number[] {
  return pids.filter((pid) => !existsSync(`/proc/${pid}`));
}

/**
 * Runs tasks at most `n` at a time (runs of the harness are CPU-bound on two cores): the returned
 * function takes a task and resolves with its result when it has had its turn.
 */
export function limited(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: (() => void)[] = [];
  const acquire = () =>
    new Promise<void>((resolve) => {
      if (running < n) {
        running++;
        resolve();
      } else queue.push(resolve);
    });
  const release = () => {
    const next = queue.shift();
    if (next) next();
    else running--;
  };
  return async (task) => {
    await acquire();
    try {
      return await task();
    } finally {
      release();
    }
  };
}

/** The report files a run wrote into its reports directory (cucumber's formatters). */
export function reportFiles(reportsDir: string): string[] {
  if (!existsSync(reportsDir)) return [];
  return readdirSync(reportsDir).filter((f) =>
    /^(cucumber\.(html|ndjson)|junit\.xml|@?rerun\.txt)$|\.partial$/.test(f),
  );
}
