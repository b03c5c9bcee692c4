/**
 * Start/stop benchmark of the embedded target (issue 2, "Speed"): starts and stops the environment
 * N times (default 5) and prints, per component, the median time from the start call until the
 * component was ready, and the median stop time. A benchmark, not a test: it asserts nothing.
 *
 *   node --import tsx support/targets/embedded/bench.ts [runs] [logsDir]
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../paths.ts';
import { startEmbeddedTarget } from './index.ts';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : Math.round(((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2);
}

const runs = Number(process.argv[2] ?? 5);
const logsDir = process.argv[3] ?? join(repoRoot, 'reports/logs/bench-embedded');
mkdirSync(logsDir, { recursive: true });
const samples = new Map<string, number[]>();
const add = (name: string, ms: number) => samples.set(name, [...(samples.get(name) ?? []), ms]);

for (let i = 1; i <= runs; i++) {
  const target = await startEmbeddedTarget({
    logsDir,
    discoveryBucket: 'irsa-bench',
    envId: `bench-${process.pid}-${i}`,
  });
  for (const [name, ms] of Object.entries(target.timings)) add(name, ms);
  const t = performance.now();
  await target.stop();
  add('stop', Math.round(performance.now() - t));
  process.stderr.write(
    `run ${i}/${runs}: ready ${target.timings.total} ms, stopped ${samples.get('stop')?.at(-1)} ms\n`,
  );
}

const rows = [...samples.entries()].sort(([a], [b]) =>
  a === 'total' || a === 'stop' ? 1 : b === 'total' || b === 'stop' ? -1 : 0,
);
const width = Math.max(...rows.map(([name]) => name.length));
process.stdout.write(`embedded target, median of ${runs} runs (ms since start; stop: ms to stop everything)\n`);
for (const [name, values] of rows) {
  process.stdout.write(`  ${name.padEnd(width)}  ${String(median(values)).padStart(6)}   [${values.join(', ')}]\n`);
}
