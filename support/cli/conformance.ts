/**
 * `npm run conformance`: the coordinator of a run.
 *   1. options and configuration (cucumber profile + IRSA_* settings), validated: exit 2 on bad input
 *   2. a dry run of the selected features: an undefined step is bad input (exit 2), before anything starts
 *   3. target up (or attached), capabilities probed, run state written for the worker threads
 *   4. cucumber in this process (progress on the terminal, reports/ html junit ndjson rerun)
 *   5. the run's remaining ledger flushed in reverse order, the target stopped, the matrix printed
 * SIGINT/SIGTERM at any point: no new steps start, the ledger is flushed, the target stopped,
 * exit 130/143. A second SIGINT exits at once and prints what was left behind.
 * A component of the target that dies (support/target-death.ts): said at once with its exit and
 * log tail, the step in flight fails with it, no further scenario starts, nothing is cleaned up
 * through the dead target, exit 1.
 * TEST-ONLY: IRSA_TEST_PAUSE_AT=teardown holds the end-of-run teardown until a signal arrives
 * (test/integration/reliability-interrupt.test.ts); never set it otherwise.
 * This file parses the arguments, keeps the order of the phases and the signal handling, and
 * prints. The phases' work is in support/run/ (selection.ts: the cucumber configuration and the
 * dry run; target.ts: the started target made ready and its capabilities; teardown.ts: the end of
 * the run on the target); the target's own special cases are its module's (support/targets/registry.ts).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadSupport, runCucumber } from '@cucumber/cucumber/api';
import type { Envelope } from '@cucumber/messages';
import parseTagExpression from '@cucumber/tag-expressions';
import { formatCapabilityMatrix } from '../capabilities.ts';
import { type HarnessConfig, loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { describeRef, Ledger } from '../ledger.ts';
import { configureLog, log } from '../log.ts';
import { newRunId } from '../names.ts';
import { OutcomeCollector, type ScenarioOutcome } from '../outcomes.ts';
import { writeOwner } from '../owner.ts';
import { checkReportsDir, ensurePrivateDir, ensureReportsDir, repoRoot, runsRoot } from '../paths.ts';
import { redact } from '../redact.ts';
import { stageReports } from '../reports.ts';
import { describeSelection, dryRunSelection, resolveCucumber, workerThreads } from '../run/selection.ts';
import { readyTarget } from '../run/target.ts';
import { cleanUpAfterRun } from '../run/teardown.ts';
import { runStatePath, writeRunState } from '../run-state.ts';
import { checkSetup } from '../setup/check.ts';
import { loadSetup } from '../setup/setup.ts';
import { requireShard, shardSuiteName } from '../shards.ts';
import { describeDeath, recordDeath, type TargetDeath, TargetDiedError } from '../target-death.ts';
import type { TargetHandle } from '../targets/module.ts';
import { loadTargetModule } from '../targets/registry.ts';
import { startTarget } from '../targets/start.ts';

export interface ConformanceOptions {
  argv: string[];
  /** `verify` (the live profile in verify-only mode) words its usage for itself. */
  command?: 'conformance' | 'verify';
  env?: NodeJS.ProcessEnv;
  /** Overrides of settings (the self-test points runs at fault setups). */
  overrides?: Record<string, unknown>;
  /** Called with every cucumber message (the self-test reads results from them). */
  onMessage?: (e: Envelope) => void;
}

export interface ConformanceResult {
  exitCode: number;
  runId?: string;
  counts: { passed: number; failed: number; skipped: number; other: number };
  /** Scenario name -> status and the first failure message. */
  scenarios: { name: string; uri: string; status: string; message?: string }[];
  /** A component of the target died during the run (what a step in flight left running may linger). */
  targetDied?: TargetDeath;
}

