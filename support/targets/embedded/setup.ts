/**
 * The embedded target's set-up, run by a command only when it is about to start an embedded
 * target (conformance with the embedded target, test, selftest, bench, `env up`): the Python env
 * with moto and the AWS CLI, and the Go-built components (`tools/bootstrap.sh embedded`). Every
 * other path (`verify`, `-p live`, `-p docker`, sweep, --help, --dry-run) needs only the Node
 * runtime and node_modules that tools/irsa provides, so a machine with Node and npm only runs them.
 *
 * Cached, the set-up takes a fraction of a second; cold, it prints what it builds and how long each
 * part took. A failure (no Go, no Python, a build that failed) is a UsageError with the set-up's own
 * cause and hint: exit 2. Child processes of a command that did the set-up inherit its result.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { UsageError } from '../../errors.ts';
import { repoRoot } from '../../paths.ts';

/** Set in the environment once the set-up is done, so that child processes do not repeat it. */
export const SETUP_DONE_VAR = 'IRSA_EMBEDDED_SETUP_DONE';

/** Runs `tools/bootstrap.sh embedded`, streams its progress to stderr and sets IRSA_BIN_DIR and IRSA_VENV. */
export async function ensureEmbeddedSetup(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (env[SETUP_DONE_VAR] === '1') return;
  const script = path.join(repoRoot, 'tools', 'bootstrap.sh');
  // bootstrap.sh prints `export NAME=<%q-quoted value>` lines: let bash unquote them.
  const program = 'out=$(bash "$0" embedded) || exit $?; eval "$out"; printf "%s\\0%s\\0" "$IRSA_BIN_DIR" "$IRSA_VENV"';
  const { code, stdout, cause, hint } = await new Promise<{
    code: number;
    stdout: string;
    cause?: string;
    hint?: string;
  }>((resolve) => {
    const child = spawn('bash', ['-c', program, script], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let pending = '';
    let cause: string | undefined;
    let hint: string | undefined;
    const line = (l: string) => {
      // The set-up's own error lines become the UsageError, printed once by the entry point.
      if (l.startsWith('irsa: ')) cause = l.slice('irsa: '.length);
      else if (l.startsWith('hint: ')) hint = l.slice('hint: '.length);
      else process.stderr.write(`${l}\n`);
    };
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      pending += c.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) line(l);
    });
    child.on('error', (e) => resolve({ code: 127, stdout, cause: `cannot run bash: ${e.message}` }));
    child.on('close', (c) => {
      if (pending) line(pending);
      resolve({ code: c ?? 1, stdout, ...(cause ? { cause } : {}), ...(hint ? { hint } : {}) });
    });
  });
  if (code !== 0) {
    throw new UsageError(
      cause ?? `the embedded target's set-up (tools/bootstrap.sh embedded) failed with exit code ${code}`,
      hint ?? 'see its output above; run `bash tools/bootstrap.sh embedded` to retry it alone',
    );
  }
  const [binDir, venv] = stdout.split('\0');
  if (!binDir || !venv)
    throw new UsageError(
      "the embedded target's set-up printed no IRSA_BIN_DIR or IRSA_VENV",
      'run `bash tools/bootstrap.sh embedded` to see what it prints',
    );
  // The target's code reads process.env; a caller's own env (a run's) gets the same values.
  for (const e of new Set([env, process.env])) {
    e.IRSA_BIN_DIR = binDir;
    e.IRSA_VENV = venv;
    e[SETUP_DONE_VAR] = '1';
  }
}
