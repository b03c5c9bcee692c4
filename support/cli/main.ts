/**
 * The harness's entry point (tools/irsa runs it on Node >= 22 with tsx): the command named by the
 * arguments (support/cli/commands.ts), and its exit code as the process's.
 * Exit codes: 0 ok, 1 failed checks, 2 bad input or environment, 130/143 interrupted.
 */
import { cliExitCode } from './commands.ts';

// Marks the harness's processes (and, inherited, its workers and children): cucumber.js stops a
// cucumber-js started on its own with a hint instead.
process.env.IRSA_HARNESS = '1';

process.exitCode = await cliExitCode(process.argv.slice(2));
