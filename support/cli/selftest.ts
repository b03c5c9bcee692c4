/**
 * `irsa selftest`: proves that the suite catches broken setups, the way mutation testing proves a
 * test suite. Each directory of the fault catalogue (fixtures/faults/<NN-name>/) is a setup that
 * extends the default one and breaks one thing, plus a fault.yaml saying which scenario must fail
 * and what its message must mention. This module
 *   1. loads and validates the catalogue (bad entries are bad input: exit 2, before anything runs),
 *   2. runs the suite on the correct setup (fixtures/setups/default) and on every faulty one, each
 *      run in its own child process (`main.ts conformance`, reports under <reports>/selftest/<id>),
 *      sharing one warm embedded environment between runs whose webhook flags match it,
 *   3. reads each run's scenario outcomes from its cucumber.ndjson and checks them: the expected
 *      scenarios failed with every expected substring in their message, nothing else failed, and
 *      the correct setup passed entirely (no false alarms),
 *   4. prints the table (fault, expected scenario, caught, message excerpt) and exits 1 if any
 *      fault was missed or the correct setup failed.
 * Runs are child processes because cucumber's support code registers step definitions once per
 * process (ESM module cache) and the run's infrastructure record is cached per process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ParseArgsOptionsConfig } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type HarnessConfig, loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { readMessages, type ScenarioOutcome, scenarioOutcomes } from '../outcomes.ts';
import { ensurePrivateDir, envsRoot, repoRoot } from '../paths.ts';
import { redact } from '../redact.ts';
import { checkSetup } from '../setup/check.ts';
import { loadSetup } from '../setup/setup.ts';
import { ensureEmbeddedSetup } from '../targets/embedded/setup.ts';
import { type CommandSpec, parseCommand } from './args.ts';

// ---------------------------------------------------------------------------------------------
// The catalogue

const faultSchema = z
  .object({
    description: z.string().min(1),
    expect: z
      .array(
        z
          .object({
            /** Exact scenario name, as in the feature file. */
            scenario: z.string().min(1),
            /** Substrings the failure message must contain; at least one, or any failure would do. */
            message: z.array(z.string().min(1)).min(1),
          })
          .strict(),
      )
      .min(1),
    /** Scenarios allowed to fail as a consequence of the fault. */
    alsoFailing: z.array(z.string().min(1)).default([]),
    /** Cucumber tag expression narrowing the run to what the fault affects. */
    tags: z.string().min(1).optional(),
    /** Runs only the scenarios of these exact names (with tags: those that match both). */
    scenarios: z.array(z.string().min(1)).optional(),
    lintProfile: z.enum(['default', 'strict']).optional(),
  })
  .strict();

export type FaultSpec = z.infer<typeof faultSchema>;

export interface Fault extends FaultSpec {
  /** The directory name, e.g. 05-keys-unrelated. */
  id: string;
  dir: string;
  /** The setup's webhook flags (a fault that changes them cannot share the default environment). */
  webhookFlags: Record<string, string>;
}

export const DEFAULT_CATALOGUE = path.join(repoRoot, 'fixtures', 'faults');
export const CORRECT_SETUP = path.join(repoRoot, 'fixtures', 'setups', 'default');

/** Validates one fault.yaml's content; `where` names the file in errors. */
export function parseFaultSpec(raw: unknown, where: string): FaultSpec {
  const parsed = faultSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `${where}: ${issue?.path.join('.') || 'fault.yaml'}: ${issue?.message}`,
      'a fault.yaml has description, expect: [{scenario, message: [substrings]}], and optional alsoFailing, tags, scenarios, lintProfile (docs/selftest.md)',
    );
  }
  const spec = parsed.data;
  const expected = spec.expect.map((e) => e.scenario);
  const twice = expected.find((s, i) => expected.indexOf(s) !== i);
  if (twice) throw new UsageError(`${where}: expects scenario ${JSON.stringify(twice)} twice`, 'merge the two entries');
  const both = spec.alsoFailing.find((s) => expected.includes(s));
  if (both)
    throw new UsageError(
      `${where}: ${JSON.stringify(both)} is both expected and alsoFailing`,
      'an expected scenario must fail with its message; remove it from alsoFailing',
    );
  const unselected = spec.scenarios ? expected.filter((e) => !spec.scenarios?.includes(e)) : [];
  if (unselected.length)
    throw new UsageError(
      `${where}: expects ${JSON.stringify(unselected[0])} to fail, but its scenarios: list does not run it`,
      'add the expected scenarios to scenarios:, or remove scenarios: to run the whole suite',
    );
  return spec;
}

