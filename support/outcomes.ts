/**
 * Each scenario's outcome from cucumber's message stream: its worst step status, that step's
 * message, and how long it took (retried attempts are left out). Used by the coordinator's
 * summary, the self-test and the benchmark.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Envelope } from '@cucumber/messages';

export interface ScenarioOutcome {
  name: string;
  uri: string;
  /** The scenario's line (an outline's: its Examples row's), which tells the rows of an outline apart. */
  line?: number;
  status: string;
  message?: string;
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

export class OutcomeCollector {
  private readonly pickles = new Map<string, { name: string; uri: string; line?: number }>();
  private readonly caseToPickle = new Map<string, string>();
  private readonly startedToCase = new Map<string, string>();
  private readonly worst = new Map<string, { status: string; message?: string }>();
  private readonly startedAt = new Map<string, Timestamp>();
  readonly finished: ScenarioOutcome[] = [];

  add(e: Envelope): void {
    if (e.pickle)
      this.pickles.set(e.pickle.id, {
        name: e.pickle.name,
        uri: e.pickle.uri,
        ...(e.pickle.location ? { line: e.pickle.location.line } : {}),
      });
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
      this.finished.push({
        name: pickle?.name ?? '?',
        uri: pickle?.uri ?? '?',
        ...(pickle?.line !== undefined ? { line: pickle.line } : {}),
        status: w.status,
        ...(w.message ? { message: w.message } : {}),
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
