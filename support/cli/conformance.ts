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
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfiguration, loadSupport, runCucumber } from '@cucumber/cucumber/api';
import type { Envelope } from '@cucumber/messages';
import parseTagExpression from '@cucumber/tag-expressions';
import { formatCapabilityMatrix, measureCapabilities } from '../capabilities.ts';
import { flushLedger, waitForNamespacesGone } from '../cleanup.ts';
import { createClients } from '../clients.ts';
import { type HarnessConfig, loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { describeRef, Ledger } from '../ledger.ts';
import { configureLog, log } from '../log.ts';
import { LABEL_RUN_ID, newRunId } from '../names.ts';
import { OutcomeCollector, type ScenarioOutcome, scenarioLines } from '../outcomes.ts';
import { writeOwner } from '../owner.ts';
import { ensurePrivateDir, ensureReportsDir, repoRoot, runsRoot } from '../paths.ts';
import { observeClusterIssuer } from '../provision/infrastructure.ts';
import { redact, registerSecret } from '../redact.ts';
import { stageReports } from '../reports.ts';
import { runStatePath, writeRunState } from '../run-state.ts';
import { checkSetup } from '../setup/check.ts';
import { loadSetup } from '../setup/setup.ts';
import { requireShard, shardSuiteName } from '../shards.ts';
import { describeDeath, recordDeath, type TargetDeath, TargetDiedError } from '../target-death.ts';
import { startTarget, type TargetHandle } from '../targets/start.ts';
import type { TargetDescriptor } from '../targets/target.ts';
import {
  checkPendingDeletions,
  describeStuck,
  recordPendingDeletion,
  runNamespaces,
} from '../targets/warm-deletions.ts';
import { ensureEmbeddedSetup } from './setup.ts';

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
  --parallel N              worker threads (default 2; 1 runs them one after another)
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

/** Stores the measured capabilities in a warm environment's state file for the runs after this one. */
function rememberCapabilities(stateFile: string, descriptor: TargetDescriptor): void {
  try {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { descriptor: TargetDescriptor };
    state.descriptor.capabilities = descriptor.capabilities;
    state.descriptor.capabilitiesMeasuredAt = descriptor.capabilitiesMeasuredAt;
    writeFileSync(`${stateFile}.tmp`, JSON.stringify(state, null, 2), { mode: 0o600 });
    renameSync(`${stateFile}.tmp`, stateFile);
  } catch (e) {
    log.debug(`capabilities not stored in ${stateFile}: ${(e as Error).message}`);
  }
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

const GLOB_CHARS = /[*?[\]{}]/;

/**
 * The feature paths given on the command line, with each rerun file (a base name starting with
 * `@`, as cucumber has it) replaced by the paths it lists. A feature path that does not exist, a
 * rerun file that does not exist and one that lists nothing are bad input: they would select no
 * scenario. Relative paths are the repository's (npm runs scripts there).
 */
export function expandGivenPaths(given: string[], cwd = repoRoot): string[] {
  const out: string[] = [];
  for (const p of given) {
    const file = path.resolve(cwd, p);
    if (path.basename(p).startsWith('@')) {
      if (!existsSync(file))
        throw new UsageError(
          `rerun file ${p} does not exist`,
          'a run writes the scenarios that failed to reports/@rerun.txt (its reports directory); rerun them with `npm run conformance -- reports/@rerun.txt`',
        );
      const listed = readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      if (listed.length === 0)
        throw new UsageError(
          `rerun file ${p} lists no scenario: the run that wrote it had no failed scenario`,
          'there is nothing to rerun; run the suite (`npm run conformance`) or name the features to run',
        );
      out.push(...listed);
      continue;
    }
    const withoutLines = p.replace(/(:\d+)+$/, '');
    if (!GLOB_CHARS.test(withoutLines) && !existsSync(path.resolve(cwd, withoutLines)))
      throw new UsageError(
        `feature path ${p} does not exist`,
        'name feature files or directories under features/ (a scenario by its line: features/02-application.feature:12)',
      );
    out.push(p);
  }
  return out;
}

/** Why a selection ran no scenario, in words: what the user selected with. */
function describeSelection(
  runConfiguration: { sources: { paths: string[]; tagExpression: string; names: string[] } },
  given: string[],
  config: HarnessConfig,
): string {
  const parts: string[] = [];
  if (given.length) parts.push(`features ${given.join(' ')}`);
  if (runConfiguration.sources.tagExpression) parts.push(`tags ${runConfiguration.sources.tagExpression}`);
  if (runConfiguration.sources.names.length) parts.push(`--name ${runConfiguration.sources.names.join(', ')}`);
  const mode = config.target === 'live' ? ` (the live target's ${config.live.mode} mode selects by tags too)` : '';
  return `${parts.join(', ') || 'the profile'}${mode}`;
}

async function resolveCucumber(argv: string[], env: NodeJS.ProcessEnv) {
  const { profile, cucumberArgs } = splitArgs(argv);
  const positional = positionalPaths(cucumberArgs);
  const options = cucumberArgs.filter((a) => !positional.includes(a));
  const given = expandGivenPaths(positional);
  try {
    const resolved = await loadConfiguration(
      { file: 'cucumber.js', profiles: profile ? [profile] : [], provided: options },
      { cwd: repoRoot, env },
    );
    // A user naming features (or an @rerun file) means only those, not the profile's as well.
    if (given.length > 0) resolved.runConfiguration.sources.paths = given;
    return { ...resolved, given: positional };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? '';
    if (/profile/i.test(msg))
      throw new UsageError(
        `unknown profile ${JSON.stringify(profile)}: ${msg}`,
        'profiles: embedded (default), docker, live',
      );
    throw new UsageError(
      `cannot read the cucumber options: ${msg}`,
      'see `npm run conformance -- --help` for the options the suite accepts',
    );
  }
}

export interface SelectedScenario {
  uri: string;
  line: number;
  name: string;
}

/**
 * A dry run of the selection: the scenarios it selects (uri:line and name) and every step of them
 * that no step definition matches. Nothing is started and no report is written.
 */
async function dryRunSelection(
  runConfiguration: Parameters<typeof runCucumber>[0],
  env: NodeJS.ProcessEnv,
): Promise<{ scenarios: SelectedScenario[]; undefinedSteps: string[] }> {
  const pickleSteps = new Map<string, { text: string; uri: string }>();
  const lines = new Map<string, number>();
  const pickles = new Map<string, SelectedScenario>();
  const scenarios: SelectedScenario[] = [];
  const undefinedSteps: string[] = [];
  await runCucumber(
    {
      ...runConfiguration,
      runtime: { ...runConfiguration.runtime, dryRun: true, parallel: 0 },
      formats: { stdout: 'summary', files: {}, publish: false, options: {} },
    },
    { cwd: repoRoot, env, stdout: new (await import('node:stream')).PassThrough(), stderr: process.stderr },
    (e) => {
      if (e.parseError) {
        const loc = e.parseError.source.location;
        throw new UsageError(
          `${e.parseError.source.uri}${loc ? `:${loc.line}` : ''} is not valid Gherkin: ${e.parseError.message.split('\n')[0]}`,
          'fix the feature file (a description line may not start with @, #, or a keyword)',
        );
      }
      if (e.gherkinDocument) for (const [id, line] of scenarioLines(e.gherkinDocument)) lines.set(id, line);
      if (e.pickle) {
        for (const s of e.pickle.steps) pickleSteps.set(s.id, { text: s.text, uri: e.pickle.uri });
        const node = e.pickle.astNodeIds[e.pickle.astNodeIds.length - 1] ?? '';
        pickles.set(e.pickle.id, { uri: e.pickle.uri, line: lines.get(node) ?? 0, name: e.pickle.name });
      }
      if (e.testCase) {
        const selected = pickles.get(e.testCase.pickleId);
        if (selected) scenarios.push(selected);
        for (const ts of e.testCase.testSteps) {
          if (ts.pickleStepId && (ts.stepDefinitionIds ?? []).length === 0) {
            const s = pickleSteps.get(ts.pickleStepId);
            if (s) undefinedSteps.push(`${s.uri}: "${s.text}"`);
          }
        }
      }
    },
  );
  return { scenarios, undefinedSteps: [...new Set(undefinedSteps)] };
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

export async function runConformance(opts: ConformanceOptions): Promise<ConformanceResult> {
  const env = opts.env ?? process.env;
  const empty = { counts: { passed: 0, failed: 0, skipped: 0, other: 0 }, scenarios: [] };
  if (asksForHelp(opts.argv)) {
    process.stdout.write(opts.command === 'verify' ? VERIFY_USAGE : CONFORMANCE_USAGE);
    return { exitCode: 0, ...empty };
  }
  // 1. configuration
  checkTagOptions(opts.argv);
  const resolved = await resolveCucumber(opts.argv, env);
  const dryRun = resolved.runConfiguration.runtime.dryRun === true;
  // worldParameters (the profile's target, --world-parameters) are settings with the config file's
  // keys, between that file and the environment; a key the harness does not know is exit 2.
  const worldParameters = (resolved.useConfiguration.worldParameters ?? {}) as Record<string, unknown>;
  const config: HarnessConfig = loadConfig(env, opts.overrides ?? {}, worldParameters);
  const setup = loadSetup(config.setupDir);
  // Every template rendered and checked (syntax, placeholders, IAM policy grammar) before anything starts.
  checkSetup(setup);
  // A dry run writes nothing: no reports directory, no log file, no state directory. A run's state
  // (per user, 0700) and its reports directory must be usable: checked first.
  if (!dryRun) {
    ensurePrivateDir(runsRoot);
    ensureReportsDir(config.reportsDir);
    configureLog({ file: path.join(config.reportsDir, 'logs', 'harness.log'), verbose: config.verbose });
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
  // Support code is loaded once: ESM modules are cached, so a second load would register no steps.
  const support = await loadSupport(resolved.runConfiguration, { cwd: repoRoot, env });
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
  if (config.target === 'live') {
    // The live mode decides the scenarios: verify-only runs @infrastructure and @verify-only, provision the rest.
    const { tagsForLiveMode } = await import('../targets/live/summary.ts');
    runConfiguration.sources = {
      ...runConfiguration.sources,
      tagExpression: tagsForLiveMode(config.live.mode, runConfiguration.sources.tagExpression),
    };
  }

  // 2. undefined steps are bad input: refuse before anything is created
  // A target that cannot start here says so before anything else happens.
  if (config.target === 'docker' && !dryRun)
    await (await import('../targets/docker/index.ts')).preflightDockerTarget(config, setup);
  if (config.target === 'embedded' && !config.attach && config.embedded.kubeNode === 'kubelet')
    (await import('../targets/embedded/real-node.ts')).preflightRealNode();
  const { scenarios: selected, undefinedSteps } = await dryRunSelection(runConfiguration, env);
  if (undefinedSteps.length > 0) {
    throw new UsageError(
      `${undefinedSteps.length} step(s) match no step definition, e.g. ${undefinedSteps[0]}`,
      'fix the step text (docs/steps.md lists every step) or add a definition under steps/',
    );
  }
  if (selected.length === 0) {
    throw new UsageError(
      `the selection runs no scenario: ${describeSelection(runConfiguration, resolved.given, config)} match nothing`,
      '`npm run conformance -- --dry-run` lists what a selection runs; tags in use are in features/*.feature',
    );
  }
  if (dryRun) {
    // What would run, and nothing else: no target, no probes, no reports.
    for (const s of selected) process.stdout.write(`${s.uri}:${s.line}  ${s.name}\n`);
    process.stderr.write(
      `${selected.length} scenario(s) would run on the ${config.target} target${config.target === 'live' ? ` (${config.live.mode} mode)` : ''}; --dry-run started nothing\n`,
    );
    return { exitCode: 0, ...empty };
  }

  // 3. target, run directory, capabilities
  // The embedded target's components are built (or found in the cache) only now: after the
  // input is known to be good, and never for the live and docker targets.
  if (config.target === 'embedded') await ensureEmbeddedSetup(env);
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
      if (death) {
        // Nothing can be deleted through a dead component, and nothing needs to be: a run's own
        // target went with everything in it; a warm environment must be replaced.
        log.info(
          t.owned
            ? "the run's resources went with its target"
            : `the warm environment is broken: stop it with \`npm run env -- down\` (its resources go with it), or remove only this run's with \`npm run sweep -- --run-id ${runId}\` once it is replaced`,
        );
        await t.stop();
        target = undefined;
        return;
      }
      const c = createClients(t.descriptor);
      try {
        // Resources kept by IRSA_KEEP_ON_FAILURE stay for inspection (sweep removes them later).
        const flush = () => flushLedger(c, ledger, { timeoutSeconds: config.timeouts.cleanupSeconds, skipKept: true });
        // An interrupted run's own target is stopped at once (the embedded target stops itself on
        // the signal): what it holds goes with it, and a flush would only race that stop.
        const report = interrupted && t.owned ? { deleted: [], failed: [], kept: [] } : await flush();
        if (interrupted && !t.owned) {
          // A step or probe still running may create resources after the flush read the ledger
          // (an attached target outlives the run, so they would leak): wait until the main flow
          // has returned, at most the apply timeout, and flush what was recorded meanwhile.
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            mainSettled,
            new Promise<void>((resolve) => {
              timer = setTimeout(resolve, config.timeouts.applySeconds * 1000);
            }),
          ]);
          clearTimeout(timer);
          const again = await flush();
          report.deleted.push(...again.deleted);
          report.failed = again.failed;
        }
        if (!t.owned && config.attach) {
          // A warm environment: the namespaces are terminating (their pods are gone already); the
          // environment confirms they are gone, at the next run or `env -- status`
          // (support/targets/warm-deletions.ts says why this run does not wait 5 s for it).
          const { present, notDeleting } = await runNamespaces(c, runId);
          for (const name of notDeleting)
            report.failed.push({ what: `namespace ${name}`, error: 'its deletion was not requested' });
          const terminating = present.filter((n) => !notDeleting.includes(n));
          if (terminating.length)
            recordPendingDeletion(config.attach, {
              runId,
              requestedAt: new Date().toISOString(),
              namespaces: terminating,
            });
        } else if (!t.owned && !t.descriptor.readOnly) {
          // Namespace deletion is only requested by the flushes: confirm here, once per run, that
          // the namespace controller finished (an owned target goes away with everything in it).
          // Verify-only creates no namespace, and its least-privilege RBAC (deploy/rbac.yaml) may
          // not list them.
          const left = await waitForNamespacesGone(c, `${LABEL_RUN_ID}=${runId}`, config.timeouts.cleanupSeconds);
          for (const name of left)
            report.failed.push({ what: `namespace ${name}`, error: 'still terminating at the cleanup timeout' });
        }
        if (report.deleted.length) log.debug(`deleted at the end of the run: ${report.deleted.join(', ')}`);
        for (const f of report.failed)
          log.warn(`could not delete ${f.what}: ${f.error} (remove it with \`npm run sweep -- --run-id ${runId}\`)`);
        // What IRSA_KEEP_ON_FAILURE kept, if anything, and if it still exists: an interrupted run's
        // own target went with everything in it.
        const kept =
          interrupted && t.owned
            ? []
            : ledger.kept().filter((e) => !report.failed.some((f) => f.what === describeRef(e.ref)));
        if (kept.length)
          log.info(
            `kept for inspection (IRSA_KEEP_ON_FAILURE): ${kept.map((e) => describeRef(e.ref)).join(', ')}; remove with \`npm run sweep -- --run-id ${runId}\``,
          );
      } finally {
        c.destroy();
        // A run's own target is stopped; an attached one is only let go (its death watch ends).
        await t.stop();
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
      `irsa-conformance run ${runId}: ${config.target} target, setup ${path.relative(repoRoot, setup.dir) || setup.dir}${shard ? `, shard ${shard.index}/${shard.total}` : ''}`,
    );
    const started = Date.now();
    starting = startTarget(config, setup, (line) => log.debug(line), onDeath);
    target = await starting;
    if (interrupted) return { exitCode: 130, runId, ...empty };
    for (const secret of [
      target.descriptor.aws.credentials?.secretAccessKey,
      target.descriptor.aws.credentials?.sessionToken,
    ])
      if (secret) registerSecret(secret);
    const clients = createClients(target.descriptor);
    try {
      const issuer = await untilDeath(observeClusterIssuer(clients, config.timeouts.assertSeconds));
      log.info(`target ready in ${((Date.now() - started) / 1000).toFixed(1)} s; cluster issuer ${issuer}`);
      if (config.attach) {
        // What earlier runs on this environment handed over: gone by now, or say what holds it.
        const check = await checkPendingDeletions(config.attach, clients, config.timeouts.cleanupSeconds);
        for (const line of describeStuck(check)) log.warn(line);
      }
      if (config.attach && target.descriptor.capabilities) {
        // Measured by the first run on this warm environment (below); what the environment can
        // do does not change while it runs.
        log.info(
          `capabilities as measured on this environment at ${target.descriptor.capabilitiesMeasuredAt ?? 'its first run'}`,
        );
      } else {
        const probing = Date.now();
        const probed = await untilDeath(
          measureCapabilities({
            clients,
            target: target.descriptor,
            config,
            runId,
            ledger,
            issuer,
            log: log.warn,
          }),
        );
        target.descriptor.capabilities = probed.matrix;
        target.descriptor.capabilitiesMeasuredAt = new Date().toISOString();
        log.debug(`capabilities measured in ${((Date.now() - probing) / 1000).toFixed(1)} s`);
        // Kept for the environment's later runs only when measured in full: an interrupt deletes
        // the probe's pod under it (it would read as "cannot run pods"), and a probe that failed
        // with an error measured nothing. The next run then measures again.
        if (config.attach && !interrupted && probed.errors.length === 0)
          rememberCapabilities(config.attach, target.descriptor);
        else if (config.attach && !interrupted)
          log.info(
            `capabilities not kept for the environment's next runs: a probe failed (${probed.errors.join('; ')})`,
          );
      }
    } finally {
      clients.destroy();
    }
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
    process.stderr.write(`\n${formatCapabilityMatrix(config.target, target.descriptor.capabilities)}\n`);
    const skipped = scenarios.filter((x) => x.status === 'SKIPPED');
    if (skipped.length) process.stderr.write(`${formatSkipped(skipped)}\n`);
    process.stderr.write(
      `Scenarios: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped${counts.other ? `, ${counts.other} other` : ''}${shard ? ` (shard ${shard.index}/${shard.total})` : ''}\n`,
    );
    const reportsDir = path.relative(process.cwd(), config.reportsDir) || '.';
    process.stderr.write(`Reports in ${reportsDir}/: cucumber.html, junit.xml, cucumber.ndjson, @rerun.txt, logs/\n`);
    if (counts.failed + counts.other > 0)
      process.stderr.write(`Rerun the failed scenarios: npm run conformance -- ${reportsDir}/@rerun.txt\n`);
    // verify-only is a verdict on an existing setup: a run where every check was skipped proved nothing.
    const noCheckRan =
      config.live.mode === 'verify-only' &&
      config.target === 'live' &&
      counts.passed + counts.failed + counts.other === 0;
    if (noCheckRan)
      process.stderr.write(
        `irsa: no check ran: all ${counts.skipped} selected checks were skipped (their reasons are above and in the summary)\n`,
      );
    if (config.target === 'live' && config.live.mode === 'verify-only') {
      const { writeVerifySummary } = await import('../targets/live/summary.ts');
      const file = writeVerifySummary({
        runId,
        finishedAt: new Date(),
        descriptor: target.descriptor,
        config,
        checks: scenarios,
      });
      process.stderr.write(`Verify summary: ${path.relative(process.cwd(), file)}\n`);
    }
    // The benchmark (support/cli/bench.ts) reads the harness's own peak memory from here.
    if (env.IRSA_BENCH_OUT)
      writeFileSync(env.IRSA_BENCH_OUT, JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS, counts }));
    if (death) {
      process.stderr.write(`irsa: ${describeDeath(death).split('\n')[0]}\n`);
      return { exitCode: 1, runId, counts, scenarios, targetDied: death };
    }
    const exitCode = success && counts.failed === 0 && counts.other === 0 && !noCheckRan ? 0 : 1;
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
