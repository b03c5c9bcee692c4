/**
 * IAM is eventually consistent on real AWS: for some seconds after a role, policy or identity
 * provider is created, reads may answer NoSuchEntity and STS may refuse tokens for it
 * (InvalidIdentityToken "No OpenIDConnect provider found", AccessDenied). Operations that follow a
 * creation retry on exactly those error codes (and throttling), with backoff and a deadline, and
 * report how long they waited so a slow account shows in the log instead of as a flaky failure.
 */
import { retry } from '../retry.ts';
import { awsErrorName, describeAwsError, IAM_PROPAGATION_ERRORS, isAwsError, isThrottling } from './errors.ts';

export interface PropagationRetryOptions {
  /** What is being done, e.g. "reading back identity provider arn:…". */
  operation: string;
  /** What the wait is for; default "IAM to propagate the new resource". */
  waitingFor?: string;
  timeoutSeconds: number;
  /** Error codes that mean "not propagated yet"; default IAM_PROPAGATION_ERRORS. */
  codes?: Iterable<string>;
  /** Where the waited time is reported (only when there was a wait). */
  log?: (line: string) => void;
  initialDelayMs?: number;
  maxDelayMs?: number;
}

export interface PropagationOutcome<T> {
  value: T;
  attempts: number;
  waitedMs: number;
  /** The error codes seen before success, in order. */
  errors: string[];
}

export async function retryIamPropagation<T>(
  op: () => Promise<T>,
  o: PropagationRetryOptions,
): Promise<PropagationOutcome<T>> {
  const codes = new Set(o.codes ?? IAM_PROPAGATION_ERRORS);
  const errors: string[] = [];
  const outcome = await retry(op, {
    operation: o.operation,
    waitingFor: o.waitingFor ?? 'IAM to propagate the new resource',
    timeoutSeconds: o.timeoutSeconds,
    initialDelayMs: o.initialDelayMs ?? 500,
    maxDelayMs: o.maxDelayMs ?? 5000,
    retryable: (e) => isAwsError(e, ...codes) || isThrottling(e),
    onRetry: (_attempt, e) => {
      errors.push(awsErrorName(e) ?? describeAwsError(e));
    },
  });
  if (outcome.attempts > 1) {
    o.log?.(
      `IAM propagation: ${o.operation} succeeded after ${outcome.attempts} attempts, ${(outcome.waitedMs / 1000).toFixed(1)} s waited (${[...new Set(errors)].join(', ')})`,
    );
  }
  return { ...outcome, errors };
}
