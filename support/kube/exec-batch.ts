/**
 * Several shell commands in one exec, run concurrently inside the container, with each one's exit
 * code and output kept apart: one round trip to the pod instead of one per command, and the
 * commands' start-up costs (the AWS CLI's is ~0.3 s of CPU) overlap. Only POSIX sh, mktemp and
 * cat are needed in the container.
 */
import { randomBytes } from 'node:crypto';

export interface BatchResult {
  exitCode: number;
  output: string;
}

const LABEL = /^[a-z0-9][a-z0-9-]*$/;

export interface Batch {
  /** The sh script running the commands in parallel and reporting them in order. */
  script: string;
  /** Splits what the script printed by label; a label missing from the output is absent. */
  parse(stdout: string): Map<string, BatchResult>;
}

/**
 * A batch of `commands` (label -> command line). Each result is announced by a marker line
 * carrying a random nonce, so a command's own output cannot pass for a marker.
 */
export function batch(commands: Record<string, string>, nonce = randomBytes(6).toString('hex')): Batch {
  const labels = Object.keys(commands);
  if (labels.length === 0) throw new Error('a batch needs at least one command');
  for (const l of labels) if (!LABEL.test(l)) throw new Error(`batch label ${JSON.stringify(l)} is not [a-z0-9-]`);
  const lines = ['d=$(mktemp -d) || exit 97'];
  for (const l of labels) lines.push(`( ${commands[l]} ) >"$d/${l}.out" 2>&1 </dev/null & echo $! >"$d/${l}.pid"`);
  // `wait <pid>` returns that child's status; collect each one's own.
  for (const l of labels) lines.push(`wait "$(cat "$d/${l}.pid")"; echo $? >"$d/${l}.rc"`);
  // The echo after each output puts the next marker at the start of a line, whatever the output ended with.
  for (const l of labels) lines.push(`echo "=== ${nonce} ${l} exit $(cat "$d/${l}.rc")"; cat "$d/${l}.out"; echo`);
  lines.push('rm -rf "$d"');
  return { script: lines.join('\n'), parse: (stdout) => parseBatchOutput(stdout, nonce) };
}

function parseBatchOutput(stdout: string, nonce: string): Map<string, BatchResult> {
  const results = new Map<string, BatchResult>();
  const marker = new RegExp(`^=== ${nonce} ([a-z0-9][a-z0-9-]*) exit (\\d+)$`, 'gm');
  const found = [...stdout.matchAll(marker)];
  found.forEach((m, i) => {
    const start = (m.index ?? 0) + m[0].length + 1;
    const end = i + 1 < found.length ? (found[i + 1]?.index ?? stdout.length) : stdout.length;
    results.set(m[1] as string, { exitCode: Number(m[2]), output: stdout.slice(start, end).replace(/\n+$/, '') });
  });
  return results;
}