const CUCUMBER_OPTIONS = `cucumber options that pass through:
  --tags EXPR               only scenarios whose tags match, e.g. --tags '@infrastructure and not @slow'
  --name REGEXP             only scenarios whose name matches
  --parallel N              worker threads (default 2, or none for a selection of up to 12
                            scenarios; 1 runs them one after another; 0 in the harness's own thread)
  --dry-run                 list the selected scenarios; start nothing, write nothing
  --world-parameters JSON   settings, as the IRSA_CONFIG file's keys: '{"region":"eu-west-1"}'
  --retry N, --format …, --order …   as cucumber-js documents them
  features/02-application.feature[:LINE]   only these features (or scenarios); replaces the profile's
  reports/@rerun.txt        the scenarios that failed in the last run (the rerun file)`;

const TRAILER = `Settings: IRSA_* environment variables or the IRSA_CONFIG file (README "Settings", docs/live.md,
docs/docker.md). Reports: reports/cucumber.html, junit.xml, cucumber.ndjson, @rerun.txt, logs/.
Exit codes: 0 every check passed, 1 a check failed, 2 bad input or environment (nothing created),
130/143 interrupted (what was created is deleted first).`;

export const CONFORMANCE_USAGE = `usage: npm run conformance -- [-p embedded|docker|live] [cucumber options] [features | reports/@rerun.txt]

Runs the conformance suite on a target: starts it (embedded, docker) or connects to it (live),
measures its capabilities, runs the selected scenarios, deletes what they created, stops it.

  -p, --profile NAME        the target: embedded (default, local processes), docker (K3s and an
                            AWS emulator in containers), live (a real cluster and AWS account)

${CUCUMBER_OPTIONS}

${TRAILER}
`;

export const VERIFY_USAGE = `usage: npm run verify -- [cucumber options]

Checks the IRSA setup a cluster and an AWS account already have, before an upgrade: the live
target in verify-only mode. It writes nothing to AWS and creates at most one short-lived pod in
IRSA_VERIFY_NAMESPACE (none with IRSA_VERIFY_NO_POD=true). Needs IRSA_VERIFY_NAMESPACE,
IRSA_VERIFY_SERVICE_ACCOUNT, IRSA_VERIFY_ROLE_ARN, IRSA_VERIFY_ALLOWED_BUCKET and
IRSA_VERIFY_DENIED_BUCKET, a kubeconfig and AWS credentials (docs/live.md). The verdict is in
reports/verify-summary.md.

${CUCUMBER_OPTIONS}

${TRAILER}
`;

const OWN_FLAGS = new Set(['-p', '--profile']);

/** True when the arguments ask for help (an option, not the value of one such as --name). */
export function asksForHelp(argv: string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (VALUE_FLAGS.has(a) || OWN_FLAGS.has(a)) i++;
    else if (a === '--help' || a === '-h') return true;
  }
  return false;
}

function splitArgs(argv: string[]): { profile?: string; cucumberArgs: string[] } {
  const cucumberArgs: string[] = [];
  let profile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (OWN_FLAGS.has(a)) {
      profile = argv[++i];
      if (!profile) throw new UsageError(`${a} needs a profile name`, 'use -p embedded, -p docker or -p live');
    } else if (a.startsWith('--profile=')) profile = a.slice('--profile='.length);
    else cucumberArgs.push(a);
  }
  return profile === undefined ? { cucumberArgs } : { profile, cucumberArgs };
}

/** Cucumber options that take a value: what follows them is not a feature path. */
const VALUE_FLAGS = new Set([
  '-t',
  '--tags',
  '--name',
  '--parallel',
  '-f',
  '--format',
  '--format-options',
  '-i',
  '--import',
  '-r',
  '--require',
  '--retry',
  '--retry-tag-filter',
  '--order',
  '--world-parameters',
  '--language',
  '--shard',
  '-c',
  '--config',
  '--plugin',
  '--plugin-options',
  '--require-module',
  '--loader',
]);

/** Feature paths (and @rerun files) given on the command line: they replace the profile's paths. */
export function positionalPaths(args: string[]): string[] {
  const paths: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (VALUE_FLAGS.has(a)) i++;
    else if (!a.startsWith('-')) paths.push(a);
  }
  return paths;
}

