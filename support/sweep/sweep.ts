/**
 * The sweep's decision and deletion: which marked resources the filter keeps (--run-id,
 * --older-than, runs in progress on this machine), in what order they go, and the deletion
 * itself through support/cleanup.ts (deleteWithRetries, as the ledger flush deletes), in reverse
 * dependency order: webhook configurations, namespaced objects, namespaces, roles (their policies
 * detached), users, policies, identity providers, buckets (emptied).
 */
import { describeAwsError } from '../aws/errors.ts';
import { deleteWithRetries, waitForNamespaceGone } from '../cleanup.ts';
import type { Clients } from '../clients.ts';
import { describeRef, type ResourceRef } from '../ledger.ts';
import type { TargetDescriptor } from '../targets/target.ts';
import { type Candidate, type FindResult, type Leftover, mapLimit, type SweepFilter } from './candidate.ts';
import { awsCandidates } from './find-aws.ts';
import { kubeCandidates } from './find-kube.ts';

export interface SweepReport {
  deleted: string[];
  failed: { what: string; error: string }[];
}

/** Deletion order: what depends on something goes before it. */
const ORDER: Record<ResourceRef['kind'], number> = {
  'k8s-patch-revert': 0,
  'k8s-cluster-object': 1,
  'k8s-namespaced-object': 2,
  'k8s-namespace': 3,
  'iam-role': 4,
  'iam-user': 5,
  'iam-policy': 6,
  'iam-oidc-provider': 7,
  's3-bucket': 8,
};

function decide(c: Candidate, filter: SweepFilter, result: FindResult): void {
  const what = describeRef(c.ref);
  if (filter.runId !== undefined && c.runId !== filter.runId) return;
  if (filter.runId === undefined && filter.protectedRunIds?.has(c.runId)) {
    result.skipped.push({
      what,
      why: `run ${c.runId} has a run directory on this machine (in progress?); name it with --run-id to delete`,
    });
    return;
  }
  const createdRaw = c.created && !Number.isNaN(Date.parse(c.created)) ? c.created : c.fallbackCreated;
  const createdAt = createdRaw === undefined ? undefined : new Date(createdRaw);
  const valid = createdAt !== undefined && !Number.isNaN(createdAt.getTime());
  if (filter.olderThanMs !== undefined) {
    if (!valid) {
      result.skipped.push({ what, why: 'its age is unknown (no created tag or creation time)' });
      return;
    }
    const age = (filter.now ?? new Date()).getTime() - createdAt.getTime();
    if (age < filter.olderThanMs) {
      result.skipped.push({ what, why: `created ${Math.round(age / 60000)} min ago` });
      return;
    }
  }
  result.found.push({ ref: c.ref, what, runId: c.runId, ...(valid ? { createdAt: createdAt.toISOString() } : {}) });
}

/** Everything on the target that carries the harness's mark and passes the filter, in deletion order. */
export async function findLeftovers(
  c: Clients,
  target: TargetDescriptor,
  filter: SweepFilter = {},
): Promise<FindResult> {
  const result: FindResult = { found: [], skipped: [], problems: [] };
  const [aws, kube] = await Promise.all([awsCandidates(c, target, result), kubeCandidates(c, filter, result)]);
  for (const cand of [...kube, ...aws]) {
    if (!cand.runId) continue;
    decide(cand, filter, result);
  }
  result.found.sort(
    (a, b) => ORDER[a.ref.kind] - ORDER[b.ref.kind] || (b.createdAt ?? '').localeCompare(a.createdAt ?? ''),
  );
  return result;
}

/**
 * Deletes leftovers kind by kind in dependency order (findLeftovers' order), each with bounded
 * retries; resources of one kind are independent and go a few at a time.
 */
export async function deleteLeftovers(c: Clients, leftovers: Leftover[], timeoutSeconds: number): Promise<SweepReport> {
  const report: SweepReport = { deleted: [], failed: [] };
  const ranks = [...new Set(leftovers.map((l) => ORDER[l.ref.kind]))].sort((a, b) => a - b);
  for (const rank of ranks) {
    await mapLimit(
      leftovers.filter((l) => ORDER[l.ref.kind] === rank),
      4,
      async (l) => {
        try {
          await deleteWithRetries(c, l.ref, `sweep of ${l.what}`, timeoutSeconds);
          report.deleted.push(l.what);
        } catch (e) {
          report.failed.push({ what: l.what, error: describeAwsError(e) });
        }
      },
    );
  }
  // Deleting a namespace only asks for it: confirm that the namespace controller finished.
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (const l of leftovers) {
    if (l.ref.kind !== 'k8s-namespace' || !report.deleted.includes(l.what)) continue;
    const name = l.ref.name;
    try {
      await waitForNamespaceGone(c, name, Math.max(1, Math.round((deadline - Date.now()) / 1000)));
    } catch (e) {
      report.deleted.splice(report.deleted.indexOf(l.what), 1);
      report.failed.push({ what: l.what, error: (e as Error).message });
    }
  }
  return report;
}
