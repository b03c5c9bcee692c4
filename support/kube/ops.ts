/**
 * Kubernetes operations the steps need, on @kubernetes/client-node, the same for every target:
 * create (recorded in the ledger by the caller), wait for a pod by watching (not polling), exec
 * through the API server's exec subresource.
 */
import { PassThrough } from 'node:stream';
import {
  Exec,
  type KubeConfig,
  type KubernetesObject,
  type V1Pod,
  type V1Status,
  Watch,
} from '@kubernetes/client-node';
import type { Clients } from '../clients.ts';
import { OperationTimeout } from '../errors.ts';
import { isTransientKubeError } from './errors.ts';

export async function createObject<T extends KubernetesObject>(clients: Clients, obj: T): Promise<T> {
  return (await clients.objects.create(obj)) as T;
}

export function podIsReady(pod: V1Pod): boolean {
  return (
    pod.status?.phase === 'Running' &&
    (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

function describePodState(pod: V1Pod | undefined): string {
  if (!pod) return 'no pod seen yet';
  const conds = (pod.status?.conditions ?? [])
    .map((c) => `${c.type}=${c.status}${c.reason ? `(${c.reason})` : ''}`)
    .join(', ');
  return `pod ${pod.metadata?.name} phase ${pod.status?.phase ?? 'unknown'}${conds ? `, ${conds}` : ''}${pod.spec?.nodeName ? '' : ', not scheduled'}`;
}

/**
 * Watches a collection from `resourceVersion` until `accept` takes an object, and resolves with
 * it; the one waiting primitive of the harness (watch, never poll). The timeout error names the
 * operation and describes the last object seen.
 *
 * A watch can end before that: the API server closes watches after a while, and client-node aborts
 * one that has carried nothing for 30 s (a TimeoutError, "The operation was aborted due to
 * timeout": a pod that takes long to start on a loaded machine). Such an end, and any transient
 * error, resumes the watch until the caller's own timeout: without a resourceVersion, so that the
 * API server first replays the objects as they are now (nothing that happened meanwhile is missed).
 * Other errors (forbidden, not found) are answers and reject at once.
 */
export async function watchUntil<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  accept: (obj: T) => boolean,
  o: { operation: string; describeLast: (last: T | undefined) => string; timeoutSeconds: number; last?: T },
): Promise<T> {
  let last = o.last;
  const watch = new Watch(kc);
  let controller: AbortController | undefined;
  let settled = false;
  let resumes = 0;
  try {
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => finish(() => reject(new OperationTimeout(o.operation, o.describeLast(last), o.timeoutSeconds))),
        o.timeoutSeconds * 1000,
      );
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const ended = (err: unknown) => {
        if (settled) return;
        if (err && !isResumable(err)) {
          finish(() => reject(err instanceof Error ? err : new Error(String(err))));
          return;
        }
        // At most a few resumes a second, however quickly a broken connection ends.
        const delayMs = Math.min(1000, 50 * 2 ** Math.min(resumes++, 5));
        setTimeout(() => start(false), delayMs).unref();
      };
      const start = (fromVersion: boolean) => {
        if (settled) return;
        const { resourceVersion, ...rest } = query;
        watch
          .watch(
            path,
            { allowWatchBookmarks: true, ...rest, ...(fromVersion ? { resourceVersion } : {}) },
            (phase: string, obj: T) => {
              if (phase === 'BOOKMARK' || phase === 'DELETED' || phase === 'ERROR') return;
              last = obj;
              if (!obj.metadata?.deletionTimestamp && accept(obj)) finish(() => resolve(obj));
            },
            (err: unknown) => ended(err),
          )
          .then(
            (c) => {
              controller = c;
              if (settled) c.abort();
            },
            (err: unknown) => ended(err),
          );
      };
      start(true);
    });
  } finally {
    controller?.abort();
  }
}

/** A watch that ended this way is resumed: closed, aborted for inactivity, or a transient failure. */
function isResumable(err: unknown): boolean {
  const name = (err as { name?: unknown }).name;
  return name === 'TimeoutError' || name === 'AbortError' || isTransientKubeError(err);
}

