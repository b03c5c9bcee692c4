/**
 * Supervision of the local processes a target starts (etcd, kube-apiserver, moto, ...).
 *
 * Each process is the leader of its own process group (spawned detached, i.e. setsid), so that
 * stopping it also stops whatever it started (kwok's exec'd commands, Python workers) and nothing
 * else. Output goes straight to a log file (no pipes through this process, so a busy harness
 * never blocks a component). Readiness is a probe function retried with backoff until it
 * succeeds, the process exits (a start error that carries the tail of its log), or a timeout.
 *
 * Stopping: SIGTERM to the group, SIGKILL after a bound. Also usable on groups this process did
 * not start (a warm environment recorded in a state file) and synchronously from an exit handler.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { StartError } from './errors.ts';
import { redact } from './redact.ts';

export interface ProcessSpec {
  /** Component name, used in errors and progress lines. */
  name: string;
  command: string;
  args: string[];
  /** The complete environment: nothing of this process's environment is inherited implicitly. */
  env: Record<string, string>;
  cwd?: string;
  /** stdout and stderr are appended here. */
  logFile: string;
  /**
   * Killed by the kernel (SIGKILL) when this process dies, however it dies, SIGKILL included: no
   * exit handler is needed (Linux's parent-death signal, set by util-linux's setpriv before the
   * command is executed). For the components of a run's own environment, not a warm one.
   */
  dieWithParent?: boolean;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ReadinessOptions {
  /** What is being waited for, e.g. "GET /readyz". */
  what: string;
  timeoutMs: number;
  /** Hint of the StartError thrown on failure. */
  hint?: string;
  /** Aborted when the start as a whole has failed (another component died): its reason is thrown. */
  signal?: AbortSignal;
}

const DEFAULT_HINT = 'read the log named above; a busy port or a stale environment are the usual causes';

/** The last `maxLines` lines of a log file (at most the last 64 KiB), secrets masked. */
export function readLogTail(file: string, maxLines = 30): string {
  let fd: number | undefined;
  try {
    const size = statSync(file).size;
    const length = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(length);
    fd = openSync(file, 'r');
    readSync(fd, buf, 0, length, size - length);
    const lines = buf.toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return redact(lines.slice(-maxLines).join('\n'));
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** What /proc/<pid>/stat says of a process: state, parent, start time (clock ticks since boot). */
export function readProcStat(pid: number): { state: string; ppid: number; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] as string, ppid: Number(rest[1]), start: rest[19] as string };
  } catch {
    return undefined;
  }
}

/** A process as it can be recognised later: pid and start time (pids are reused). */
export interface ProcessIdentity {
  pid: number;
  /** Start time from /proc (empty where there is none). */
  start: string;
}

export function processIdentity(pid = process.pid): ProcessIdentity {
  return { pid, start: readProcStat(pid)?.start ?? '' };
}

/** True while the process `id` names runs (not a zombie, not another process with its pid). */
export function identityAlive(id: ProcessIdentity): boolean {
  if (!existsSync('/proc/self/stat')) {
    try {
      process.kill(id.pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  const now = readProcStat(id.pid);
  return now !== undefined && now.state !== 'Z' && (id.start === '' || now.start === id.start);
}

/** util-linux's setpriv (sets the parent-death signal), or undefined where it is missing. */
let setprivPath: string | null | undefined;
export function setpriv(): string | undefined {
  setprivPath ??= ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'].find((f) => existsSync(f)) ?? null;
  return setprivPath ?? undefined;
}

/** True while any process of the group `pgid` exists. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Waits until the group is gone, checking with a short backoff: the kernel offers no event for
 * "the last member of a process group exited" to a process that is not the members' parent.
 */
async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 100);
  }
  return true;
}

/**
 * argv[0] of a running process, or undefined if there is no such process. Used to make sure a pid
 * from a state file still belongs to the program that was started (pids are reused).
 */
export function processCommand(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  } catch {
    // No procfs (macOS): ask ps.
    try {
      return (
        execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' })
          .trim()
          .split(' ')[0] || undefined
      );
    } catch {
      return undefined;
    }
  }
}

/** SIGTERM to the group, SIGKILL after `graceMs`; resolves when no member is left (or gives up after 5 s more). */
export async function stopProcessGroup(pgid: number, graceMs = 1500): Promise<void> {
  if (!groupAlive(pgid)) return;
  signalGroup(pgid, 'SIGTERM');
  if (await waitGroupGone(pgid, graceMs)) return;
  signalGroup(pgid, 'SIGKILL');
  await waitGroupGone(pgid, 5000);
}

/** A child process leading its own process group. */
export class SupervisedProcess {
  readonly name: string;
  readonly pid: number;
  readonly command: string;
  readonly logFile: string;
  /** Resolves when the group leader exits. */
  readonly exited: Promise<ExitInfo>;
  #exit: ExitInfo | undefined;
  #stopping: Promise<void> | undefined;

