/**
 * The self-test's verdicts: reads one run's scenario outcomes and decides whether a fault was
 * caught (the expected scenarios failed with every expected substring in their message, nothing
 * else failed) and whether the correct setup passed entirely (no false alarms); the message
 * excerpts, and the table the command prints (fault, expected scenario, caught, excerpt).
 */
import type { ScenarioOutcome } from '../outcomes.ts';
import { redact } from '../redact.ts';
import type { Fault } from './catalogue.ts';

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

/** Every problem the table shows, one line each, for the command's "Problems:" list and summary. */
export function verdictProblems(
  baselines: BaselineVerdict[],
  verdicts: FaultVerdict[],
  catalogueProblems: string[],
): string[] {
  return [
    ...baselines.flatMap((b) => b.problems.map((p) => `${b.label}: ${p}`)),
    ...verdicts.flatMap((v) => [
      ...v.expectations.filter((e) => !e.caught).map((e) => `${v.id}: ${e.scenario} ${e.problem}`),
      ...v.unexpected.map(
        (u) => `${v.id}: ${u.scenario} ${u.status} but is neither expected nor in alsoFailing: ${u.excerpt}`,
      ),
      ...(v.runProblem ? [`${v.id}: ${v.runProblem}`] : []),
    ]),
    ...catalogueProblems,
  ];
}
