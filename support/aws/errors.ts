/** AWS errors by name: which are retryable (eventual consistency, throttling) and how to print one. */

/** IAM is eventually consistent: a new role or IdP may be refused for seconds after creation. */
export const IAM_PROPAGATION_ERRORS = new Set([
  'InvalidIdentityToken',
  'AccessDenied',
  'NoSuchEntity',
  'MalformedPolicyDocument',
]);
export const THROTTLING_ERRORS = new Set([
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
]);
export const DELETE_CONFLICT_ERRORS = new Set([
  'DeleteConflict',
  'BucketNotEmpty',
  'OperationAborted',
  'ConcurrentModification',
]);

/**
 * The AWS error code as the service sent it. IAM and STS answer `NoSuchEntity`,
 * `InvalidIdentityToken`, … while the SDK's modelled exception classes are named
 * `NoSuchEntityException`, …: the wire code is in `Code`, so prefer it over `name`.
 */
export function awsErrorName(e: unknown): string | undefined {
  if (e && typeof e === 'object' && 'name' in e && typeof (e as { name: unknown }).name === 'string') {
    const meta = (e as { $metadata?: unknown }).$metadata;
    if (meta !== undefined || (e as { $fault?: unknown }).$fault !== undefined) {
      const code = (e as { Code?: unknown }).Code;
      return typeof code === 'string' && code !== '' ? code : (e as { name: string }).name;
    }
  }
  return undefined;
}

/** Every spelling of an error: the wire code, the SDK class name, and that name without "Exception". */
function errorNames(e: unknown): string[] {
  const code = awsErrorName(e);
  if (code === undefined) return [];
  const name = (e as { name: string }).name;
  return [...new Set([code, name, name.replace(/Exception$/, '')])];
}

export function isAwsError(e: unknown, ...names: string[]): boolean {
  return errorNames(e).some((n) => names.includes(n));
}

export function isThrottling(e: unknown): boolean {
  return errorNames(e).some((n) => THROTTLING_ERRORS.has(n));
}

/** "Code: message (HTTP status)" — the AWS error code and message, nothing else. */
export function describeAwsError(e: unknown): string {
  const name = awsErrorName(e);
  if (!name) return e instanceof Error ? e.message : String(e);
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return `${name}: ${(e as Error).message}${status ? ` (HTTP ${status})` : ''}`;
}
