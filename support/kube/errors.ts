/**
 * Kubernetes API errors by name: which are transient (worth another attempt with backoff) and
 * which are answers. Named by HTTP status and the Status object's `reason`, never guessed from
 * message text:
 *   429 TooManyRequests        API priority and fairness, or a client rate limit: Retry-After
 *   500 InternalError          e.g. etcd leader change, "the object has been modified" inside the server
 *   503 ServiceUnavailable     an aggregated API or the API server itself restarting (OpenShift rollouts)
 *   504 Timeout/ServerTimeout  the server gave up waiting; the request may or may not have been applied
 *   409 Conflict               an update against an old resourceVersion (re-read and retry); NOT 409
 *                              AlreadyExists, which is an answer (except after a retried create, below)
 * and connection errors while an API server restarts (ECONNREFUSED, ECONNRESET, socket hang up).
 * `retryKubeCreate` creates with bounded retries; an AlreadyExists after an earlier transient
 * failure means that earlier attempt was applied, which is success for names unique to the run.
 */
import { retry } from '../retry.ts';

export function kubeStatus(e: unknown): number | undefined {
  if (e && typeof e === 'object') {
    const code = (e as { code?: unknown }).code ?? (e as { statusCode?: unknown }).statusCode;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

export function isNotFound(e: unknown): boolean {
  return kubeStatus(e) === 404;
}

export function isConflict(e: unknown): boolean {
  return kubeStatus(e) === 409;
}

export const KUBE_TRANSIENT_STATUS = new Map<number, string>([
  [429, 'TooManyRequests'],
  [500, 'InternalError'],
  [502, 'BadGateway'],
  [503, 'ServiceUnavailable'],
  [504, 'Timeout'],
]);
export const KUBE_TRANSIENT_REASONS = new Set([
  'TooManyRequests',
  'InternalError',
  'ServiceUnavailable',
  'ServerTimeout',
  'Timeout',
]);
export const NETWORK_TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN']);

/** The `reason` of the Status object a Kubernetes API error carries (Conflict, AlreadyExists, ...). */
export function kubeReason(e: unknown): string | undefined {
  const body = (e as { body?: unknown } | undefined)?.body;
  let status: unknown = body;
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  const reason = (status as { reason?: unknown } | undefined)?.reason;
  return typeof reason === 'string' ? reason : undefined;
}

function networkCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 4; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isAlreadyExists(e: unknown): boolean {
  return kubeStatus(e) === 409 && kubeReason(e) === 'AlreadyExists';
}

/**
 * True for errors a later attempt may not see. `conflicts`: also 409 Conflict (for updates, patches
 * and deletes, where re-reading and retrying is the documented answer).
 */
export function isTransientKubeError(e: unknown, opts: { conflicts?: boolean } = {}): boolean {
  const status = kubeStatus(e);
  if (status !== undefined) {
    if (KUBE_TRANSIENT_STATUS.has(status)) return true;
    if (status === 409) return opts.conflicts === true && kubeReason(e) !== 'AlreadyExists';
    const reason = kubeReason(e);
    return reason !== undefined && KUBE_TRANSIENT_REASONS.has(reason);
  }
  const code = networkCode(e);
  return code !== undefined && NETWORK_TRANSIENT_CODES.has(code);
}

/**
 * A create with bounded retries on transient errors. Resolves to the created object, or to
 * undefined when a retried create found the object already there (the earlier attempt was applied).
 */
export async function retryKubeCreate<T>(
  create: () => Promise<T>,
  o: { operation: string; timeoutSeconds: number },
): Promise<T | undefined> {
  let failedTransiently = false;
  const { value } = await retry(
    async () => {
      try {
        return await create();
      } catch (e) {
        if (failedTransiently && isAlreadyExists(e)) return undefined;
        if (isTransientKubeError(e)) failedTransiently = true;
        throw e;
      }
    },
    {
      operation: o.operation,
      waitingFor: 'the API server to accept the request (throttled, unavailable or timing out)',
      timeoutSeconds: o.timeoutSeconds,
      retryable: (e) => isTransientKubeError(e),
      initialDelayMs: 250,
      maxDelayMs: 4000,
    },
  );
  return value;
}
