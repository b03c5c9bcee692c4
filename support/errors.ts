/**
 * Error types that decide the harness's exit code.
 * - UsageError: bad input or environment (config, profile, kubeconfig, endpoint, credentials,
 *   missing tool). One line of cause, one line of hint, exit code 2, and nothing was created.
 * - Check failures are ordinary assertion errors inside scenarios: exit code 1.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly hint: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A component of a target did not start; carries the tail of its log (already redacted). */
export class StartError extends UsageError {
  constructor(
    readonly component: string,
    message: string,
    hint: string,
    readonly logTail = '',
    options?: { cause?: unknown },
  ) {
    super(`${component}: ${message}`, hint, options);
  }
}

/** An operation ran out of time: names the operation and what it waited for. */
export class OperationTimeout extends Error {
  override readonly name = 'OperationTimeout';
  constructor(
    readonly operation: string,
    readonly waitingFor: string,
    readonly seconds: number,
  ) {
    super(`${operation} timed out after ${seconds} s waiting for ${waitingFor}`);
  }
}

function isUsageErrorItself(e: unknown): e is UsageError {
  return e instanceof UsageError || (e instanceof Error && e.name === 'UsageError' && 'hint' in e);
}

/**
 * The UsageError behind `e`, following `cause` links: libraries (cucumber's plugin loader, for
 * one) wrap the errors they get, and bad input must still end as exit code 2.
 */
export function findUsageError(e: unknown): UsageError | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 8; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (isUsageErrorItself(cur)) return cur;
  }
  return undefined;
}

export function isUsageError(e: unknown): e is UsageError {
  return findUsageError(e) !== undefined;
}

/** One line: the cause; the hint on the next line. Used by every entry point. */
export function formatUsageError(e: UsageError): string {
  const u = findUsageError(e) ?? e;
  const cause = u.message.split('\n')[0];
  return `irsa: ${cause}\nhint: ${u.hint}`;
}
