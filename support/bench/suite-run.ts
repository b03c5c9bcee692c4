/**
 * One suite run of the bench: the suite as a child process (`main.ts conformance`), its duration,
 * its own figures (IRSA_BENCH_OUT) and its scenarios' durations from its ndjson; a failed run's
 * reports are kept. The bench's temporary directories and its interruption (SIGINT/SIGTERM: the
 * run in progress cleans up, the directories go, exit 130/143) live here too, because the child
 * in progress is what a signal must reach.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readMessages, scenarioOutcomes } from '../outcomes.ts';
import { repoRoot } from '../paths.ts';

export interface SuiteRun {
  seconds: number;
  exitCode: number;
  /** A failed run's failing scenarios, each with the first line of its failed step's message. */
  failures: string[];
  bench?: { maxRssKb: number; counts: Record<string, number> };
  /** Each finished scenario's duration. */
  scenarioSeconds: number[];
}

/**
 * SIGINT/SIGTERM (issue 16): the suite run in progress gets the signal and cleans up as any run
 * does, the bench's own targets stop (their signal handlers, then their exit handlers), its
 * temporary directories are removed, no figures are written, exit 130/143.
 */
const interruption: { signal?: NodeJS.Signals; child?: ReturnType<typeof spawn>; dirs: Set<string> } = {
  dirs: new Set(),
};
export function onBenchSignal(signal: NodeJS.Signals): void {
  if (interruption.signal) return;
  interruption.signal = signal;
  process.stderr.write(
    `\nbench: ${signal}: the suite run in progress cleans up, then the bench stops; no figures are written\n`,
  );
  const child = interruption.child;
  child?.kill(signal);
  const childGone = new Promise<void>((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('close', () => resolve());
  });
  const bound = new Promise<void>((resolve) => setTimeout(resolve, 120_000).unref());
  void Promise.race([childGone, bound]).then(() => {
    for (const d of interruption.dirs) rmSync(d, { recursive: true, force: true });
    process.exit(signal === 'SIGTERM' ? 143 : 130);
  });
}

/** A temporary directory of the bench: removed if the bench is interrupted. */
export function benchTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  interruption.dirs.add(dir);
  return dir;
}

/**
 * Runs the suite as a child process; reads its own figures (IRSA_BENCH_OUT) and its ndjson. The
 * reports of a run that failed are moved to `keepFailedIn` (the bench's reports directory).
 */
export function runSuite(env: Record<string, string>, args: string[], keepFailedIn: string): Promise<SuiteRun> {
  const reports = benchTempDir('irsa-bench-');
  const benchOut = path.join(reports, 'bench-run.json');
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'support/cli/main.ts', 'conformance', ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env, IRSA_REPORTS_DIR: reports, IRSA_BENCH_OUT: benchOut },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    interruption.child = child;
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.on('close', (code) => {
      interruption.child = undefined;
      // Interrupted: onBenchSignal removes the directory and ends the bench.
      if (interruption.signal) return;
      const seconds = (Date.now() - started) / 1000;
      const scenarios = scenarioOutcomes(readMessages(path.join(reports, 'cucumber.ndjson')));
      const scenarioSeconds = scenarios.flatMap((o) => (o.seconds === undefined ? [] : [o.seconds]));
      const failures = scenarios
        .filter((o) => o.status === 'FAILED')
        .map((o) => `${o.name}: ${(o.message ?? '').split('\n')[0]?.slice(0, 300)}`);
      const bench = existsSync(benchOut)
        ? (JSON.parse(readFileSync(benchOut, 'utf8')) as SuiteRun['bench'])
        : undefined;
      if (code !== 0) {
        const kept = path.join(keepFailedIn, `bench-failed-${path.basename(reports)}`);
        mkdirSync(keepFailedIn, { recursive: true });
        renameSync(reports, kept);
        interruption.dirs.delete(reports);
        process.stderr.write(
          [
            `bench: a suite run exited ${code} (its time is left out of the figures); reports kept in ${kept}`,
            ...failures.map((f) => `  failed: ${f}`),
            ...(failures.length ? [] : err.split('\n').slice(-12)),
            '',
          ].join('\n'),
        );
      } else {
        rmSync(reports, { recursive: true, force: true });
        interruption.dirs.delete(reports);
      }
      resolve({ seconds, exitCode: code ?? 1, failures, scenarioSeconds, ...(bench ? { bench } : {}) });
    });
  });
}
