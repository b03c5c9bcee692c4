/**
 * `tools/irsa <args>` in this process (support/cli/commands.ts's cliExitCode), for the unit tier:
 * the exit code, what went to stdout and stderr, and what was left in the case's own reports
 * directory and TMPDIR. The settings are the case's: process.env holds them for the call (with
 * IRSA_HARNESS as main.ts sets it) and is restored afterwards. What the command writes to stdout and
 * stderr is caught by its asynchronous context, so the test runner's own writes (its reporter in this
 * process, or its channel to the parent on stdout) pass by untouched. Under the
 * unit tier's guard (test/support/unit-guard.ts) a command that would start a process, listen or
 * connect fails the test instead: what passes here started nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { cliExitCode } from '../../support/cli/commands.ts';

export interface InProcessResult {
  code: number;
  stdout: string;
  stderr: string;
  /** What the command left in its reports directory and TMPDIR (tsx's compile cache aside). */
  left: string[];
}

/**
 * A command's own reports directory and TMPDIR under `dir` (neither made yet), and what it left in
 * them: the reports directory's entries if it exists, and TMPDIR's (tsx's compile cache aside).
 */
export function caseDirs(dir: string): { reports: string; tmp: string; left: () => string[] } {
  const caseDir = mkdtempSync(path.join(dir, 'case-'));
  const reports = path.join(caseDir, 'reports');
  const tmp = path.join(caseDir, 'tmp');
  const left = () => [
    ...(existsSync(reports) ? [`reports: ${readdirSync(reports).join(', ')}`] : []),
    ...(existsSync(tmp) ? readdirSync(tmp).filter((e) => !e.startsWith('tsx-')) : []),
  ];
  return { reports, tmp, left };
}

const caughtOutput = new AsyncLocalStorage<{ out: string[]; err: string[] }>();
let catching = false;

/** stdout and stderr, from now on, go to the command whose context a write comes from, if any. */
function catchOutput(): void {
  if (catching) return;
  catching = true;
  for (const [stream, key] of [
    [process.stdout, 'out'],
    [process.stderr, 'err'],
  ] as const) {
    const write = stream.write.bind(stream) as (...a: unknown[]) => boolean;
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const caught = caughtOutput.getStore();
      if (!caught) return write(chunk, ...rest);
      caught[key].push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
      const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      done?.();
      return true;
    }) as typeof stream.write;
  }
}

export async function irsaInProcess(
  dir: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<InProcessResult> {
  const { reports, tmp, left } = caseDirs(dir);
  const env: Record<string, string> = {
    IRSA_REPORTS_DIR: reports,
    TMPDIR: tmp,
    IRSA_TARGET: '',
    IRSA_ATTACH: '',
    IRSA_HARNESS: '1',
    ...extraEnv,
  };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  const caught = { out: [] as string[], err: [] as string[] };
  catchOutput();
  let code: number;
  try {
    code = await caughtOutput.run(caught, () => cliExitCode(args));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  return { code, stdout: caught.out.join(''), stderr: caught.err.join(''), left: left() };
}