/** The skipped scenarios, each with where it is and why it was skipped: the terminal's list. */
export function formatSkipped(skipped: ScenarioOutcome[]): string {
  return [
    `Skipped (${skipped.length}):`,
    ...skipped.map(
      (s) =>
        `  ${s.uri}${s.line ? `:${s.line}` : ''}  ${s.name}\n      ${redact(s.skipReason ?? 'no reason was given')}`,
    ),
  ].join('\n');
}

/** An invalid --tags expression is bad input that names itself (cucumber fails with a stack trace). */
export function checkTagOptions(argv: string[]): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const expression = a === '--tags' || a === '-t' ? argv[i + 1] : a.startsWith('--tags=') ? a.slice(7) : undefined;
    if (expression === undefined) continue;
    try {
      parseTagExpression(expression);
    } catch (e) {
      throw new UsageError(
        `--tags ${JSON.stringify(expression)} is not a tag expression: ${(e as Error).message.replace(/^Tag expression ".*" could not be parsed because of /, '')}`,
        "combine tags with and, or, not and parentheses, e.g. --tags '@infrastructure and not @slow'",
      );
    }
  }
}

/**
 * Support code is loaded once per process: ESM modules are cached, so a second load would register
 * no steps. A second run in one process (commands run in process, as the unit tier runs them) gets
 * the library the first one loaded with the same support settings.
 */
const supportLibraries = new Map<string, ReturnType<typeof loadSupport>>();
function loadSupportOnce(
  runConfiguration: Parameters<typeof loadSupport>[0],
  env: NodeJS.ProcessEnv,
): ReturnType<typeof loadSupport> {
  const key = JSON.stringify(runConfiguration.support);
  let library = supportLibraries.get(key);
  if (!library) {
    library = loadSupport(runConfiguration, { cwd: repoRoot, env });
    supportLibraries.set(key, library);
    library.catch(() => supportLibraries.delete(key));
  }
  return library;
}

