/**
 * `irsa selftest`: proves that the suite catches broken setups, the way mutation testing proves a
 * test suite. Each directory of the fault catalogue (fixtures/faults/<NN-name>/) is a setup that
 * extends the default one and breaks one thing, plus a fault.yaml saying which scenario must fail
 * and what its message must mention. This command
 *   1. loads and validates the catalogue (support/selftest/catalogue.ts; bad entries are bad
 *      input: exit 2, before anything runs),
 *   2. runs the suite on the correct setup (fixtures/setups/default) and on every faulty one, each
 *      run in its own child process, sharing one warm embedded environment between runs whose
 *      webhook flags match it (support/selftest/runner.ts),
 *   3. checks each run's scenario outcomes (support/selftest/verdict.ts): the expected scenarios
 *      failed with every expected substring in their message, nothing else failed, and the
 *      correct setup passed entirely (no false alarms),
 *   4. prints the table (fault, expected scenario, caught, message excerpt) and exits 1 if any
 *      fault was missed or the correct setup failed.
 * This file parses the arguments, runs the queue of runs on `--jobs` workers and prints.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ParseArgsOptionsConfig } from 'node:util';
import { loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { redact } from '../redact.ts';
import {
  CORRECT_SETUP,
  DEFAULT_CATALOGUE,
  type Fault,
  loadFaultCatalogue,
  selectFaults,
} from '../selftest/catalogue.ts';
import { planRuns, Runner, type RunSpec } from '../selftest/runner.ts';
import {
  type BaselineVerdict,
  checkBaseline,
  checkFault,
  type FaultVerdict,
  formatTable,
  type RunResult,
  tableRows,
  unknownScenarioNames,
  verdictProblems,
} from '../selftest/verdict.ts';
import { loadSetup } from '../setup/setup.ts';
import { ensureEmbeddedSetup } from '../targets/embedded/setup.ts';
import { type CommandSpec, parseCommand } from './args.ts';

interface Options {
  only: string[];
  jobs: number;
  list: boolean;
  reuse: boolean;
  verbose: boolean;
  catalogue: string;
}

export const SELFTEST_COMMAND = {
  command: 'npm run selftest --',
  synopsis: '[--list] [--only FAULT[,FAULT]] [--jobs N] [--no-reuse] [--verbose] [--faults DIR] [--dry-run]',
  description: `
Runs the suite against the catalogue of deliberately broken setups (fixtures/faults/) and the
correct setup: each break must be caught by the right scenario with a message naming the cause,
and the correct setup must pass (docs/selftest.md).

  --list          the catalogue: each fault, the scenarios that must fail and the messages
  --only FAULTS   only these faults (ids or unique prefixes, comma-separated; repeatable)
  --jobs N        parallel runs, each with its own embedded environment (1 to 8, default 2)
  --no-reuse      a fresh environment per run instead of one per webhook configuration
  --verbose       each run's output on the terminal
  --faults DIR    another catalogue directory
  --dry-run       list the faults the self-test would run; start nothing

Exit codes: 0 every fault caught and the correct setup green, 1 otherwise, 2 bad input.`,
  options: {
    list: { type: 'boolean' },
    only: { type: 'string', multiple: true },
    jobs: { type: 'string', short: 'j', default: '2' },
    'no-reuse': { type: 'boolean' },
    verbose: { type: 'boolean' },
    faults: { type: 'string' },
    'dry-run': { type: 'boolean' },
  },
} satisfies CommandSpec<ParseArgsOptionsConfig>;

/** The options; undefined when --help was answered. */
function parseSelfTestArgs(argv: string[]): Options | undefined {
  const parsed = parseCommand(SELFTEST_COMMAND, argv);
  if (!parsed) return undefined;
  const v = parsed.values;
  const jobs = Number(v.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 8)
    throw new UsageError(
      `--jobs ${v.jobs}: not a number of parallel runs from 1 to 8`,
      'each job runs its own embedded environment; 1 or 2 on a small machine',
    );
  return {
    only: (v.only ?? []).flatMap((o) => o.split(',')).filter(Boolean),
    jobs,
    // A dry run lists what would run, as --list does for the whole catalogue.
    list: v.list === true || v['dry-run'] === true,
    reuse: v['no-reuse'] !== true,
    verbose: v.verbose === true,
    catalogue: v.faults === undefined ? DEFAULT_CATALOGUE : path.resolve(v.faults),
  };
}

