/**
 * The harness's entry point (tools/irsa runs it on Node >= 22 with tsx):
 *   conformance [-p embedded|docker|live] [cucumber options]   run the suite
 *   verify [cucumber options]                                   the live target in verify-only mode (docs/live.md)
 *   test                                                        lint, types, unit tests, suite, self-test
 *   selftest                                                    the fault catalogue
 *   env up|down|status                                          a warm embedded environment
 *   sweep [--run-id ID] [--older-than 2h] [--dry-run]           delete what earlier runs left
 *   bench                                                       the benchmark
 *   steps-doc                                                   regenerate docs/steps.md
 *   image [--name NAME] [--output DIR]                          the harness's OCI image (build/image/)
 *   merge-junit --output FILE REPORT...                         one JUnit report from a sharded run's shards
 * Exit codes: 0 ok, 1 failed checks, 2 bad input or environment, 130/143 interrupted.
 */
import { formatUsageError, isUsageError } from '../errors.ts';

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'conformance': {
      const { runConformance } = await import('./conformance.ts');
      return (await runConformance({ argv: rest })).exitCode;
    }
    case 'verify': {
      // Pre-upgrade check of an existing setup: the live profile in verify-only mode.
      const { runConformance } = await import('./conformance.ts');
      const env = { ...process.env, IRSA_TARGET: 'live', IRSA_LIVE_MODE: 'verify-only' };
      return (await runConformance({ argv: ['-p', 'live', ...rest], env })).exitCode;
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
        `irsa: unknown command ${JSON.stringify(command ?? '')}\nhint: commands: conformance, verify, test, selftest, env, sweep, bench, steps-doc, image, merge-junit\n`,
      );
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (isUsageError(e)) {
      process.stderr.write(`${formatUsageError(e)}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`irsa: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    }
  },
);
