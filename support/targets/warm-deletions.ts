/**
 * Namespace deletions handed over to a warm environment.
 *
 * kube-controller-manager's namespace controller waits a fixed 5 s before it starts on a deleted
 * namespace (namespaceDeletionGracePeriod, not configurable), so confirming that a run's
 * namespaces are gone costs every run at least 5 s after its last scenario. A run that owns its
 * target does not wait (the cluster goes with everything in it), and neither does a run on a warm
 * environment: it deletes the namespaces' workloads and pods itself, requests the namespaces'
 * deletion, checks that each one is terminating, and records them here. The next run on the
 * environment, and `npm run env -- status`, confirm they are gone and name any namespace still
 * there after the cleanup timeout; `npm run env -- down` removes the environment with them.
 * Runs on a cluster the harness does not own (live) still wait for the namespaces themselves.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Clients } from '../clients.ts';
import { LABEL_RUN_ID } from '../names.ts';

export interface PendingDeletion {
  runId: string;
  /** When the run requested the deletions (ISO 8601). */
  requestedAt: string;
  namespaces: string[];
}

export interface PendingCheck {
  /** Runs whose namespaces are all gone now (their records are removed). */
  confirmed: string[];
  /** Namespaces still there, younger than the cleanup timeout: the controller is on them. */
  terminating: PendingDeletion[];
  /** Namespaces still there after the cleanup timeout: something holds them (a finalizer). */
  stuck: (PendingDeletion & { ageSeconds: number })[];
}

/** The directory of pending records that belongs to a warm environment's state file. */
export function pendingDir(stateFile: string): string {
  return `${stateFile.replace(/\.json$/, '')}.pending-deletions`;
}

function recordFile(stateFile: string, runId: string): string {
  return path.join(pendingDir(stateFile), `${runId}.json`);
}

export function recordPendingDeletion(stateFile: string, p: PendingDeletion): void {
  mkdirSync(pendingDir(stateFile), { recursive: true, mode: 0o700 });
  writeFileSync(recordFile(stateFile, p.runId), JSON.stringify(p), { mode: 0o600 });
}

export function readPendingDeletions(stateFile: string): PendingDeletion[] {
  const dir = pendingDir(stateFile);
  if (!existsSync(dir)) return [];
  const out: PendingDeletion[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) {
    try {
      out.push(JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as PendingDeletion);
    } catch {
      // A record cut short by a crash: what it named is found by `npm run sweep` all the same.
      rmSync(path.join(dir, f), { force: true });
    }
  }
  return out;
}

export function clearPendingDeletions(stateFile: string): void {
  rmSync(pendingDir(stateFile), { recursive: true, force: true });
}

/**
 * The namespaces labelled with `runId` that are still there, and those of them whose deletion
 * was never requested (no deletionTimestamp): the run must report those as not deleted.
 */
export async function runNamespaces(c: Clients, runId: string): Promise<{ present: string[]; notDeleting: string[] }> {
  const items = (await c.core.listNamespace({ labelSelector: `${LABEL_RUN_ID}=${runId}` })).items;
  return {
    present: items.map((n) => n.metadata?.name as string),
    notDeleting: items.filter((n) => !n.metadata?.deletionTimestamp).map((n) => n.metadata?.name as string),
  };
}

/** One list call: which recorded namespaces are gone, still terminating, or stuck. */
export async function checkPendingDeletions(
  stateFile: string,
  c: Clients,
  cleanupSeconds: number,
  now: Date = new Date(),
): Promise<PendingCheck> {
  const records = readPendingDeletions(stateFile);
  const result: PendingCheck = { confirmed: [], terminating: [], stuck: [] };
  if (records.length === 0) return result;
  const present = new Set(
    (await c.core.listNamespace({ labelSelector: LABEL_RUN_ID })).items.map((n) => n.metadata?.name as string),
  );
  for (const r of records) {
    const left = r.namespaces.filter((n) => present.has(n));
    if (left.length === 0) {
      rmSync(recordFile(stateFile, r.runId), { force: true });
      result.confirmed.push(r.runId);
      continue;
    }
    const ageSeconds = Math.round((now.getTime() - Date.parse(r.requestedAt)) / 1000);
    if (ageSeconds > cleanupSeconds) result.stuck.push({ ...r, namespaces: left, ageSeconds });
    else result.terminating.push({ ...r, namespaces: left });
  }
  return result;
}

/** One line per stuck run, with the command that removes what it left. */
export function describeStuck(check: PendingCheck): string[] {
  return check.stuck.map(
    (s) =>
      `namespace(s) ${s.namespaces.join(', ')} of run ${s.runId} still there ${s.ageSeconds} s after their deletion was requested (a finalizer holds them?); remove them with \`npm run sweep -- --run-id ${s.runId}\``,
  );
}
