/**
 * Each scenario's outcome from cucumber's message stream: its worst step status and that step's
 * message (retried attempts are left out). Used by the coordinator's summary and the self-test.
 */
import type { Envelope } from '@cucumber/messages';

export interface ScenarioOutcome {
  name: string;
  uri: string;
  status: string;
  message?: string;
}

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
  private readonly pickles = new Map<string, { name: string; uri: string }>();
  private readonly caseToPickle = new Map<string, string>();
  private readonly startedToCase = new Map<string, string>();
  private readonly worst = new Map<string, { status: string; message?: string }>();
  readonly finished: ScenarioOutcome[] = [];

  add(e: Envelope): void {
    if (e.pickle) this.pickles.set(e.pickle.id, { name: e.pickle.name, uri: e.pickle.uri });
    if (e.testCase) this.caseToPickle.set(e.testCase.id, e.testCase.pickleId);
    if (e.testCaseStarted) {
      this.startedToCase.set(e.testCaseStarted.id, e.testCaseStarted.testCaseId);
      this.worst.set(e.testCaseStarted.id, { status: 'PASSED' });
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
      this.finished.push({
        name: pickle?.name ?? '?',
        uri: pickle?.uri ?? '?',
        status: w.status,
        ...(w.message ? { message: w.message } : {}),
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

/** Each finished scenario of a message stream (e.g. a run's cucumber.ndjson). */
export function scenarioOutcomes(envelopes: Iterable<Envelope>): ScenarioOutcome[] {
  const c = new OutcomeCollector();
  for (const e of envelopes) c.add(e);
  return c.finished;
}
