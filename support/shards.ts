/**
 * A sharded run (`npm run conformance -- --shard i/n`, cucumber's option): shard i of n runs every
 * n-th selected scenario, starting at the i-th, against a target of its own (its own run id, its
 * own set-up: whatever its scenarios need is provisioned on demand, as in any run). The shards of
 * one suite together run each selected scenario exactly once; their JUnit reports are named
 * "irsa-conformance shard i/n" and `npm run merge-junit` makes one report of them, refusing a
 * shard missing or twice (docs/at-scale.md).
 */
import { UsageError } from './errors.ts';

export interface Shard {
  index: number;
  total: number;
}

export const SUITE_NAME = 'irsa-conformance';

export function parseShard(s: string): Shard | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  return m ? { index: Number(m[1]), total: Number(m[2]) } : undefined;
}

/** The shard a run's --shard names, checked (cucumber checks only the form i/n); undefined when not sharded. */
export function requireShard(option: string | undefined): Shard | undefined {
  if (!option) return undefined;
  const shard = parseShard(option);
  if (!shard || shard.total < 1 || shard.index < 1 || shard.index > shard.total)
    throw new UsageError(
      `--shard ${option} names no shard: it is <index>/<total>, 1 <= index <= total`,
      'e.g. --shard 1/3, --shard 2/3 and --shard 3/3 for a suite in three parts',
    );
  return shard;
}

/** The JUnit suite name of a shard (the merge recognises the shards by it). */
export function shardSuiteName(shard: Shard, base = SUITE_NAME): string {
  return `${base} shard ${shard.index}/${shard.total}`;
}

/** The shard a JUnit suite name says it is, if any. */
export function shardOfSuiteName(name: string): Shard | undefined {
  const m = / shard (\d+\/\d+)$/.exec(name);
  return m ? parseShard(m[1] as string) : undefined;
}
