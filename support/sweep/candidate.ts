/**
 * What the sweep's finders hand to its decision (support/sweep/sweep.ts): a candidate, i.e. a
 * resource carrying the harness's run-id mark, with its run id and creation time; the filter that
 * keeps or skips it; and the result of a search (found, skipped with why, failed listings).
 */
import type { ResourceRef } from '../ledger.ts';

export interface SweepFilter {
  /** Only this run's resources. */
  runId?: string;
  /** Only resources created at least this long ago. */
  olderThanMs?: number;
  /** Reference time for olderThanMs (tests); default now. */
  now?: Date;
  /** Run ids to leave alone (runs in progress); ignored for the run named by runId. */
  protectedRunIds?: ReadonlySet<string>;
}

export interface Leftover {
  ref: ResourceRef;
  what: string;
  runId: string;
  /** ISO time the resource was created, when known. */
  createdAt?: string;
}

export interface FindResult {
  found: Leftover[];
  /** Marked resources left alone, with why (too young, run in progress, age unknown). */
  skipped: { what: string; why: string }[];
  /** Listings that failed (permissions, regions): the sweep is incomplete there. */
  problems: string[];
}

/** A candidate with its mark: kept or not by the filter. */
export interface Candidate {
  ref: ResourceRef;
  runId: string;
  created?: string;
  /** The resource's own creation time, when the created tag is missing. */
  fallbackCreated?: Date | string;
}

/** Runs `fn` over `items`, at most `limit` at a time; results in the order of `items`. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** `{ [key]: value }`, or nothing when the value is undefined (exactOptionalPropertyTypes). */
export function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
