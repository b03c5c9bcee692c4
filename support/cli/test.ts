/**
 * `npm test`: everything the project checks, in order, each stage streamed to the terminal and
 * summarised at the end:
 *   lint (biome), types (tsc), step catalogue current (docs/steps.md), unit and integration tests
 *   (node --test test/*.test.ts), the conformance suite on the embedded target, the self-test.
 * The closing line counts what ran: "total: N passed, N failed, N skipped".
 * `npm test -- --only unit,suite` runs a subset (names: lint, types, steps-doc, unit, suite, selftest).
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../paths.ts';

interface Stage {
  name: string;
  describe: string;
  argv: string[];
  env?: Record<string, string>;
}

interface Outcome {
  stage: Stage;
  exitCode: number;
  seconds: number;
  passed: number;
  failed: number;
  skipped: number;
}

const node = process.execPath;

function stages(): Stage[] {
  const tests = readdirSync(path.join(repoRoot, 'test'))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => path.join('test', f));
  return [
    { name: 'lint', describe: 'biome check', argv: [node, 'node_modules/@biomejs/biome/bin/biome', 'check', '.'] },
    { name: 'types', describe: 'tsc --noEmit (strict)', argv: [node, 'node_modules/typescript/bin/tsc', '-p', '.'] },
    {
      name: 'steps-doc',
      describe: 'docs/steps.md matches the step definitions',
      argv: [node, '--import', 'tsx', 'support/cli/main.ts', 'steps-doc', '--check'],
    },
    {
      name: 'unit',
      describe: 'unit and integration tests (node --test)',
      argv: [node, '--import', 'tsx', '--test', '--test-reporter=spec', '--test-timeout=900000', ...tests],
    },
    {
      name: 'suite',
      describe: 'conformance suite on the embedded target',
      argv: [node, '--import', 'tsx', 'support/cli/main.ts', 'conformance'],
    },
    {
      name: 'selftest',
      describe: 'self-test: the suite against the fault catalogue',
      argv: [node, '--import', 'tsx', 'support/cli/main.ts', 'selftest'],
    },
  ];
}

/** Reads the counts a stage printed: node's test runner (ℹ pass N) or our "N passed, N failed[, N skipped]". */
export function parseCounts(output: string): { passed: number; failed: number; skipped: number } | undefined {
  // The last summary a stage printed is its own (integration tests print their children's first).
  const plain = [...output.matchAll(/(\d+) passed, (\d+) failed(?:, (\d+) skipped)?/g)].pop();
  const pass = [...output.matchAll(/^(?:ℹ|#) pass (\d+)$/gm)].pop();
  const fail = [...output.matchAll(/^(?:ℹ|#) fail (\d+)$/gm)].pop();
  const skip = [...output.matchAll(/^(?:ℹ|#) skipped (\d+)$/gm)].pop();
  const nodeAt = Math.max(pass?.index ?? -1, fail?.index ?? -1);
  if (nodeAt >= 0 && nodeAt > (plain?.index ?? -1)) {
    return { passed: Number(pass?.[1] ?? 0), failed: Number(fail?.[1] ?? 0), skipped: Number(skip?.[1] ?? 0) };
  }
  if (plain) return { passed: Number(plain[1]), failed: Number(plain[2]), skipped: Number(plain[3] ?? 0) };
  return undefined;
}

function runStage(stage: Stage): Promise<Outcome> {
  const started = Date.now();
  process.stderr.write(`\n━━ ${stage.name}: ${stage.describe}\n`);
  return new Promise((resolve) => {
    const child = spawn(stage.argv[0] as string, stage.argv.slice(1), {
      cwd: repoRoot,
      env: { ...process.env, ...stage.env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
      process.stdout.write(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
      process.stderr.write(c);
    });
    const forward = (s: NodeJS.Signals) => child.kill(s);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      const exitCode = code ?? (signal ? 128 : 1);
      const counts =
        parseCounts(output) ??
        (exitCode === 0 ? { passed: 1, failed: 0, skipped: 0 } : { passed: 0, failed: 1, skipped: 0 });
      // A stage that exits non-zero failed, whatever it counted.
      if (exitCode !== 0 && counts.failed === 0) counts.failed = 1;
      resolve({ stage, exitCode, seconds: (Date.now() - started) / 1000, ...counts });
    });
  });
}

export async function runTests(argv: string[]): Promise<number> {
  const onlyIdx = argv.indexOf('--only');
  const only = onlyIdx >= 0 ? new Set((argv[onlyIdx + 1] ?? '').split(',')) : undefined;
  const selected = stages().filter((s) => !only || only.has(s.name));
  const outcomes: Outcome[] = [];
  for (const stage of selected) outcomes.push(await runStage(stage));
  const width = Math.max(...outcomes.map((o) => o.stage.name.length));
  process.stderr.write('\n━━ summary\n');
  for (const o of outcomes) {
    const verdict = o.exitCode === 0 ? 'ok  ' : 'FAIL';
    process.stderr.write(
      `${verdict} ${o.stage.name.padEnd(width)}  ${o.passed} passed, ${o.failed} failed, ${o.skipped} skipped  (${o.seconds.toFixed(1)} s)\n`,
    );
  }
  const total = outcomes.reduce((a, o) => ({ p: a.p + o.passed, f: a.f + o.failed, s: a.s + o.skipped }), {
    p: 0,
    f: 0,
    s: 0,
  });
  const failedStages = outcomes.filter((o) => o.exitCode !== 0).length;
  process.stdout.write(`total: ${total.p} passed, ${total.f} failed, ${total.s} skipped\n`);
  return failedStages === 0 ? 0 : 1;
}
