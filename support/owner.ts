/**
 * Who a run directory or an environment's work directory belongs to: the harness process that
 * made it, recorded as pid and start time in `owner.json`. When that process is gone (killed
 * outright: no exit handler ran), what it left is not "in progress" any more, and `npm run sweep`
 * removes it (support/local-leftovers.ts).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type ProcessIdentity, processIdentity } from './process.ts';

export const OWNER_FILE = 'owner.json';

export interface OwnerRecord extends ProcessIdentity {
  /** What the directory is: a run's (id = run id) or an environment's work directory (id = env id). */
  kind: 'run' | 'environment';
  id: string;
  /**
   * A warm environment outlives the process that started it (`npm run env -- up`): it is left
   * while its components run, whoever started it.
   */
  keepAlive?: boolean;
  createdAt: string;
}

export function writeOwner(dir: string, record: Pick<OwnerRecord, 'kind' | 'id' | 'keepAlive'>): void {
  const owner: OwnerRecord = { ...processIdentity(), ...record, createdAt: new Date().toISOString() };
  writeFileSync(path.join(dir, OWNER_FILE), `${JSON.stringify(owner)}\n`, { mode: 0o600 });
}

/** The directory's owner record, or undefined when it has none (or an unreadable one). */
export function readOwner(dir: string): OwnerRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as Partial<OwnerRecord>;
    if (typeof r.pid !== 'number' || typeof r.start !== 'string' || typeof r.id !== 'string') return undefined;
    if (r.kind !== 'run' && r.kind !== 'environment') return undefined;
    return r as OwnerRecord;
  } catch {
    return undefined;
  }
}
