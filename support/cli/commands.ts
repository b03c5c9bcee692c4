/**
 * The harness's commands: the dispatch behind support/cli/main.ts (which is this plus the process's
 * exit code), callable in process, as the unit tier calls it (test/support/in-process-cli.ts).
 * Every command answers --help with its usage (exit 0, nothing done); see USAGE below.
 * Exit codes: 0 ok, 1 failed checks, 2 bad input or environment, 130/143 interrupted.
 */
import { formatUsageError, isUsageError } from '../errors.ts';

export const USAGE = `usage: npm run <command> -- [options]      (or: bash tools/irsa <command> [options])

commands:
  conformance [-p embedded|docker|live] [cucumber options] [features]   run the suite on a target
  verify [cucumber options]                 the live target in verify-only mode (docs/live.md)
  test [--only STAGES] [--dry-run]          lint, types, unit and integration tests, suite, self-test
  selftest [--list] [--only FAULTS] …       the suite against the fault catalogue (docs/selftest.md)
  env up|down|status                        a warm embedded environment for fast iteration
  sweep [--run-id ID] [--older-than AGE] [--dry-run]   delete what earlier runs left behind
  bench [--runs N] [--dry-run] …            the benchmark (reports/bench.json)
  steps-doc [--check]                       regenerate docs/steps.md
  image [--name NAME] [--output DIR]        the harness's OCI image (build/image/, docs/at-scale.md)
  merge-junit --output FILE REPORT...       one JUnit report from a sharded run's shards

\`npm run <command> -- --help\` explains a command. Settings are IRSA_* environment variables or the
IRSA_CONFIG file (README "Settings"). Exit codes: 0 ok, 1 a check failed, 2 bad input or
environment (nothing created), 130/143 interrupted.
`;

/** Runs one command; its exit code (a UsageError thrown is the caller's to print). */
export async function runCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'conformance': {
      const { runConformance } = await import('./conformance.ts');
      const result = await runConformance({ argv: rest });
      // After a component's death, requests a step or probe had in flight may still be retrying
      // against it: they must not hold the exit (issue 16: the run ends within 30 s of the death).
      if (result.targetDied) setTimeout(() => process.exit(result.exitCode), 3000).unref();
      return result.exitCode;
    }
    case 'verify': {
      // Pre-upgrade check of an existing setup: the live profile in verify-only mode.
      const { runConformance } = await import('./conformance.ts');
      const env = { ...process.env, IRSA_TARGET: 'live', IRSA_LIVE_MODE: 'verify-only' };
      return (await runConformance({ argv: ['-p', 'live', ...rest], env, command: 'verify' })).exitCode;
    }
    case 'test':
      return (await import('./test.ts')).runTests(rest);
    case 'selftest':
      return (await import('./selftest.ts')).runSelfTest(rest);
    case 'env':
      return (await import('./env.ts')).runEnv(rest);
    case 'sweep':
      return (await import('./sweep.ts')).runSweep(rest);
    case 'bench':
      return (await import('./bench.ts')).runBench(rest);
    case 'steps-doc':
      return (await import('./steps-doc.ts')).runStepsDoc(rest);
    case 'image':
      return (await import('./image.ts')).runImage(rest);
    case 'merge-junit':
      return (await import('./merge-junit.ts')).runMergeJUnit(rest);
    default:
      process.stderr.write(
        `irsa: unknown command ${JSON.stringify(command)}\nhint: commands: conformance, verify, test, selftest, env, sweep, bench, steps-doc, image, merge-junit (\`bash tools/irsa --help\`)\n`,
      );
      return 2;
  }
}

/**
 * A command's exit code, the way the process ends with it: bad input (a UsageError) is its cause and
 * hint on stderr and 2; anything else thrown is its stack and 1.
 */
export async function cliExitCode(argv: string[]): Promise<number> {
  try {
    return await runCommand(argv);
  } catch (e) {
    if (isUsageError(e)) {
      process.stderr.write(`${formatUsageError(e)}\n`);
      return 2;
    }
    process.stderr.write(`irsa: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}