/** Loads every <dir>/<fault>/fault.yaml (sorted by directory name) and checks its setup loads. */
export function loadFaultCatalogue(root: string = DEFAULT_CATALOGUE): Fault[] {
  if (!existsSync(root))
    throw new UsageError(
      `no fault catalogue at ${root}`,
      'faults live in fixtures/faults/<NN-name>/ (docs/selftest.md)',
    );
  const faults: Fault[] = [];
  for (const id of readdirSync(root).sort()) {
    const dir = path.join(root, id);
    const file = path.join(dir, 'fault.yaml');
    if (!existsSync(file)) {
      if (existsSync(path.join(dir, 'setup.yaml')))
        throw new UsageError(`fault ${id} has a setup.yaml but no fault.yaml`, `add ${file} (docs/selftest.md)`);
      continue;
    }
    let raw: unknown;
    try {
      raw = parseYaml(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new UsageError(
        `${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`,
        'fix the syntax at the position named above',
      );
    }
    const spec = parseFaultSpec(raw, file);
    // The setup must load (and its templates render) now: a broken fault setup is a catalogue
    // error, not a caught fault.
    const setup = loadSetup(dir);
    checkSetup(setup);
    faults.push({ ...spec, id, dir, webhookFlags: setup.spec.webhook.flags });
  }
  if (faults.length === 0)
    throw new UsageError(`the fault catalogue ${root} is empty`, 'add fixtures/faults/<NN-name>/ directories');
  return faults;
}

/** Picks faults by id or by number prefix ("05" or "5"); unknown names are bad input. */
export function selectFaults(faults: Fault[], only: string[]): Fault[] {
  if (only.length === 0) return faults;
  return only.map((want) => {
    const n = /^\d+$/.test(want) ? Number(want) : undefined;
    const hit = faults.find((f) => f.id === want || (n !== undefined && Number(f.id.split('-')[0]) === n));
    if (!hit) throw new UsageError(`no fault ${JSON.stringify(want)}`, `faults: ${faults.map((f) => f.id).join(', ')}`);
    return hit;
  });
}

// ---------------------------------------------------------------------------------------------
// Outcomes of a run, from cucumber's message stream

export { type ScenarioOutcome, scenarioOutcomes };

// ---------------------------------------------------------------------------------------------
// Checks

export interface RunResult {
  exitCode: number;
  scenarios: ScenarioOutcome[];
  durationMs: number;
  /** Why the run did not complete (exit 2, crash, timeout): the last lines of its output. */
  error?: string;
}

export interface ExpectationVerdict {
  scenario: string;
  caught: boolean;
  /** Status of the scenario in the faulty run (NOT RUN when no scenario of that name ran). */
  status: string;
  excerpt: string;
  problem?: string;
}

export interface FaultVerdict {
  id: string;
  caught: boolean;
  expectations: ExpectationVerdict[];
  /** Scenarios outside expect + alsoFailing that did not pass (or skip). */
  unexpected: { scenario: string; status: string; excerpt: string }[];
  runProblem?: string;
}

const FAILING = (status: string) => status !== 'PASSED' && status !== 'SKIPPED';

const DIFF_HEADER = /^[+-] (expected|actual) - (expected|actual)$/;

/**
 * The message as one line, redacted, without the assertion prefix and the stack. `head` keeps
 * only the first paragraph; otherwise the values of node's assertion diff are kept too (without
 * the +/- markers), because a message like "fails the pre-flight checks" names its cause there.
 */
export function oneLine(message: string | undefined, opts: { head?: boolean } = {}): string {
  if (!message) return '';
  const kept: string[] = [];
  for (const raw of redact(message).split('\n')) {
    const line = raw.trim();
    if (/^\s+at /.test(raw)) break;
    if (DIFF_HEADER.test(line) || (line === '' && kept.length > 0)) {
      if (opts.head) break;
      continue;
    }
    kept.push(line.replace(/^[+-] /, ''));
  }
  return kept
    .join(' ')
    .replace(/^AssertionError \[ERR_ASSERTION\]:\s*/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * One line of at most `width` characters showing where the message names the cause: the first
 * paragraph when it fits, else the passages around the expected substrings, joined by "…".
 */
export function excerpt(message: string | undefined, anchors: string[] = [], width = 110): string {
  const head = oneLine(message, { head: true });
  const inHead = anchors.length > 0 && anchors.every((a) => head.includes(a));
  if (head.length <= width && (inHead || anchors.length === 0)) return head;
  const text = inHead ? head : oneLine(message);
  const hits = anchors
    .map((a) => ({ start: text.indexOf(a), end: text.indexOf(a) + a.length }))
    .filter((h) => h.start >= 0)
    .sort((a, b) => a.start - b.start);
  if (hits.length === 0) return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
  const context = 12;
  const spans: { start: number; end: number }[] = [];
  for (const h of hits) {
    const start = Math.max(0, h.start - context);
    const end = Math.min(text.length, h.end + context);
    const last = spans[spans.length - 1];
    if (last && start <= last.end) last.end = Math.max(last.end, end);
    else spans.push({ start, end });
  }
  const joined = spans
    .map((sp, i) => `${sp.start > 0 && i === 0 ? '…' : ''}${text.slice(sp.start, sp.end)}`)
    .join('…')
    .concat((spans[spans.length - 1]?.end ?? 0) < text.length ? '…' : '');
  return joined.length <= width ? joined : `${joined.slice(0, width - 1)}…`;
}

export function checkFault(fault: Pick<Fault, 'id' | 'expect' | 'alsoFailing'>, run: RunResult): FaultVerdict {
  const runProblem =
    run.error !== undefined || ![0, 1].includes(run.exitCode)
      ? `the run did not complete (exit ${run.exitCode}): ${run.error ?? 'no detail'}`
      : run.scenarios.length === 0
        ? `the run ran no scenario (exit ${run.exitCode}; see its output.log)`
        : undefined;
  const expectations: ExpectationVerdict[] = fault.expect.map((exp) => {
    const ran = run.scenarios.filter((s) => s.name === exp.scenario);
    if (ran.length === 0)
      return {
        scenario: exp.scenario,
        caught: false,
        status: 'NOT RUN',
        excerpt: '',
        problem: runProblem
          ? 'did not run: the run did not complete'
          : "did not run: no scenario of this name was selected (check the name, and the fault's tags and scenarios)",
      };
    const failed = ran.filter((s) => s.status === 'FAILED');
    if (failed.length === 0) {
      const status = ran.map((s) => s.status).join(', ');
      return {
        scenario: exp.scenario,
        caught: false,
        status,
        excerpt: excerpt(ran[0]?.message, exp.message),
        problem: status.includes('SKIPPED')
          ? 'was skipped, so it cannot catch the fault'
          : `did not fail (${status}): the fault was not caught`,
      };
    }
    const good = failed.find((s) => exp.message.every((m) => (s.message ?? '').includes(m)));
    if (good)
      return { scenario: exp.scenario, caught: true, status: 'FAILED', excerpt: excerpt(good.message, exp.message) };
    const first = failed[0] as ScenarioOutcome;
    const missing = exp.message.filter((m) => !(first.message ?? '').includes(m));
    return {
      scenario: exp.scenario,
      caught: false,
      status: 'FAILED',
      excerpt: excerpt(first.message, exp.message),
      problem: `failed, but its message does not mention ${missing.map((m) => JSON.stringify(m)).join(', ')}: it does not name the cause`,
    };
  });
  const allowed = new Set([...fault.expect.map((e) => e.scenario), ...fault.alsoFailing]);
  const unexpected = run.scenarios
    .filter((s) => FAILING(s.status) && !allowed.has(s.name))
    .map((s) => ({ scenario: s.name, status: s.status, excerpt: excerpt(s.message) }));
  return {
    id: fault.id,
    caught: !runProblem && unexpected.length === 0 && expectations.every((e) => e.caught),
    expectations,
    unexpected,
    ...(runProblem ? { runProblem } : {}),
  };
}

export interface BaselineVerdict {
  label: string;
  green: boolean;
  counts: Record<string, number>;
  problems: string[];
}

/** The correct setup: the run completed with exit 0, something passed, and nothing failed. */
export function checkBaseline(label: string, run: RunResult): BaselineVerdict {
  const counts: Record<string, number> = {};
  for (const s of run.scenarios) counts[s.status] = (counts[s.status] ?? 0) + 1;
  const problems: string[] = [];
  if (run.error !== undefined || run.exitCode !== 0)
    problems.push(`the run exited ${run.exitCode}${run.error ? `: ${run.error}` : ''}`);
  if (!counts.PASSED) problems.push('no scenario passed');
  for (const s of run.scenarios.filter((x) => FAILING(x.status)))
    problems.push(`false alarm: ${s.name} ${s.status}: ${excerpt(s.message)}`);
  return { label, green: problems.length === 0, counts, problems };
}

/** Scenario names the catalogue mentions that the full suite does not have (typos). */
export function unknownScenarioNames(faults: Fault[], suite: ScenarioOutcome[]): string[] {
  const known = new Set(suite.map((s) => s.name));
  const out: string[] = [];
  for (const f of faults)
    for (const name of new Set([...f.expect.map((e) => e.scenario), ...f.alsoFailing, ...(f.scenarios ?? [])]))
      if (!known.has(name)) out.push(`${f.id}: no scenario is named ${JSON.stringify(name)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The table

export interface TableRow {
  fault: string;
  scenario: string;
  caught: string;
  excerpt: string;
}

export function tableRows(baselines: BaselineVerdict[], verdicts: FaultVerdict[]): TableRow[] {
  const rows: TableRow[] = [];
  for (const b of baselines) {
    const counts = Object.entries(b.counts)
      .map(([k, v]) => `${v} ${k.toLowerCase()}`)
      .join(', ');
    rows.push({
      fault: b.label,
      scenario: '(every selected scenario passes)',
      caught: b.green ? 'green' : 'RED',
      excerpt: counts || 'no scenario ran',
    });
  }
  for (const v of verdicts) {
    v.expectations.forEach((e, i) => {
      rows.push({
        fault: i === 0 ? v.id : '',
        scenario: e.scenario,
        caught: e.caught ? 'yes' : 'NO',
        excerpt: e.caught ? e.excerpt : `${e.problem ?? ''}${e.excerpt ? ` | ${e.excerpt}` : ''}`,
      });
    });
    for (const u of v.unexpected)
      rows.push({ fault: '', scenario: u.scenario, caught: 'UNEXPECTED', excerpt: `${u.status}: ${u.excerpt}` });
    if (v.runProblem) rows.push({ fault: '', scenario: '(run)', caught: 'NO', excerpt: v.runProblem });
  }
  return rows;
}

export function formatTable(rows: TableRow[], maxExcerpt = 120): string {
  const header: TableRow = {
    fault: 'fault',
    scenario: 'expected scenario',
    caught: 'caught',
    excerpt: 'message excerpt',
  };
  const all = [header, ...rows].map((r) => ({
    ...r,
    excerpt: r.excerpt.length > maxExcerpt ? `${r.excerpt.slice(0, maxExcerpt - 1)}…` : r.excerpt,
  }));
  const w = {
    fault: Math.max(...all.map((r) => r.fault.length)),
    scenario: Math.max(...all.map((r) => r.scenario.length)),
    caught: Math.max(...all.map((r) => r.caught.length)),
  };
  const line = (r: TableRow) =>
    `${r.fault.padEnd(w.fault)}  ${r.scenario.padEnd(w.scenario)}  ${r.caught.padEnd(w.caught)}  ${r.excerpt}`.trimEnd();
  const rule = `${'-'.repeat(w.fault)}  ${'-'.repeat(w.scenario)}  ${'-'.repeat(w.caught)}  ${'-'.repeat(15)}`;
  return [line(all[0] as TableRow), rule, ...all.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Running the suite

interface RunSpec {
  /** Directory name of the run's reports, and the label in progress lines. */
  id: string;
  setupDir: string;
  tags?: string;
  /** Exact scenario names (passed to cucumber as anchored, escaped --name patterns). */
  scenarios?: string[];
  lintProfile: 'default' | 'strict';
  webhookFlags: Record<string, string>;
}

/** A warm embedded environment this process started, shared by runs whose webhook flags match. */
interface SharedEnv {
  statePath: string;
  flags: string;
  /** Set when a component died: the next run gets a fresh environment. */
  broken: boolean;
  stop(): Promise<void>;
}

const RUN_TIMEOUT_MS = 20 * 60_000;

/** A cucumber --name pattern matching exactly this scenario name. */
export function exactName(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
}

function lastLines(file: string, n: number): string {
  if (!existsSync(file)) return '';
  return redact(readFileSync(file, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .slice(-n)
    .join(' / ');
}

class Runner {
  readonly children = new Set<ChildProcess>();
  interrupted: NodeJS.Signals | undefined;
  /** One shared environment per worker: runs on one environment must not overlap (webhook
   * configurations are cluster-wide; the discovery bucket and the identity provider are per environment). */
  private readonly envs = new Map<number, SharedEnv>();

  constructor(
    private readonly opts: {
      reportsRoot: string;
      reuse: boolean;
      verbose: boolean;
      region: string;
      startTimeoutSeconds: number;
      embedded: HarnessConfig['embedded'];
    },
  ) {}

  /** Starts (or reuses) the shared environment for these flags; returns its state file. */
  private async sharedEnv(worker: number, flags: Record<string, string>): Promise<string> {
    const key = JSON.stringify(flags);
    const current = this.envs.get(worker);
    if (current && (current.broken || current.flags !== key)) {
      this.envs.delete(worker);
      await current.stop();
    }
    const reusable = this.envs.get(worker);
    if (reusable) return reusable.statePath;
    const { startEmbeddedTarget } = await import('../targets/embedded/index.ts');
    const { embeddedOptionsFor } = await import('../targets/embedded/options.ts');
    const options = embeddedOptionsFor(
      {
        reportsDir: this.opts.reportsRoot,
        region: this.opts.region,
        embedded: this.opts.embedded,
        timeouts: { startSeconds: this.opts.startTimeoutSeconds },
      },
      { spec: { webhook: { flags } } },
    );
    const envId = options.envId;
    ensurePrivateDir(envsRoot);
    const statePath = path.join(envsRoot, `selftest-${envId}.json`);
    const started = Date.now();
    const shared: SharedEnv = { statePath, flags: key, broken: false, stop: async () => undefined };
    const t = await startEmbeddedTarget({
      ...options,
      stateFile: statePath,
      // This process stops it (or its exit handler does); the runs attached to it must finish
      // their clean-up first, so signals are handled here, not by the target.
      handleSignals: false,
      onUnexpectedExit: () => {
        shared.broken = true;
      },
    });
    shared.stop = () => t.stop();
    this.envs.set(worker, shared);
    process.stderr.write(
      `selftest: shared embedded environment ${envId} ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
    return statePath;
  }

  /**
   * After a run on the shared environment, nothing of it may remain that the next run would
   * trip over (webhook configurations mutate every later pod; the discovery bucket and the
   * identity provider are per environment). If something does, the environment is replaced.
   */
  private async verifyClean(statePath: string): Promise<string | undefined> {
    const { createClients } = await import('../clients.ts');
    const { HeadBucketCommand } = await import('@aws-sdk/client-s3');
    const { ListOpenIDConnectProvidersCommand } = await import('@aws-sdk/client-iam');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as {
      descriptor: import('../targets/target.ts').TargetDescriptor;
    };
    const c = createClients(state.descriptor);
    try {
      const left: string[] = [];
      const hooks = await c.admission.listMutatingWebhookConfiguration({
        labelSelector: 'app.kubernetes.io/managed-by=irsa-conformance',
      });
      for (const h of hooks.items) left.push(`MutatingWebhookConfiguration ${h.metadata?.name}`);
      const issuer = state.descriptor.issuer;
      if (issuer.mode === 'fixed') {
        const exists = await c.s3.send(new HeadBucketCommand({ Bucket: issuer.discoveryBucket })).then(
          () => true,
          () => false,
        );
        if (exists) left.push(`bucket ${issuer.discoveryBucket}`);
      }
      const idps = await c.iam.send(new ListOpenIDConnectProvidersCommand({}));
      for (const p of idps.OpenIDConnectProviderList ?? []) left.push(`identity provider ${p.Arn}`);
      return left.length ? left.join(', ') : undefined;
    } finally {
      c.destroy();
    }
  }

  async run(spec: RunSpec, worker: number): Promise<RunResult> {
    const reportsDir = path.join(this.opts.reportsRoot, 'selftest', spec.id);
    rmSync(reportsDir, { recursive: true, force: true });
    mkdirSync(reportsDir, { recursive: true });
    const defaultFlags = JSON.stringify(loadSetup(CORRECT_SETUP).spec.webhook.flags);
    // Only runs with the default setup's webhook flags share the environment; others start their own.
    const attach =
      this.opts.reuse && JSON.stringify(spec.webhookFlags) === defaultFlags
        ? await this.sharedEnv(worker, spec.webhookFlags)
        : undefined;
    const args = ['--import', 'tsx', path.join(repoRoot, 'support', 'cli', 'main.ts'), 'conformance'];
    if (spec.tags) args.push('--tags', spec.tags);
    for (const n of spec.scenarios ?? []) args.push('--name', exactName(n));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      IRSA_TARGET: 'embedded',
      IRSA_SETUP: spec.setupDir,
      IRSA_REPORTS_DIR: reportsDir,
      IRSA_LINT_PROFILE: spec.lintProfile,
      // What the catalogue's expectations assume (tenant 2 exists; a failed run deletes what it made).
      IRSA_TENANTS: '3',
      IRSA_KEEP_ON_FAILURE: 'false',
    };
    delete env.IRSA_ATTACH;
    delete env.IRSA_RUN_STATE;
    if (attach) env.IRSA_ATTACH = attach;
    const outFile = path.join(reportsDir, 'output.log');
    const out = openSync(outFile, 'w');
    const started = Date.now();
    let timedOut = false;
    const exitCode = await new Promise<number>((resolve) => {
      // Its own process group: a terminal's Ctrl-C reaches only this process, which forwards it
      // once, so the run cleans up (a second SIGINT would make it exit at once).
      const child = spawn(process.execPath, args, {
        cwd: repoRoot,
        env,
        stdio: ['ignore', this.opts.verbose ? 'inherit' : out, this.opts.verbose ? 'inherit' : out],
        detached: true,
      });
      this.children.add(child);
      const watchdog = setTimeout(() => {
        timedOut = true;
        child.kill('SIGTERM');
      }, RUN_TIMEOUT_MS);
      child.on('error', (e) => {
        writeFileSync(outFile, `cannot start the run: ${e.message}\n`, { flag: 'a' });
      });
      child.on('close', (code, signal) => {
        clearTimeout(watchdog);
        this.children.delete(child);
        resolve(code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1));
      });
    });
    closeSync(out);
    const scenarios = scenarioOutcomes(readMessages(path.join(reportsDir, 'cucumber.ndjson')));
    const result: RunResult = { exitCode, scenarios, durationMs: Date.now() - started };
    if (timedOut) result.error = `no result within ${RUN_TIMEOUT_MS / 60_000} min; output in ${outFile}`;
    else if (exitCode !== 0 && exitCode !== 1) result.error = `${lastLines(outFile, 3)} (output in ${outFile})`;
    const shared = this.envs.get(worker);
    if (attach && shared && !this.interrupted) {
      const left = await this.verifyClean(attach).catch((e: Error) => `cannot check: ${e.message}`);
      if (left) {
        process.stderr.write(
          `selftest: run ${spec.id} left ${left} on the shared environment; the next run gets a fresh one\n`,
        );
        shared.broken = true;
      }
    }
    return result;
  }

  signal(signal: NodeJS.Signals): void {
    this.interrupted = signal;
    for (const child of this.children) child.kill(signal);
  }

  async close(): Promise<void> {
    const envs = [...this.envs.values()];
    this.envs.clear();
    await Promise.all(envs.map((e) => e.stop()));
  }
}

// ---------------------------------------------------------------------------------------------
// The command

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

  // The correct setup runs the whole suite (unless --only narrows the self-test to some faults);
  // a fault with another lint profile gets a control run of the correct setup with that profile
  // and the same selection, so a strict-only failure is shown to come from the fault.
  const baselines: RunSpec[] = [];
  if (opts.only.length === 0)
    baselines.push({
      id: 'correct-setup',
      setupDir: CORRECT_SETUP,
      lintProfile: 'default',
      webhookFlags: correctFlags,
    });
  for (const f of faults) {
    if (!f.lintProfile || f.lintProfile === 'default') continue;
    const id = `correct-setup-${f.lintProfile}${f.tags || f.scenarios ? `-as-${f.id}` : ''}`;
    if (baselines.some((b) => b.id === id)) continue;
    baselines.push({
      id,
      setupDir: CORRECT_SETUP,
      lintProfile: f.lintProfile,
      webhookFlags: correctFlags,
      ...(f.tags ? { tags: f.tags } : {}),
      ...(f.scenarios ? { scenarios: f.scenarios } : {}),
    });
  }
  const faultRuns: (RunSpec & { fault: Fault })[] = faults.map((f) => ({
    id: f.id,
    fault: f,
    setupDir: f.dir,
    lintProfile: f.lintProfile ?? 'default',
    webhookFlags: f.webhookFlags,
    ...(f.tags ? { tags: f.tags } : {}),
    ...(f.scenarios ? { scenarios: f.scenarios } : {}),
  }));
  // Runs that share the environment first, then those that need their own.
  const shares = (s: RunSpec) => JSON.stringify(s.webhookFlags) === JSON.stringify(correctFlags);
  faultRuns.sort((a, b) => Number(!shares(a)) - Number(!shares(b)));

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
  const problems = [
    ...baselineVerdicts.flatMap((b) => b.problems.map((p) => `${b.label}: ${p}`)),
    ...verdicts.flatMap((v) => [
      ...v.expectations.filter((e) => !e.caught).map((e) => `${v.id}: ${e.scenario} ${e.problem}`),
      ...v.unexpected.map(
        (u) => `${v.id}: ${u.scenario} ${u.status} but is neither expected nor in alsoFailing: ${u.excerpt}`,
      ),
      ...(v.runProblem ? [`${v.id}: ${v.runProblem}`] : []),
    ]),
    ...catalogueProblems,
  ];
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
