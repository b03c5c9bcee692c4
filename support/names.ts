/**
 * Run ids, environment ids, resource names and the tags/labels that mark what the harness created.
 * Everything a run creates carries RUN_ID_TAG = <runId>; sweep deletes only what carries it.
 */
import { randomBytes } from 'node:crypto';

export const TAG_RUN_ID = 'irsa-conformance:run-id';
export const TAG_CREATED = 'irsa-conformance:created';
export const LABEL_RUN_ID = 'irsa-conformance.io/run-id';
export const LABEL_MANAGED = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'irsa-conformance';

/** Short, lowercase, DNS- and bucket-safe: "ic" + 6 base36 chars. */
export function newRunId(): string {
  const n = randomBytes(5).readUIntBE(0, 5);
  return `ic${n.toString(36).padStart(8, '0').slice(-6)}`;
}

/**
 * The id of a target environment the harness starts (an embedded or docker target, a warm
 * environment): "env" + 6 base36 chars, distinct from run ids (a warm environment outlives runs).
 */
export function newEnvId(): string {
  return newRunId().replace(/^ic/, 'env');
}

/** The S3 bucket an environment the harness started publishes its discovery documents in. */
export function discoveryBucketFor(envId: string): string {
  return `irsa-oidc-${envId}`;
}

/** A per-scenario suffix, unique inside a run even across parallel workers. */
export function newScopeId(): string {
  return randomBytes(3).toString('hex');
}

/** `<base>-<runId>[-<scope>]`, lowercased, cut to `max` characters (S3 buckets: 63). */
export function resourceName(base: string, runId: string, scope?: string, max = 63): string {
  const name = [base, runId, scope]
    .filter(Boolean)
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-');
  if (name.length <= max) return name;
  // Keep the unique tail; shorten the readable base.
  const tail = [runId, scope].filter(Boolean).join('-');
  return `${base.slice(0, max - tail.length - 1)}-${tail}`;
}

export function awsTags(runId: string): { Key: string; Value: string }[] {
  return [
    { Key: TAG_RUN_ID, Value: runId },
    { Key: TAG_CREATED, Value: new Date().toISOString() },
  ];
}

export function kubeLabels(runId: string): Record<string, string> {
  return { [LABEL_RUN_ID]: runId, [LABEL_MANAGED]: MANAGED_BY };
}
