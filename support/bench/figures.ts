/**
 * The bench's figures: median with min and max of repeated measurements, percentiles, and a
 * process's peak resident memory (VmHWM from /proc).
 */
import { readFileSync } from 'node:fs';

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stat(values: number[]): Stat {
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
  return { median, min: v[0] ?? Number.NaN, max: v[v.length - 1] ?? Number.NaN, n: v.length };
}

export function percentile(values: number[], p: number): number {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)] ?? Number.NaN;
}

/** Peak resident memory (VmHWM) of a live process, in MiB. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
