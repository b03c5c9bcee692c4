/**
 * Each scenario's outcome from cucumber's message stream: its worst step status, that step's
 * message, and how long it took (retried attempts are left out). Used by the coordinator's
 * summary, the self-test and the benchmark.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Envelope, GherkinDocument } from '@cucumber/messages';

/**
 * The line of every scenario and Examples row of a feature, by AST node id: a pickle's last
 * astNodeId names its row (or its scenario), and `uri:line` selects exactly it (cucumber's
 * feature-path and rerun syntax).
 */
export function scenarioLines(doc: GherkinDocument): Map<string, number> {
  const lines = new Map<string, number>();
  const children = [...(doc.feature?.children ?? [])];
  for (const child of children) {
    if (child.rule) children.push(...child.rule.children);
    const s = child.scenario;
    if (!s) continue;
    lines.set(s.id, s.location.line);
    for (const ex of s.examples) for (const row of ex.tableBody) lines.set(row.id, row.location.line);
  }
  return lines;
}

export interface ScenarioOutcome {
  name: string;
  uri: string;
  /** The line of the scenario (or of its Examples row): `uri:line` selects exactly it. */
  line?: number;
  status: string;
  message?: string;
  /** Why a skipped scenario was skipped (the Before hook's "Skipped: …" attachment). */
  skipReason?: string;
  /** From the start of the scenario to its end, when the messages carry timestamps. */
  seconds?: number;
}

type Timestamp = { seconds: number; nanos: number };
const toSeconds = (t: Timestamp) => t.seconds + t.nanos / 1e9;

const RANK: Record<string, number> = {
  PASSED: 0,
  SKIPPED: 1,
  UNKNOWN: 1,
  PENDING: 2,
  UNDEFINED: 3,
  AMBIGUOUS: 4,
  FAILED: 5,
};

/** The attachment a hook makes when it skips a scenario (support/cucumber/hooks.ts). */
export const SKIP_PREFIX = 'Skipped: ';
/** The test-run hook whose report entry carries the capability matrix (support/formatters/html.ts). */
export const CAPABILITIES_HOOK = 'Capabilities of the target (measured at start)';

export class OutcomeCollector {
  private readonly lines = new Map<string, number>();
  private readonly pickles = new Map<string, { name: string; uri: string; line?: number }>();
  private readonly skipReasons = new Map<string, string>();
  private readonly caseToPickle = new Map<string, string>();
  private readonly startedToCase = new Map<string, string>();
  private readonly worst = new Map<string, { status: string; message?: string }>();
  private readonly startedAt = new Map<string, Timestamp>();
  readonly finished: ScenarioOutcome[] = [];

  add(e: Envelope): void {
    if (e.gherkinDocument) for (const [id, line] of scenarioLines(e.gherkinDocument)) this.lines.set(id, line);
    if (e.pickle) {
      const line = this.lines.get(e.pickle.astNodeIds?.at(-1) ?? '');
      this.pickles.set(e.pickle.id, { name: e.pickle.name, uri: e.pickle.uri, ...(line ? { line } : {}) });
    }
    const a = e.attachment;
    if (a?.testCaseStartedId && a.body.startsWith(SKIP_PREFIX) && !this.skipReasons.has(a.testCaseStartedId))
      this.skipReasons.set(a.testCaseStartedId, a.body.slice(SKIP_PREFIX.length));
    if (e.testCase) this.caseToPickle.set(e.testCase.id, e.testCase.pickleId);
    if (e.testCaseStarted) {
      this.startedToCase.set(e.testCaseStarted.id, e.testCaseStarted.testCaseId);
      this.worst.set(e.testCaseStarted.id, { status: 'PASSED' });
      if (e.testCaseStarted.timestamp) this.startedAt.set(e.testCaseStarted.id, e.testCaseStarted.timestamp);
    }
    if (e.testStepFinished) {
      const r = e.testStepFinished.testStepResult;
      const cur = this.worst.get(e.testStepFinished.testCaseStartedId);
      if (cur && (RANK[r.status] ?? 0) > (RANK[cur.status] ?? 0)) {
        this.worst.set(e.testStepFinished.testCaseStartedId, {
          status: r.status,
          ...(r.message ? { message: r.message } : {}),
        });
      }
    }
    if (e.testCaseFinished && !e.testCaseFinished.willBeRetried) {
      const id = e.testCaseFinished.testCaseStartedId;
      const pickle = this.pickles.get(this.caseToPickle.get(this.startedToCase.get(id) ?? '') ?? '');
      const w = this.worst.get(id) ?? { status: 'UNKNOWN' };
      const start = this.startedAt.get(id);
      const end = e.testCaseFinished.timestamp;
      const skipReason = this.skipReasons.get(id);
      this.finished.push({
        name: pickle?.name ?? '?',
        uri: pickle?.uri ?? '?',
        ...(pickle?.line ? { line: pickle.line } : {}),
        status: w.status,
        ...(w.message ? { message: w.message } : {}),
        ...(w.status === 'SKIPPED' && skipReason ? { skipReason } : {}),
        ...(start && end ? { seconds: toSeconds(end) - toSeconds(start) } : {}),
      });
    }
  }

  counts(): { passed: number; failed: number; skipped: number; other: number } {
    const counts = { passed: 0, failed: 0, skipped: 0, other: 0 };
    for (const s of this.finished) {
      if (s.status === 'PASSED') counts.passed++;
      else if (s.status === 'FAILED') counts.failed++;
      else if (s.status === 'SKIPPED') counts.skipped++;
      else counts.other++;
    }
    return counts;
  }
}

/**
 * The rerun file's text: `uri:line[:line…]` per feature for every scenario that did not pass and
 * was not skipped (a skipped one would only be skipped again), in the order they ran.
 */
export function rerunText(outcomes: ScenarioOutcome[]): string {
  const byUri = new Map<string, number[]>();
  for (const o of outcomes) {
    if (o.status === 'PASSED' || o.status === 'SKIPPED' || !o.line) continue;
    byUri.set(o.uri, [...(byUri.get(o.uri) ?? []), o.line]);
  }
  return [...byUri].map(([uri, lines]) => `${uri}:${[...new Set(lines)].join(':')}\n`).join('');
}

/** The messages of a cucumber.ndjson report; none when the file is missing (the run stopped before it). */
export function readMessages(file: string): Envelope[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Envelope);
}

/** Each finished scenario of a message stream (e.g. a run's cucumber.ndjson). */
export function scenarioOutcomes(envelopes: Iterable<Envelope>): ScenarioOutcome[] {
  const c = new OutcomeCollector();
  for (const e of envelopes) c.add(e);
  return c.finished;
}
