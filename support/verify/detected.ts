/**
 * The values a target detected on the cluster (the webhook's dialect, its image, the proxies in
 * use), one line each with where it came from: for the live target's start log and the verify
 * report.
 */
import type { DetectedValue } from '../targets/target.ts';

export function formatDetected(values: DetectedValue[]): string {
  const width = Math.max(...values.map((v) => v.name.length));
  return values.map((v) => `  ${v.name.padEnd(width)}  ${v.value}  (${v.source})`).join('\n');
}
