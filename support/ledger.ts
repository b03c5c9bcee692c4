/**
 * The ledger: every resource a run creates, with what is needed to delete it, appended to a
 * JSONL file in the run directory. It is a file, not memory, because cucumber's parallel workers
 * are threads and because the coordinator must be able to clean up after an interrupt whatever
 * the workers were doing. Deletion is in reverse order of creation within a scope.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

export type ResourceRef =
  | { kind: 's3-bucket'; bucket: string }
  | { kind: 'iam-role'; roleName: string }
  | { kind: 'iam-policy'; policyArn: string }
  | { kind: 'iam-oidc-provider'; arn: string }
  | { kind: 'iam-user'; userName: string }
  | { kind: 'k8s-namespace'; name: string }
  | { kind: 'k8s-cluster-object'; apiVersion: string; k8sKind: string; name: string }
  | { kind: 'k8s-namespaced-object'; apiVersion: string; k8sKind: string; namespace: string; name: string }
  | {
      kind: 'k8s-patch-revert';
      description: string;
      apiVersion: string;
      k8sKind: string;
      name: string;
      mergePatch: unknown;
    };

export interface LedgerEntry {
  id: string;
  scope: string;
  ref: ResourceRef;
  createdAt: string;
}

type Line =
  | { op: 'created'; entry: LedgerEntry }
  | { op: 'deleted'; id: string }
  | { op: 'kept'; id: string; reason: string };

export function describeRef(ref: ResourceRef): string {
  switch (ref.kind) {
    case 's3-bucket':
      return `S3 bucket ${ref.bucket}`;
    case 'iam-role':
      return `IAM role ${ref.roleName}`;
    case 'iam-policy':
      return `IAM policy ${ref.policyArn}`;
    case 'iam-oidc-provider':
      return `IAM OIDC provider ${ref.arn}`;
    case 'iam-user':
      return `IAM user ${ref.userName}`;
    case 'k8s-namespace':
      return `namespace ${ref.name}`;
    case 'k8s-cluster-object':
      return `${ref.k8sKind} ${ref.name}`;
    case 'k8s-namespaced-object':
      return `${ref.k8sKind} ${ref.namespace}/${ref.name}`;
    case 'k8s-patch-revert':
      return ref.description;
  }
}

export class Ledger {
  private seq = 0;
  constructor(
    readonly file: string,
    private readonly worker = `${process.pid}-${Math.random().toString(36).slice(2, 6)}`,
  ) {
    if (!existsSync(file)) writeFileSync(file, '', { mode: 0o600 });
  }

  private append(line: Line): void {
    appendFileSync(this.file, `${JSON.stringify(line)}\n`);
  }

  /** Records a resource right after it was created (or right before, for idempotent creates). */
  record(scope: string, ref: ResourceRef): LedgerEntry {
    const entry: LedgerEntry = { id: `${this.worker}-${++this.seq}`, scope, ref, createdAt: new Date().toISOString() };
    this.append({ op: 'created', entry });
    return entry;
  }

  markDeleted(id: string): void {
    this.append({ op: 'deleted', id });
  }

  markKept(id: string, reason: string): void {
    this.append({ op: 'kept', id, reason });
  }

  /** Live entries (created, not deleted, not kept), oldest first; optionally of one scope. */
  outstanding(scope?: string, includeKept = false): LedgerEntry[] {
    const { created, kept } = this.#read();
    return [...created.values()].filter(
      (e) => (scope === undefined || e.scope === scope) && (includeKept || !kept.has(e.id)),
    );
  }

  /** Entries kept on purpose (IRSA_KEEP_ON_FAILURE) and not deleted since, oldest first. */
  kept(): LedgerEntry[] {
    const { created, kept } = this.#read();
    return [...created.values()].filter((e) => kept.has(e.id));
  }

  #read(): { created: Map<string, LedgerEntry>; kept: Set<string> } {
    const created = new Map<string, LedgerEntry>();
    const kept = new Set<string>();
    if (!existsSync(this.file)) return { created, kept };
    for (const raw of readFileSync(this.file, 'utf8').split('\n')) {
      if (!raw) continue;
      const line = JSON.parse(raw) as Line;
      if (line.op === 'created') created.set(line.entry.id, line.entry);
      else if (line.op === 'deleted') created.delete(line.id);
      else kept.add(line.id);
    }
    return { created, kept };
  }
}
