/**
 * The image's entrypoint (support/image/build.ts): `node --import tsx support/cli/entrypoint.ts
 * [command [args]]`, the command `verify` unless given (any command of support/cli/main.ts runs).
 *
 *   - Says what runs: the image's version and revision (IMAGE.json), and whether the cluster is the
 *     one the pod runs in (the live target then uses the in-cluster configuration:
 *     support/kube/in-cluster.ts; no kubeconfig is needed in a pod).
 *   - Runs the command as a child process and passes SIGTERM and SIGINT on to it (as PID 1 of a
 *     container a process gets no default signal handling): a Job's deletion or deadline ends the
 *     run through its own clean-up.
 *   - Prints the verify summary (reports/verify-summary.md) when there is one: `kubectl logs` of a
 *     Job or CronJob run shows the verdict and each check.
 *   - Under Sonobuoy (SONOBUOY_RESULTS_DIR set, as its aggregator sets it for a plugin): the reports
 *     go to <results dir>/irsa-conformance/, are packed into <results dir>/irsa-conformance.tar.gz,
 *     and the file <results dir>/done names that tarball, which is Sonobuoy's plugin contract; its
 *     worker then hands the results to the aggregator, which reads junit.xml (result-format junit).
 *     The exit code is then 0 whatever the checks found (failures are test results, not a plugin
 *     error); a run that could not start (exit 2) still hands over a junit.xml whose one test case
 *     fails with the cause and the hint.
 * Outside Sonobuoy the exit code is the command's (0 passed, 1 a check failed, 2 bad input, 130/143).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeLayer } from '../image/oci.ts';
import { treeEntries } from '../image/tar.ts';
import { failedRunJUnit } from '../junit.ts';
import { detectInCluster } from '../kube/in-cluster.ts';
import { repoRoot } from '../paths.ts';
import { redact } from '../redact.ts';

export const SONOBUOY_RESULTS_ENV = 'SONOBUOY_RESULTS_DIR';
export const SONOBUOY_TARBALL = 'irsa-conformance.tar.gz';

function say(line: string): void {
  process.stderr.write(`[entrypoint] ${line}\n`);
}

function imageInfo(): string {
  try {
    const i = JSON.parse(readFileSync(path.join(repoRoot, 'IMAGE.json'), 'utf8')) as {
      version: string;
      revision: string;
    };
    return `irsa-conformance ${i.version} (image, revision ${i.revision})`;
  } catch {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    return `irsa-conformance ${pkg.version} (a checkout at ${repoRoot})`;
  }
}

/** The command's exit code and the last part of what it printed on stderr (the cause of an exit 2). */
function runCommand(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stderrTail: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'support/cli/main.ts'), ...args], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    let tail = '';
    child.stderr.on('data', (c: Buffer) => {
      process.stderr.write(c);
      tail = (tail + c.toString()).slice(-8000);
    });
    const forward = (signal: NodeJS.Signals) => {
      say(`${signal}: passed on to the run`);
      child.kill(signal);
    };
    process.on('SIGTERM', forward);
    process.on('SIGINT', forward);
    child.on('close', (code, signal) => {
      process.off('SIGTERM', forward);
      process.off('SIGINT', forward);
      resolve({ code: code ?? (signal === 'SIGTERM' ? 143 : signal === 'SIGINT' ? 130 : 1), stderrTail: tail });
    });
  });
}

/** The `irsa: <cause>` and `hint: <hint>` lines a run that refused to start printed last. */
export function usageFailure(stderrTail: string): { cause: string; hint: string } | undefined {
  const lines = stderrTail.split('\n');
  const at = lines.map((l) => l.startsWith('irsa: ')).lastIndexOf(true);
  if (at < 0) return undefined;
  const hint = lines.slice(at + 1).find((l) => l.startsWith('hint: '));
  return { cause: (lines[at] as string).slice(6), hint: hint ? hint.slice(6) : '' };
}

/**
 * Sonobuoy's side of a finished run: a junit.xml in the reports (the run's own, or one naming why
 * it did not run), the reports packed, and the done file naming the tarball (written last, atomically).
 */
export async function handOverToSonobuoy(
  resultsDir: string,
  reportsDir: string,
  run: { code: number; stderrTail: string; command: string },
): Promise<string> {
  mkdirSync(reportsDir, { recursive: true });
  const junit = path.join(reportsDir, 'junit.xml');
  if (run.code !== 0 && run.code !== 1) {
    const why = usageFailure(run.stderrTail);
    const message = why
      ? `${why.cause}${why.hint ? ` (hint: ${why.hint})` : ''}`
      : `the run ended with exit code ${run.code}`;
    // A run that stopped before its checks (bad settings, interrupted) has no junit.xml of its own;
    // one it wrote before an interruption stays, with this beside it.
    const target = existsSync(junit) ? path.join(reportsDir, 'junit-run-error.xml') : junit;
    writeFileSync(
      target,
      failedRunJUnit(
        'irsa-conformance',
        `irsa-conformance ${run.command} ran to completion`,
        redact(message),
        redact(run.stderrTail.split('\n').slice(-40).join('\n')),
      ),
    );
  }
  const tarball = path.join(resultsDir, SONOBUOY_TARBALL);
  const now = Math.floor(Date.now() / 1000);
  await writeLayer(treeEntries(reportsDir, 'irsa-conformance/', now), tarball, now);
  const done = path.join(resultsDir, 'done');
  writeFileSync(`${done}.tmp`, tarball);
  renameSync(`${done}.tmp`, done);
  return tarball;
}

export async function runEntrypoint(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = argv.length ? argv : ['verify'];
  say(imageInfo());
  const pod = detectInCluster(env);
  const kubeconfigSet = Boolean(env.IRSA_KUBECONFIG || env.KUBECONFIG);
  if (pod && !kubeconfigSet)
    say(`in a pod (ServiceAccount ${pod.serviceAccount ?? 'unknown'}): the cluster is this one, ${pod.server}`);
  else if (kubeconfigSet) say(`kubeconfig from ${env.IRSA_KUBECONFIG ? 'IRSA_KUBECONFIG' : 'KUBECONFIG'}`);

  const resultsDir = env[SONOBUOY_RESULTS_ENV];
  const childEnv: NodeJS.ProcessEnv = { ...env };
  let reportsDir = path.resolve(repoRoot, env.IRSA_REPORTS_DIR ?? 'reports');
  if (resultsDir) {
    reportsDir = path.join(resultsDir, 'irsa-conformance');
    childEnv.IRSA_REPORTS_DIR = reportsDir;
    // A done file of an earlier attempt would hand over stale results.
    rmSync(path.join(resultsDir, 'done'), { force: true });
    say(`Sonobuoy plugin: results in ${resultsDir}, handed over through ${path.join(resultsDir, 'done')}`);
  }
  say(`running: ${args.join(' ')}`);
  const run = await runCommand(args, childEnv);

  const summary = path.join(reportsDir, 'verify-summary.md');
  if (existsSync(summary)) process.stdout.write(`\n${readFileSync(summary, 'utf8')}\n`);
  if (!resultsDir) {
    say(`exit code ${run.code}`);
    return run.code;
  }
  const tarball = await handOverToSonobuoy(resultsDir, reportsDir, { ...run, command: args[0] as string });
  say(`exit code ${run.code}; results handed to Sonobuoy: ${tarball}`);
  return 0;
}

// Run only as the program itself (tests import the functions above).
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(repoRoot, 'support/cli/entrypoint.ts')) {
  runEntrypoint(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`irsa: entrypoint: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