export async function runConformance(opts: ConformanceOptions): Promise<ConformanceResult> {
  const env = opts.env ?? process.env;
  const empty = { counts: { passed: 0, failed: 0, skipped: 0, other: 0 }, scenarios: [] };
  if (asksForHelp(opts.argv)) {
    process.stdout.write(opts.command === 'verify' ? VERIFY_USAGE : CONFORMANCE_USAGE);
    return { exitCode: 0, ...empty };
  }
  // 1. configuration
  checkTagOptions(opts.argv);
  const { profile, cucumberArgs } = splitArgs(opts.argv);
  const positional = positionalPaths(cucumberArgs);
  const resolved = await resolveCucumber(
    {
      ...(profile !== undefined ? { profile } : {}),
      options: cucumberArgs.filter((a) => !positional.includes(a)),
      positional,
    },
    env,
  );
  const dryRun = resolved.runConfiguration.runtime.dryRun === true;
  // worldParameters (the profile's target, --world-parameters) are settings with the config file's
  // keys, between that file and the environment; a key the harness does not know is exit 2.
  const worldParameters = (resolved.useConfiguration.worldParameters ?? {}) as Record<string, unknown>;
  const config: HarnessConfig = loadConfig(env, opts.overrides ?? {}, worldParameters);
  const setup = loadSetup(config.setupDir);
  // Every template rendered and checked (syntax, placeholders, IAM policy grammar) before anything starts.
  checkSetup(setup);
  // A dry run writes nothing: no reports directory, no log file, no state directory. A run's state
  // (per user, 0700) and its reports directory must be usable: checked first. Bad input found
  // before the start (below) leaves no reports directory: it is made when the run starts.
  if (!dryRun) {
    ensurePrivateDir(runsRoot);
    checkReportsDir(config.reportsDir);
  }
  const formats = resolved.runConfiguration.formats;
  // Reports go where the settings say (reports/ unless IRSA_REPORTS_DIR).
  const files: Record<string, string> = {};
  for (const [file, formatter] of Object.entries(formats.files))
    files[path.join(config.reportsDir, path.basename(file))] = formatter;
  // A shard of a CI matrix (--shard i/n, support/shards.ts): its JUnit suite says which.
  const shard = requireShard(resolved.runConfiguration.sources.shard);
  const formatOptions = shard
    ? { ...formats.options, junit: { ...(formats.options.junit as object), suiteName: shardSuiteName(shard) } }
    : formats.options;
  const support = await loadSupportOnce(resolved.runConfiguration, env);
  const runConfiguration = {
    ...resolved.runConfiguration,
    formats: {
      ...formats,
      files,
      options: formatOptions,
      stdout: formats.stdout === 'progress-bar' && !process.stdout.isTTY ? 'progress' : formats.stdout,
    },
    support,
    // The settings the plugins need before the run state exists (the dry run of the selection).
    plugins: {
      specifiers: resolved.runConfiguration.plugins?.specifiers ?? [],
      options: { ...resolved.runConfiguration.plugins?.options, irsa: { tenants: config.tenants } },
    },
  };
  // The target's special cases come from its module (support/targets/registry.ts), never its name.
  const targetModule = await loadTargetModule(config.target);
  if (targetModule.selectScenarios) {
    // A target whose settings decide part of the selection (the live target's mode).
    runConfiguration.sources = {
      ...runConfiguration.sources,
      tagExpression: targetModule.selectScenarios(config, runConfiguration.sources.tagExpression),
    };
  }

  // 2. undefined steps are bad input: refuse before anything is created
  // A target that cannot start here says so before anything else happens.
  await targetModule.preflight?.({ config, setup, dryRun });
  const { scenarios: selected, undefinedSteps } = await dryRunSelection(runConfiguration, env);
  if (undefinedSteps.length > 0) {
    throw new UsageError(
      `${undefinedSteps.length} step(s) match no step definition, e.g. ${undefinedSteps[0]}`,
      'fix the step text (docs/steps.md lists every step) or add a definition under steps/',
    );
  }
  if (selected.length === 0) {
    throw new UsageError(
      `the selection runs no scenario: ${describeSelection(runConfiguration, resolved.given, config, targetModule)} match nothing`,
      '`npm run conformance -- --dry-run` lists what a selection runs; tags in use are in features/*.feature',
    );
  }
  runConfiguration.runtime = {
    ...runConfiguration.runtime,
    parallel: workerThreads(selected.length, runConfiguration.runtime.parallel, cucumberArgs),
  };
  if (dryRun) {
    // What would run, and nothing else: no target, no probes, no reports.
    for (const s of selected) process.stdout.write(`${s.uri}:${s.line}  ${s.name}\n`);
    process.stderr.write(
      `${selected.length} scenario(s) would run on the ${config.target} target${targetModule.selectionMode ? ` (${targetModule.selectionMode(config)})` : ''}; --dry-run started nothing\n`,
    );
    return { exitCode: 0, ...empty };
  }

  // 3. target, run directory, capabilities
  // What the target needs on this machine (the embedded target's components) is made ready only
  // now: after the input is known to be good.
  await targetModule.prepare?.(env);
  ensureReportsDir(config.reportsDir);
  configureLog({ file: path.join(config.reportsDir, 'logs', 'harness.log'), verbose: config.verbose });
  const runId = newRunId();
  const runDir = path.join(ensurePrivateDir(runsRoot), runId);
  mkdirSync(runDir, { mode: 0o700 });
  // Whose run it is: if this process is killed outright, sweep finds the run is no longer in progress.
  writeOwner(runDir, { kind: 'run', id: runId });
  // Reports are written in the run directory and published when the suite has finished (support/reports.ts).
  const reports = stageReports(runConfiguration.formats.files, runDir);
  const ledger = new Ledger(path.join(runDir, 'ledger.jsonl'));
  let target: TargetHandle | undefined;
  /** The target's start while it is in progress: a signal then waits for it instead of racing it. */
  let starting: Promise<TargetHandle> | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let finishing: Promise<void> | undefined;
  let tearingDown: Promise<void> | undefined;
  // Resolved when the main flow (start, probes, cucumber) has returned: nothing creates resources after it.
  let settle: () => void = () => undefined;
  const mainSettled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  let signalled: () => void = () => undefined;
  const signalArrived = new Promise<void>((resolve) => {
    signalled = resolve;
  });
  // A component of the target that dies (support/target-death.ts): noticed at once, recorded for the
  // workers (the step in flight fails with it, nothing further starts), and the run exits 1.
  let death: TargetDeath | undefined;
  let deathArrived: (d: TargetDeath) => void = () => undefined;
  const targetDied = new Promise<never>((_, reject) => {
    deathArrived = (d) => reject(new TargetDiedError(d));
  });
  targetDied.catch(() => undefined);
  const onDeath = (d: TargetDeath) => {
    if (death || interrupted) return;
    death = d;
    recordDeath(runDir, d);
    log.error(describeDeath(d));
    deathArrived(d);
  };
  /** What runs against the target before cucumber (issuer, probes) stops when the target dies. */
  const untilDeath = <T>(p: Promise<T>): Promise<T> => Promise.race([p, targetDied]);

  // Once per run: a signal during the end-of-run teardown joins it instead of starting a second one.
  const teardown = (): Promise<void> =>
    (tearingDown ??= (async () => {
      if (!target) return;
      const t = target;
      if (env.IRSA_TEST_PAUSE_AT === 'teardown' && !interrupted) {
        // TEST-ONLY (test/integration/reliability-interrupt.test.ts): hold the end-of-run teardown until a
        // signal arrives, so that the test interrupts exactly this phase.
        process.stderr.write('irsa-test: paused at teardown\n');
        // A pending promise alone does not keep Node running: hold the event loop open meanwhile.
        const hold = setInterval(() => undefined, 60_000);
        await signalArrived;
        clearInterval(hold);
      }
      try {
        await cleanUpAfterRun({
          target: t,
          ledger,
          config,
          runId,
          died: death !== undefined,
          mainSettled,
          interrupted: () => interrupted,
        });
      } finally {
        target = undefined;
      }
    })());

  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      // Second signal: leave now, but say what stays behind.
      if (target?.owned) {
        // Its components are killed by the exit handler (and the kernel); what they held goes with them.
        process.stderr.write("\nirsa: forced exit; the run's own target is stopped with everything in it\n");
      } else {
        const left = ledger.outstanding(undefined, true).map((e) => describeRef(e.ref));
        process.stderr.write(
          `\nirsa: forced exit; left behind: ${left.length ? left.join(', ') : 'nothing recorded'}\n`,
        );
        if (left.length) process.stderr.write(`hint: remove them with \`npm run sweep -- --run-id ${runId}\`\n`);
      }
      // The run directory only serves this process; left behind, it would also make sweep pass over the run.
      rmSync(runDir, { recursive: true, force: true });
      process.exit(signal === 'SIGTERM' ? 143 : 130);
    }
    interrupted = signal;
    signalled();
    writeFileSync(path.join(runDir, 'INTERRUPTED'), signal);
    process.stderr.write(
      `\nirsa: ${signal}: no new steps start; cleaning up (press Ctrl-C again to exit at once); an interrupted run writes no reports\n`,
    );
    finishing ??= (async () => {
      // During the target's start: the embedded target stops what it started on the signal and its
      // start then fails; a start that completes anyway is stopped by the teardown. Exiting before
      // either would orphan the components (they run in their own process groups).
      if (!target && starting) target = await starting.catch(() => undefined);
      await teardown();
    })()
      .catch((e: unknown) => log.error(`cleanup after ${signal} failed: ${(e as Error).message}`))
      .finally(() => {
        rmSync(runDir, { recursive: true, force: true });
        process.exit(signal === 'SIGTERM' ? 143 : 130);
      });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const collector = new OutcomeCollector();
  try {
    log.info(
      `irsa-conformance run ${runId}: ${config.target} target, setup ${path.relative(repoRoot, setup.dir) || setup.dir}${shard ? `, shard ${shard.index}/${shard.total}` : ''}, ${selected.length} scenario(s) ${runConfiguration.runtime.parallel ? `on ${runConfiguration.runtime.parallel} worker threads` : 'in one thread'}`,
    );
    const started = Date.now();
    starting = startTarget(config, setup, (line) => log.debug(line), onDeath);
    target = await starting;
    if (interrupted) return { exitCode: 130, runId, ...empty };
    const capabilities = await readyTarget({
      target,
      config,
      runId,
      ledger,
      started,
      untilDeath,
      interrupted: () => interrupted,
    });
    if (interrupted) return { exitCode: 130, runId, ...empty };
    writeRunState({
      runId,
      runDir,
      startedAt: new Date().toISOString(),
      config,
      target: target.descriptor,
      ...(target.components ? { components: target.components } : {}),
    });
    const childEnv = { ...env, IRSA_RUN_STATE: runStatePath(runDir) };
    process.env.IRSA_RUN_STATE = childEnv.IRSA_RUN_STATE;

    // 4. the suite
    const { success } = await runCucumber(
      { ...runConfiguration, formats: { ...runConfiguration.formats, files: reports.files } },
      { cwd: repoRoot, env: childEnv, stdout: process.stdout, stderr: process.stderr },
      (e) => {
        collector.add(e);
        opts.onMessage?.(e);
      },
    );
    // An interrupted run's reports would describe a run that did not happen as asked: none.
    if (!interrupted) reports.publish();
    const counts = collector.counts();
    const scenarios = collector.finished;
    process.stderr.write(`\n${formatCapabilityMatrix(config.target, capabilities)}\n`);
    const skipped = scenarios.filter((x) => x.status === 'SKIPPED');
    if (skipped.length) process.stderr.write(`${formatSkipped(skipped)}\n`);
    process.stderr.write(
      `Scenarios: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped${counts.other ? `, ${counts.other} other` : ''}${shard ? ` (shard ${shard.index}/${shard.total})` : ''}\n`,
    );
    const reportsDir = path.relative(process.cwd(), config.reportsDir) || '.';
    process.stderr.write(`Reports in ${reportsDir}/: cucumber.html, junit.xml, cucumber.ndjson, @rerun.txt, logs/\n`);
    if (counts.failed + counts.other > 0)
      process.stderr.write(`Rerun the failed scenarios: npm run conformance -- ${reportsDir}/@rerun.txt\n`);
    // What the target adds to the verdict (live verify-only: its summary; a run where every
    // check was skipped proved nothing).
    const verdict = (await targetModule.afterRun?.({
      runId,
      config,
      descriptor: target.descriptor,
      counts,
      scenarios,
      print: (line) => process.stderr.write(`${line}\n`),
    })) ?? { failed: false };
    // The benchmark (support/cli/bench.ts) reads the harness's own peak memory from here.
    if (env.IRSA_BENCH_OUT)
      writeFileSync(env.IRSA_BENCH_OUT, JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS, counts }));
    if (death) {
      process.stderr.write(`irsa: ${describeDeath(death).split('\n')[0]}\n`);
      return { exitCode: 1, runId, counts, scenarios, targetDied: death };
    }
    const exitCode = success && counts.failed === 0 && counts.other === 0 && !verdict.failed ? 0 : 1;
    return { exitCode, runId, counts, scenarios };
  } catch (e) {
    // The target died before the scenarios (issuer, probes): said when it happened; the run failed.
    if (e instanceof TargetDiedError) {
      process.stderr.write(`irsa: ${describeDeath(e.death).split('\n')[0]}\n`);
      return { exitCode: 1, runId, ...empty, targetDied: e.death };
    }
    throw e;
  } finally {
    settle();
    if (!interrupted) {
      await teardown();
      rmSync(runDir, { recursive: true, force: true });
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    } else if (finishing) await finishing;
  }
}