/**
 * Waits (watching, not polling) for a pod of `labelSelector` in `namespace` that satisfies
 * `accept` and is not being deleted; resolves with it. The timeout error names `what` and
 * describes the last pod seen (`describeLast`, by default its name and uid).
 */
export async function waitForPod(
  clients: Clients,
  namespace: string,
  labelSelector: string,
  accept: (pod: V1Pod) => boolean,
  what: string,
  timeoutSeconds: number,
  describeLast: (last: V1Pod | undefined) => string = (last) =>
    last ? `last pod seen: ${last.metadata?.name} (uid ${last.metadata?.uid})` : 'no pod seen',
): Promise<V1Pod> {
  const list = await clients.core.listNamespacedPod({ namespace, labelSelector });
  const found = list.items.find((p) => !p.metadata?.deletionTimestamp && accept(p));
  if (found) return found;
  const first = list.items[0];
  return watchUntil<V1Pod>(
    clients.kc,
    `/api/v1/namespaces/${namespace}/pods`,
    { labelSelector, resourceVersion: list.metadata?.resourceVersion },
    accept,
    {
      operation: `waiting for ${what} (${labelSelector}) in ${namespace}`,
      describeLast,
      timeoutSeconds,
      ...(first ? { last: first } : {}),
    },
  );
}

/**
 * Waits until a pod matching the label selector is Running and Ready, watching the namespace.
 * Resolves with that pod. The timeout error says what the last pod looked like.
 */
export function waitForReadyPod(
  clients: Clients,
  namespace: string,
  labelSelector: string,
  timeoutSeconds: number,
): Promise<V1Pod> {
  return waitForPod(clients, namespace, labelSelector, podIsReady, 'a Ready pod', timeoutSeconds, describePodState);
}

/** Waits until an object is gone (404), watching its collection. */
export async function waitForDeletion(
  clients: Clients,
  path: string,
  name: string,
  exists: () => Promise<boolean>,
  timeoutSeconds: number,
): Promise<void> {
  if (!(await exists())) return;
  const watch = new Watch(clients.kc);
  let controller: AbortController | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new OperationTimeout(`deleting ${name}`, 'its deletion to finish', timeoutSeconds)),
        timeoutSeconds * 1000,
      );
      watch
        .watch(
          path,
          { fieldSelector: `metadata.name=${name}` },
          (phase: string) => {
            if (phase === 'DELETED') {
              clearTimeout(timer);
              resolve();
            }
          },
          () => undefined,
        )
        .then(async (c) => {
          controller = c;
          // The object may have gone between the first check and the watch starting.
          if (!(await exists())) {
            clearTimeout(timer);
            resolve();
          }
        }, reject);
    });
  } finally {
    controller?.abort();
  }
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs argv in a container through the exec subresource; resolves with output and exit code. */
export async function execInPod(
  clients: Clients,
  namespace: string,
  pod: string,
  container: string,
  argv: string[],
  timeoutSeconds = 60,
): Promise<ExecResult> {
  const exec = new Exec(clients.kc);
  const out = new PassThrough();
  const err = new PassThrough();
  const outChunks: Buffer[] = [];
  const errChunks: Buffer[] = [];
  out.on('data', (c: Buffer) => outChunks.push(c));
  err.on('data', (c: Buffer) => errChunks.push(c));
  const status = await new Promise<V1Status>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new OperationTimeout(`exec ${argv[0]} in ${namespace}/${pod}`, 'the command to finish', timeoutSeconds)),
      timeoutSeconds * 1000,
    );
    exec
      .exec(namespace, pod, container, argv, out, err, null, false, (s: V1Status) => {
        clearTimeout(timer);
        resolve(s);
      })
      .then(
        (ws) => {
          ws.on('error', (e: Error) => {
            clearTimeout(timer);
            reject(e);
          });
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
  });
  let exitCode = 0;
  if (status.status !== 'Success') {
    const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
    exitCode = cause?.message ? Number.parseInt(cause.message, 10) : 1;
    if (!cause) errChunks.push(Buffer.from(status.message ?? ''));
  }
  return {
    stdout: Buffer.concat(outChunks).toString('utf8'),
    stderr: Buffer.concat(errChunks).toString('utf8'),
    exitCode,
  };
}
