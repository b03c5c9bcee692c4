/**
 * Where things live: the repository root, the cache, and the harness's state on this machine.
 *
 * The state (run directories with their state files and ledgers, warm environments' state files)
 * is per user: `$XDG_RUNTIME_DIR/irsa-conformance` when XDG_RUNTIME_DIR is a directory of this
 * user's, else `$TMPDIR/irsa-conformance-<uid>`. Each of these directories is created with mode
 * 0700 and used only while it is a real directory (not a symbolic link) owned by this user with
 * mode 0700: another user cannot plant a state file there, nor make the harness write through a
 * link. What is found otherwise is refused (UsageError, exit 2) with the directory named.
 */
import { accessSync, constants, existsSync, lstatSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The cache (built components, images, the Node runtime): IRSA_CACHE, else ~/.cache/irsa-conformance. */
export function cacheDirFor(env: NodeJS.ProcessEnv = process.env): string {
  return env.IRSA_CACHE || path.join(os.homedir(), '.cache', 'irsa-conformance');
}
export const cacheDir = cacheDirFor();

const uid = (): number => process.getuid?.() ?? -1;

/** True when `dir` is a directory (not a link) of this user's with mode 0700. */
function ownPrivateDirectory(dir: string): boolean {
  try {
    const s = lstatSync(dir);
    return s.isDirectory() && (uid() < 0 || s.uid === uid()) && (s.mode & 0o777) === 0o700;
  } catch {
    return false;
  }
}

/** The per-user state directory for this environment (TMPDIR, XDG_RUNTIME_DIR); not created here. */
export function stateRootFor(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  // Kept across `su` or `sudo -E`, it names another user's directory: not ours to use.
  if (xdg && path.isAbsolute(xdg) && ownPrivateDirectory(xdg)) return path.join(xdg, 'irsa-conformance');
  const tmp = env.TMPDIR && path.isAbsolute(env.TMPDIR) ? env.TMPDIR : os.tmpdir();
  return path.join(tmp, `irsa-conformance-${uid() < 0 ? os.userInfo().username : uid()}`);
}

export const stateRoot = stateRootFor();
/** Run directories (state file, ledger) live outside the repo and are removed at the end of a run. */
export const runsRoot = path.join(stateRoot, 'runs');
/** Warm environments' state files. */
export const envsRoot = path.join(stateRoot, 'envs');

/**
 * Creates `dir` (under `stateRoot`, or `stateRoot` itself) and the directories between, each with
 * mode 0700, and checks each: a symbolic link, another owner or other permissions are refused.
 * Returns `dir`.
 */
export function ensurePrivateDir(dir: string, root = stateRoot): string {
  const rel = path.relative(root, dir);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`ensurePrivateDir: ${dir} is not under ${root}`);
  // TMPDIR (or XDG_RUNTIME_DIR) itself may be a link (/tmp -> /private/tmp): followed.
  const parent = path.dirname(root);
  try {
    const s = statSync(parent);
    if (!s.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (e) {
    throw new UsageError(
      `the temporary directory ${parent} is not usable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'set TMPDIR to an existing directory this user may write to',
    );
  }
  let current = root;
  for (const part of ['', ...rel.split(path.sep).filter(Boolean)]) {
    current = part ? path.join(current, part) : current;
    try {
      mkdirSync(current, { mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST')
        throw new UsageError(
          `cannot create ${current}: ${code ?? (e as Error).message}`,
          'set TMPDIR to a directory this user may write to',
        );
    }
    checkPrivateDir(current);
  }
  return dir;
}

/** Refuses (UsageError) a directory that is a link, not this user's, or not mode 0700. */
export function checkPrivateDir(dir: string): void {
  let s: ReturnType<typeof lstatSync>;
  try {
    s = lstatSync(dir);
  } catch (e) {
    throw new UsageError(
      `cannot read ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'set TMPDIR to a directory this user may write to',
    );
  }
  const hint = `the harness keeps credentials there: remove ${dir} if it is not yours to keep, or set TMPDIR elsewhere`;
  if (s.isSymbolicLink()) throw new UsageError(`${dir} is a symbolic link, not a directory of this user's`, hint);
  if (!s.isDirectory()) throw new UsageError(`${dir} exists and is not a directory`, hint);
  if (uid() >= 0 && s.uid !== uid())
    throw new UsageError(`${dir} belongs to user ${s.uid}, not to this user (${uid()})`, hint);
  if ((s.mode & 0o777) !== 0o700)
    throw new UsageError(
      `${dir} has mode ${(s.mode & 0o777).toString(8).padStart(4, '0')}, not 0700: other users could read or plant files there`,
      `chmod 700 ${dir}, or remove it`,
    );
}

/**
 * A state file (a warm environment's, named by IRSA_ATTACH or found in envsRoot) is trusted only
 * when it is a regular file of this user's that nobody else may write: it names pids to signal
 * and a kubeconfig to load.
 */
export function checkOwnFile(file: string, what: string): void {
  let s: ReturnType<typeof lstatSync>;
  try {
    s = lstatSync(file);
  } catch (e) {
    throw new UsageError(
      `cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'pass the state file `npm run env -- up` printed',
    );
  }
  const hint = `use a state file this user wrote (\`npm run env -- up\` prints it); remove ${file} if it is not yours`;
  if (!s.isFile()) throw new UsageError(`${what} ${file} is not a regular file`, hint);
  if (uid() >= 0 && s.uid !== uid())
    throw new UsageError(`${what} ${file} belongs to user ${s.uid}, not to this user (${uid()})`, hint);
  if ((s.mode & 0o022) !== 0)
    throw new UsageError(`${what} ${file} may be written by other users (mode ${(s.mode & 0o777).toString(8)})`, hint);
}

/** Creates the reports directory (IRSA_REPORTS_DIR) or refuses (UsageError) one that cannot hold reports. */
export function ensureReportsDir(dir: string): string {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw reportsDirUnusable(dir, e);
  }
  checkReportsDir(dir);
  return dir;
}

/**
 * The reports directory could be used, and nothing is made: it, or the nearest directory above it
 * that exists, is a directory this user may write to. Bad input is refused with it before a run
 * creates anything; ensureReportsDir makes the directory when the run starts.
 */
export function checkReportsDir(dir: string): void {
  let existing = path.resolve(dir);
  while (!existsSync(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  try {
    if (!statSync(existing).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(existing, constants.W_OK);
  } catch (e) {
    throw reportsDirUnusable(dir, e);
  }
}

function reportsDirUnusable(dir: string, e: unknown): UsageError {
  const code = (e as NodeJS.ErrnoException).code;
  const why =
    code === 'EEXIST' || code === 'ENOTDIR' ? 'it (or a directory above it) is a file' : (code ?? (e as Error).message);
  return new UsageError(
    `the reports directory ${dir} is not usable: ${why}`,
    'set IRSA_REPORTS_DIR to a directory this user may write to (default: reports/ in the clone)',
  );
}
