/**
 * Bounded retries with exponential backoff and a per-operation deadline. Retried errors are
 * named (a list per service in support/aws/errors.ts and support/kube/errors.ts), never guessed
 * from message text. A timeout names the operation and what it was waiting for.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { OperationTimeout } from './errors.ts';

export interface RetryOptions {
  operation: string;
  waitingFor: string;
  timeoutSeconds: number;
  retryable: (e: unknown) => boolean;
  /** First backoff; doubles up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (attempt: number, e: unknown, waitedMs: number) => void;
}

export interface RetryOutcome<T> {
  value: T;
  attempts: number;
  waitedMs: number;
}

export async function retry<T>(op: () => Promise<T>, o: RetryOptions): Promise<RetryOutcome<T>> {
  const start = Date.now();
  const deadline = start + o.timeoutSeconds * 1000;
  let wait = o.initialDelayMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await op(), attempts: attempt, waitedMs: Date.now() - start };
    } catch (e) {
      if (!o.retryable(e)) throw e;
      if (Date.now() + wait > deadline) {
        const t = new OperationTimeout(o.operation, o.waitingFor, o.timeoutSeconds);
        (t as Error).cause = e;
        throw t;
      }
      o.onRetry?.(attempt, e, Date.now() - start);
      // Backoff between attempts of a named retryable error: the only waiting this module does.
      await delay(wait);
      wait = Math.min(wait * 2, o.maxDelayMs ?? 3000);
    }
  }
}
