/**
 * `npm run conformance`: the coordinator of a run.
 *   1. options and configuration (cucumber profile + IRSA_* settings), validated: exit 2 on bad input
 *   2. a dry run of the selected features: an undefined step is bad input (exit 2), before anything starts
 *   3. target up (or attached), capabilities probed, run state written for the worker threads
 *   4. cucumber in this process (progress on the terminal, reports/ html junit ndjson rerun)
 *   5. the run's remaining ledger flushed in reverse order, the target stopped, the matrix printed
 * SIGINT/SIGTERM at any point: no new steps start, the ledger is flushed, the target stopped,
 * exit 130/143. A second SIGINT exits at once and prints what was left behind.
 * TEST-ONLY: IRSA_TEST_PAUSE_AT=teardown holds the end-of-run teardown until a signal arrives
 * (test/reliability-interrupt.test.ts); never set it otherwise.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfiguration, loadSupport, runCucumber } from '@cucumber/cucumber/api';
import type { Envelope } from '@cucumber/messages';
import { formatCapabilityMatrix, measureCapabilities } from '../capabilities.ts';
import { flushLedger, waitForNamespacesGone } from '../cleanup.ts';
import { createClients } from '../clients.ts';
import { type HarnessConfig, loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { describeRef, Ledger } from '../ledger.ts';
import { configureLog, log } from '../log.ts';
import { LABEL_RUN_ID, newRunId } from '../names.ts';
import { OutcomeCollector } from '../outcomes.ts';
import { repoRoot, runsRoot } from '../paths.ts';
import { observeClusterIssuer } from '../provision/infrastructure.ts';
import { registerSecret } from '../redact.ts';
import { runStatePath, writeRunState } from '../run-state.ts';
import { loadSetup } from '../setup/setup.ts';
import { requireShard, shardSuiteName } from '../shards.ts';
import { startTarget, type TargetHandle } from '../targets/start.ts';
import type { TargetDescriptor } from '../targets/target.ts';
import {
  checkPendingDeletions,
  describeStuck,
  recordPendingDeletion,
  runNamespaces,
} from '../targets/warm-deletions.ts';

export interface ConformanceOptions {
  argv: string[];
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
}

const OWN_FLAGS = new Set(['-p', '--profile']);

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

async function resolveCucumber(argv: string[], env: NodeJS.ProcessEnv) {
  const { profile, cucumberArgs } = splitArgs(argv);
  const given = positionalPaths(cucumberArgs);
  const options = cucumberArgs.filter((a) => !given.includes(a));
  try {
    const resolved = await loadConfiguration(
      { file: 'cucumber.js', profiles: profile ? [profile] : [], provided: options },
      { cwd: repoRoot, env },
    );
    // A user naming features (or an @rerun file) means only those, not the profile's as well.
    if (given.length > 0) resolved.runConfiguration.sources.paths = given;
    return resolved;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? '';
    if (/profile/i.test(msg))
      throw new UsageError(
        `unknown profile ${JSON.stringify(profile)}: ${msg}`,
        'profiles: embedded (default), docker, live',
      );
    throw new UsageError(
      `cannot read the cucumber options: ${msg}`,
      'see `npx cucumber-js --help` for the options the suite accepts',
    );
  }
}

/** Names every step of the selected scenarios that no step definition matches. */
async function findUndefinedSteps(
  runConfiguration: Parameters<typeof runCucumber>[0],
  env: NodeJS.ProcessEnv,
): Promise<string[]> {
  const pickleSteps = new Map<string, { text: string; uri: string }>();
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
      if (e.pickle) for (const s of e.pickle.steps) pickleSteps.set(s.id, { text: s.text, uri: e.pickle.uri });
      if (e.testCase) {
        for (const ts of e.testCase.testSteps) {
          if (ts.pickleStepId && (ts.stepDefinitionIds ?? []).length === 0) {
            const s = pickleSteps.get(ts.pickleStepId);
            if (s) undefinedSteps.push(`${s.uri}: "${s.text}"`);
          }
        }
      }
    },
  );
  return [...new Set(undefinedSteps)];
}