function listCatalogue(faults: Fault[]): string {
  return faults
    .map((f) => {
      const narrowing = [
        f.tags ? `tags ${f.tags}` : '',
        f.scenarios ? `only ${f.scenarios.map((x) => JSON.stringify(x)).join(', ')}` : '',
        f.lintProfile ? `lint profile ${f.lintProfile}` : '',
      ].filter(Boolean);
      return [
        `${f.id}: ${f.description}`,
        ...f.expect.map(
          (e) =>
            `    must fail: ${e.scenario} (message mentions ${e.message.map((m) => JSON.stringify(m)).join(', ')})`,
        ),
        ...f.alsoFailing.map((s) => `    may fail:  ${s}`),
        ...(narrowing.length ? [`    runs:      ${narrowing.join('; ')}`] : []),
      ].join('\n');
    })
    .join('\n');
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function runSelfTest(argv: string[]): Promise<number> {
  const opts = parseSelfTestArgs(argv);
  if (!opts) return 0;
  const all = loadFaultCatalogue(opts.catalogue);
  if (opts.list) {
    process.stdout.write(`${listCatalogue(opts.only.length ? selectFaults(all, opts.only) : all)}\n`);
    return 0;
  }
  const faults = selectFaults(all, opts.only);
  const config = loadConfig(process.env, { target: 'embedded', setup: CORRECT_SETUP });
  const correctFlags = loadSetup(CORRECT_SETUP).spec.webhook.flags;
  await ensureEmbeddedSetup();
  const began = Date.now();

  const { baselines, faultRuns } = planRuns(faults, opts.only.length > 0, correctFlags);

  const runner = new Runner({
    reportsRoot: config.reportsDir,
    reuse: opts.reuse,
    verbose: opts.verbose,
    region: config.region,
    startTimeoutSeconds: config.timeouts.startSeconds,
    embedded: config.embedded,
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (!runner.interrupted)
      process.stderr.write(`\nselftest: ${signal}: the current run cleans up, then the self-test stops\n`);
    runner.signal(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // One queue: the correct setup first (it also validates the catalogue's scenario names), then
  // the faults; `jobs` workers take from it, each on its own shared environment.
  const queue: ({ kind: 'baseline'; spec: RunSpec } | { kind: 'fault'; spec: RunSpec & { fault: Fault } })[] = [
    ...baselines.map((spec) => ({ kind: 'baseline' as const, spec })),
    ...faultRuns.map((spec) => ({ kind: 'fault' as const, spec })),
  ];
  const baselineSlots: (BaselineVerdict | undefined)[] = baselines.map(() => undefined);
  const faultSlots: (FaultVerdict | undefined)[] = faultRuns.map(() => undefined);
  const catalogueProblems: string[] = [];
  let next = 0;
  let done = 0;
  const worker = async (w: number): Promise<void> => {
    for (let i = next++; i < queue.length && !runner.interrupted; i = next++) {
      const item = queue[i] as (typeof queue)[number];
      process.stderr.write(`selftest: ${item.spec.id}: running\n`);
      // A run that cannot start (e.g. the shared environment does not come up) is that run's
      // failure; the other worker's run goes on undisturbed.
      const run = await runner.run(item.spec, w).catch(
        (e: unknown): RunResult => ({
          exitCode: 2,
          scenarios: [],
          durationMs: 0,
          error: redact(e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e)),
        }),
      );
      // An interrupted run says nothing about the fault: it is left out, and the self-test exits 130/143.
      if (runner.interrupted) {
        process.stderr.write(`selftest: ${item.spec.id}: interrupted\n`);
        return;
      }
      let verdict: string;
      if (item.kind === 'baseline') {
        const v = checkBaseline(item.spec.id, run);
        baselineSlots[i] = v;
        if (item.spec.id === 'correct-setup' && run.scenarios.length > 0)
          catalogueProblems.push(...unknownScenarioNames(all, run.scenarios));
        verdict = v.green ? 'green' : 'RED';
      } else {
        const v = checkFault(item.spec.fault, run);
        faultSlots[i - baselines.length] = v;
        verdict = v.caught ? 'caught' : 'NOT caught';
      }
      process.stderr.write(
        `selftest [${++done}/${queue.length}] ${item.spec.id}: ${verdict} (${seconds(run.durationMs)})\n`,
      );
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(opts.jobs, queue.length) }, (_, w) => worker(w)));
  } finally {
    await runner.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  // Interrupted: a table of the runs that finished would read as the catalogue's verdict. None is
  // given, and no summary written (the run in progress cleaned up as an interrupted run does).
  if (runner.interrupted) {
    process.stdout.write('selftest: interrupted; no verdict, no summary written\n');
    return runner.interrupted === 'SIGTERM' ? 143 : 130;
  }
  const baselineVerdicts = baselineSlots.filter((v): v is BaselineVerdict => v !== undefined);
  const verdicts = faultSlots.filter((v): v is FaultVerdict => v !== undefined);

  const rows = tableRows(baselineVerdicts, verdicts);
  const table = formatTable(rows);
  const wall = Date.now() - began;
  const problems = verdictProblems(baselineVerdicts, verdicts, catalogueProblems);
  const ok =
    baselineVerdicts.every((b) => b.green) &&
    verdicts.length === faults.length &&
    verdicts.every((v) => v.caught) &&
    catalogueProblems.length === 0;
  const caught = verdicts.filter((v) => v.caught).length;
  const summary = `${caught}/${faults.length} faults caught; correct setup ${
    baselineVerdicts.length === 0 ? 'not run (--only)' : baselineVerdicts.every((b) => b.green) ? 'green' : 'RED'
  }; wall time ${seconds(wall)}`;
  process.stdout.write(
    `\n${table}\n\n${problems.length ? `Problems:\n${problems.map((p) => `  - ${p}`).join('\n')}\n\n` : ''}${summary}\n`,
  );
  // One line the test command counts: each fault caught, each correct-setup run green.
  const passed = caught + baselineVerdicts.filter((b) => b.green).length;
  const failed = faults.length - caught + baselineVerdicts.filter((b) => !b.green).length;
  process.stdout.write(`selftest: ${passed} passed, ${failed} failed\n`);
  const dir = path.join(config.reportsDir, 'selftest');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'summary.txt'), `${table}\n\n${problems.map((p) => `- ${p}`).join('\n')}\n${summary}\n`);
  writeFileSync(
    path.join(dir, 'summary.json'),
    `${JSON.stringify({ ok, wallMs: wall, baselines: baselineVerdicts, faults: verdicts, catalogueProblems }, null, 2)}\n`,
  );
  return ok ? 0 : 1;
}