  private constructor(spec: ProcessSpec, child: ChildProcess, pid: number) {
    this.name = spec.name;
    this.pid = pid;
    this.command = spec.command;
    this.logFile = spec.logFile;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  /** Starts the process; a command that cannot be executed at all is a StartError. */
  static async start(spec: ProcessSpec): Promise<SupervisedProcess> {
    const fd = openSync(spec.logFile, 'a', 0o600);
    const wrapper = spec.dieWithParent ? setpriv() : undefined;
    // setpriv execs the command: the process keeps its pid and /proc shows the command's argv.
    const [command, args] = wrapper
      ? [wrapper, ['--pdeathsig', 'KILL', '--', spec.command, ...spec.args]]
      : [spec.command, spec.args];
    try {
      const child = spawn(command, args, {
        cwd: spec.cwd,
        env: spec.env,
        detached: true,
        stdio: ['ignore', fd, fd],
      });
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid as number));
        child.once('error', reject);
      }).catch((e: NodeJS.ErrnoException) => {
        throw new StartError(spec.name, `cannot execute ${spec.command}: ${e.code ?? e.message}`, DEFAULT_HINT);
      });
      return new SupervisedProcess(spec, child, pid);
    } finally {
      closeSync(fd);
    }
  }

  get exitInfo(): ExitInfo | undefined {
    return this.#exit;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  tail(maxLines = 30): string {
    return readLogTail(this.logFile, maxLines);
  }

  /** A StartError naming this component, with its log's tail in the message and in `logTail`. */
  startError(problem: string, hint = DEFAULT_HINT): StartError {
    const tail = this.tail();
    const body = tail ? `\n--- last lines of ${this.logFile} ---\n${tail}` : ` (log: ${this.logFile})`;
    return new StartError(this.name, `${problem}${body}`, `${hint} (log: ${this.logFile})`, tail);
  }

  /**
   * Retries `probe` with backoff (25 ms doubling to 500 ms) until it returns true. Fails fast
   * with a StartError when the process exits, and with one when the timeout passes.
   */
  async waitReady(probe: () => Promise<boolean>, options: ReadinessOptions): Promise<void> {
    const deadline = Date.now() + options.timeoutMs;
    let delay = 25;
    let lastError = '';
    const aborted = new Promise<void>((resolve) => options.signal?.addEventListener('abort', () => resolve()));
    for (;;) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (!this.running) {
        const e = this.#exit;
        throw this.startError(
          `exited during start (code ${e?.code ?? 'none'}, signal ${e?.signal ?? 'none'}) before ${options.what} succeeded`,
          options.hint,
        );
      }
      try {
        if (await probe()) return;
      } catch (e) {
        lastError = e instanceof Error ? e.message : String(e);
      }
      if (Date.now() >= deadline) {
        const why = lastError ? ` (last probe error: ${redact(lastError)})` : '';
        throw this.startError(
          `not ready after ${options.timeoutMs / 1000} s waiting for ${options.what}${why}`,
          options.hint,
        );
      }
      // Wake early if the process exits while we back off.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise((resolve) => {
          timer = setTimeout(resolve, Math.min(delay, Math.max(0, deadline - Date.now())));
        }),
        this.exited,
        aborted,
      ]);
      clearTimeout(timer);
      delay = Math.min(delay * 2, 500);
    }
  }

  /** Stops the whole group. Idempotent. */
  stop(graceMs = 1500): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.running) signalGroup(this.pid, 'SIGTERM');
      const leaderGone = await Promise.race([
        this.exited.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), graceMs).unref()),
      ]);
      if (!leaderGone) signalGroup(this.pid, 'SIGKILL');
      await this.exited;
      // Members that outlive their leader (e.g. a command kwok exec'd) are stopped too.
      await stopProcessGroup(this.pid, 200);
    })();
    return this.#stopping;
  }

  /** For process 'exit' handlers, where nothing asynchronous runs any more. */
  killSync(): void {
    signalGroup(this.pid, 'SIGKILL');
  }
}

/** A free TCP port on 127.0.0.1 (free now; the component that gets it binds it moments later). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

/** True if something accepts TCP connections on 127.0.0.1:port. */
export async function portListening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

/** A TCP socket in LISTEN state: who holds it, where it listens. */
export interface Listener {
  pid: number;
  /** e.g. 127.0.0.1, ::1, 0.0.0.0, :: */
  address: string;
  port: number;
}

function parseProcNetAddress(hex: string): string {
  if (hex.length === 8) {
    const b = Buffer.from(hex, 'hex').reverse();
    return [...b].join('.');
  }
  // IPv6: four 32-bit words, each in host (little-endian) byte order.
  const words = (hex.match(/.{8}/g) ?? []).map((w) => Buffer.from(w, 'hex').reverse());
  const bytes = Buffer.concat(words);
  if (bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
    return [...bytes.subarray(12)].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** TCP listening sockets held by the given processes (from /proc; empty where there is none). */
export function tcpListeners(pids: number[]): Listener[] {
  const owner = new Map<string, number>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && !owner.has(m[1] as string)) owner.set(m[1] as string, pid);
      } catch {
        // closed meanwhile
      }
    }
  }
  const out: Listener[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const pid = owner.get(f[9] as string);
      if (f[3] !== '0A' || pid === undefined) continue;
      const [addr, port] = (f[1] as string).split(':');
      out.push({ pid, address: parseProcNetAddress(addr as string), port: Number.parseInt(port as string, 16) });
    }
  }
  return out;
}

/** Every process id on this machine (from /proc). */
export function allPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return [];
  }
}