export async function runConformance(opts: ConformanceOptions): Promise<ConformanceResult> {
  const env = opts.env ?? process.env;
  const empty = { counts: { passed: 0, failed: 0, skipped: 0, other: 0 }, scenarios: [] };
  // 1. configuration
  const resolved = await resolveCucumber(opts.argv, env);
  const profileTarget = (resolved.useConfiguration.worldParameters as { target?: string } | undefined)?.target;
  const config: HarnessConfig = loadConfig(env, {
    ...(env.IRSA_TARGET ? {} : profileTarget ? { target: profileTarget } : {}),
    ...(opts.overrides ?? {}),
  });
  const setup = loadSetup(config.setupDir);
  mkdirSync(config.reportsDir, { recursive: true });
  configureLog({ file: path.join(config.reportsDir, 'logs', 'harness.log'), verbose: config.verbose });
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
  if (config.target === 'docker')
    await (await import('../targets/docker/index.ts')).preflightDockerTarget(config, setup);
  if (config.target === 'embedded' && !config.attach && config.embedded.kubeNode === 'kubelet')
    (await import('../targets/embedded/real-node.ts')).preflightRealNode();
  const undefinedSteps = await findUndefinedSteps(runConfiguration, env);
  if (undefinedSteps.length > 0) {
    throw new UsageError(
      `${undefinedSteps.length} step(s) match no step definition, e.g. ${undefinedSteps[0]}`,
      'fix the step text (docs/steps.md lists every step) or add a definition under steps/',
    );
  }

  // 3. target, run directory, capabilities
  const runId = newRunId();
  const runDir = path.join(runsRoot, runId);
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
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

  // Once per run: a signal during the end-of-run teardown joins it instead of starting a second one.
  const teardown = (): Promise<void> =>
    (tearingDown ??= (async () => {
      if (!target) return;
      const t = target;
      if (env.IRSA_TEST_PAUSE_AT === 'teardown' && !interrupted) {
        // TEST-ONLY (test/reliability-interrupt.test.ts): hold the end-of-run teardown until a
        // signal arrives, so that the test interrupts exactly this phase.
        process.stderr.write('irsa-test: paused at teardown\n');
        // A pending promise alone does not keep Node running: hold the event loop open meanwhile.
        const hold = setInterval(() => undefined, 60_000);
        await signalArrived;
        clearInterval(hold);
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
        const kept = ledger
          .outstanding(undefined, true)
          .filter((e) => !report.failed.some((f) => f.what === describeRef(e.ref)));
        if (kept.length)
          log.info(
            `kept for inspection (IRSA_KEEP_ON_FAILURE): ${kept.map((e) => describeRef(e.ref)).join(', ')}; remove with \`npm run sweep -- --run-id ${runId}\``,
          );
      } finally {
        c.destroy();
        if (t.owned) await t.stop();
        target = undefined;
      }
    })());

  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      // Second signal: leave now, but say what stays behind.
      const left = ledger.outstanding(undefined, true).map((e) => describeRef(e.ref));
      process.stderr.write(
        `\nirsa: forced exit; left behind: ${left.length ? left.join(', ') : 'nothing recorded'}${target?.owned ? ' (and the target processes, stopped by their exit handler)' : ''}\n`,
      );
      if (left.length && !target?.owned)
        process.stderr.write(`hint: remove them with \`npm run sweep -- --run-id ${runId}\`\n`);
      // The run directory only serves this process; left behind, it would also make sweep pass over the run.
      rmSync(runDir, { recursive: true, force: true });
      process.exit(signal === 'SIGTERM' ? 143 : 130);
    }
    interrupted = signal;
    signalled();
    writeFileSync(path.join(runDir, 'INTERRUPTED'), signal);
    process.stderr.write(`\nirsa: ${signal}: no new steps start; cleaning up (press Ctrl-C again to exit at once)\n`);
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
    starting = startTarget(config, setup, (line) => log.debug(line));
    target = await starting;
    if (interrupted) return { exitCode: 130, runId, ...empty };
    for (const secret of [
      target.descriptor.aws.credentials?.secretAccessKey,
      target.descriptor.aws.credentials?.sessionToken,
    ])
      if (secret) registerSecret(secret);
    const clients = createClients(target.descriptor);
    try {
      const issuer = await observeClusterIssuer(clients, config.timeouts.assertSeconds);
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
        const probed = await measureCapabilities({
          clients,
          target: target.descriptor,
          config,
          runId,
          ledger,
          issuer,
          log: log.warn,
        });
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
    writeRunState({ runId, runDir, startedAt: new Date().toISOString(), config, target: target.descriptor });
    const childEnv = { ...env, IRSA_RUN_STATE: runStatePath(runDir) };
    process.env.IRSA_RUN_STATE = childEnv.IRSA_RUN_STATE;

    // 4. the suite
    const { success } = await runCucumber(
      runConfiguration,
      { cwd: repoRoot, env: childEnv, stdout: process.stdout, stderr: process.stderr },
      (e) => {
        collector.add(e);
        opts.onMessage?.(e);
      },
    );
    const counts = collector.counts();
    const scenarios = collector.finished;
    process.stderr.write(`\n${formatCapabilityMatrix(config.target, target.descriptor.capabilities)}\n`);
    for (const s of scenarios.filter((x) => x.status === 'SKIPPED')) log.debug(`skipped: ${s.name}`);
    process.stderr.write(
      `Scenarios: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped${counts.other ? `, ${counts.other} other` : ''}${shard ? ` (shard ${shard.index}/${shard.total})` : ''}\n`,
    );
    process.stderr.write(
      `Reports: ${path.relative(process.cwd(), config.reportsDir) || '.'}/cucumber.html junit.xml cucumber.ndjson rerun.txt\n`,
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
    return { exitCode: success && counts.failed === 0 && counts.other === 0 ? 0 : 1, runId, counts, scenarios };
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
