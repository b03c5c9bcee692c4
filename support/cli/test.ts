/**
 * `npm test`: everything the project checks, in order, each stage streamed to the terminal and
 * summarised at the end:
 *   lint (biome), types (tsc), step catalogue current (docs/steps.md), the unit tests
 *   (test/unit: no child process, no listener, no connection, all in one process), the integration tests
 *   (test/integration: real components, each file in its own process, in three batches by how
 *   many may run at once), the conformance suite on the embedded target with a real node
 *   (IRSA_KUBE_NODE=kubelet; on kwok, saying why, where a real node cannot run), the self-test.
 * The closing line counts what ran: "total: N passed, N failed, N skipped".
 * `npm test -- --only unit,suite` runs a subset (names: lint, types, steps-doc, unit, integration,
 * suite, selftest); `npm run test:unit` is `--only unit`; `--dry-run` lists the stages; `--help` says so.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { ParseArgsOptionsConfig } from 'node:util';
import { UsageError } from '../errors.ts';
import { repoRoot } from '../paths.ts';
import { ensureEmbeddedSetup } from '../targets/embedded/setup.ts';
import { type CommandSpec, parseCommand } from './args.ts';

interface Stage {
  name: string;
  describe: string;
  /** Run one after another; their counts add up (the integration tier runs three batches). */
  commands: string[][];
  env?: Record<string, string>;
  /** How the stage prints its counts: node's test runner (ℹ pass N), or "N passed, N failed[, N skipped]". */
  counts: CountFormat;
}

export type CountFormat = 'node' | 'plain';

interface Outcome {
  stage: Stage;
  exitCode: number;
  seconds: number;
  passed: number;
  failed: number;
  skipped: number;
  failures: FailedTest[];
}

export interface FailedTest {
  /** Where the test is declared (file:line), as node's runner prints it. */
  where: string;
  name: string;
  /** The first lines of its error, without the stack. */
  cause: string[];
}

const nodeBin = process.execPath;

/** All unit test files in one process (no tsx start per file); named as this Node spells it. */
const inOneProcess = process.allowedNodeEnvironmentFlags.has('--test-isolation')
  ? '--test-isolation=none'
  : '--experimental-test-isolation=none';

/**
 * Integration files that start no target, kill nothing and bound nothing tightly in time: fakes on
 * loopback, moto alone, `tools/irsa` answering --help or refusing bad input, each with its own
 * TMPDIR and reports directory. They run several at once; then IN_PAIRS two at a time; every other
 * integration file (it runs a real node, kills components, or times a run or a stop) runs alone,
 * last. A new file runs alone until it is listed. (docker-emulator is not: its moto
 * must stop within 1.5 s of SIGTERM, which a machine running two files at once missed.)
 */
export const BESIDE_OTHERS = new Set([
  'aws-cli-forkserver',
  'cli-help',
  'docker-cli',
  'exec-batch',
  'kube-watch',
  'live-detect',
  'live-guard',
  'live-issuer',
  'live-managed-issuer',
  'live-verify-only',
  'live-webhook-deploy',
  'moto-launcher',
  'moto-web-identity',
  'private-dirs',
  'proxy',
  'setup-levels',
  'setup-progress',
  'sonobuoy-handover',
  'trust-policy-differential',
  'world-parameters',
]);

/**
 * Integration files that start their own embedded target (or build the image) in their own TMPDIR
 * and ports, and neither kill components, nor run a real node, nor bound a run or a stop tightly in
 * time: two of them run at once, as the self-test runs two faults on two environments.
 */
export const IN_PAIRS = new Set([
  'bad-input',
  'docker-capability-skip',
  'image',
  'live-embedded',
  'partition-run',
  'redaction-leak',
  'reports',
  'selection',
  'shards',
  'sweep',
  'warm-deletions',
]);

const named = (set: Set<string>) => (file: string) => set.has(path.basename(file, '.test.ts'));
const alone = (file: string) => !named(BESIDE_OTHERS)(file) && !named(IN_PAIRS)(file);

export const testFiles = (tier: string) =>
  readdirSync(path.join(repoRoot, 'test', tier))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => path.join('test', tier, f));

/**
 * The suite runs once on a real node, so that it cannot rot; where one cannot run (not root, no
 * cgroup v1, no overlayfs) on kwok, and the stage says why.
 */
async function suiteNode(): Promise<{ env: Record<string, string>; describe: string }> {
  const { preflightRealNode } = await import('../targets/embedded/real-node.ts');
  try {
    preflightRealNode();
    return { env: { IRSA_KUBE_NODE: 'kubelet' }, describe: 'with a real node (IRSA_KUBE_NODE=kubelet)' };
  } catch (e) {
    return { env: { IRSA_KUBE_NODE: 'kwok' }, describe: `on kwok: no real node here (${(e as Error).message})` };
  }
}

async function stages(): Promise<Stage[]> {
  const suiteOn = await suiteNode();
  const nodeTest = [nodeBin, '--import', 'tsx', '--test', '--test-reporter=spec'];
  return [
    {
      name: 'lint',
      describe: 'biome check',
      commands: [[nodeBin, 'node_modules/@biomejs/biome/bin/biome', 'check', '.']],
      counts: 'plain',
    },
    {
      name: 'types',
      describe: 'tsc --noEmit (strict)',
      commands: [[nodeBin, 'node_modules/typescript/bin/tsc', '-p', '.']],
      counts: 'plain',
    },
    {
      name: 'steps-doc',
      describe: 'docs/steps.md matches the step definitions',
      commands: [[nodeBin, '--import', 'tsx', 'support/cli/main.ts', 'steps-doc', '--check']],
      counts: 'plain',
    },
    {
      name: 'unit',
      describe: 'unit tests: test/unit, in one process (node --test)',
      commands: [
        [
          ...nodeTest,
          // Makes starting a process, listening or connecting fail with the rule's name.
          '--import=./test/support/unit-guard.ts',
          inOneProcess,
          '--test-timeout=120000',
          ...testFiles('unit'),
        ],
      ],
      counts: 'node',
    },
    {
      name: 'integration',
      describe:
        'integration tests: test/integration, real components (node --test: those that start no target several at once, then two at a time, then one)',
      commands: (
        [
          [Math.max(2, availableParallelism()), named(BESIDE_OTHERS)],
          [2, named(IN_PAIRS)],
          [1, alone],
        ] as const
      ).map(([n, which]) => [
        ...nodeTest,
        `--test-concurrency=${n}`,
        '--test-timeout=900000',
        ...testFiles('integration').filter(which),
      ]),
      counts: 'node',
    },
    {
      name: 'suite',
      describe: `conformance suite on the embedded target ${suiteOn.describe}`,
      commands: [[nodeBin, '--import', 'tsx', 'support/cli/main.ts', 'conformance']],
      env: suiteOn.env,
      counts: 'plain',
    },
    {
      name: 'selftest',
      describe: 'self-test: the suite against the fault catalogue',
      commands: [[nodeBin, '--import', 'tsx', 'support/cli/main.ts', 'selftest']],
      counts: 'plain',
    },
  ];
}

/**
 * Reads the counts a stage printed in its own format. Node's runner prints its tally (ℹ pass N)
 * and then, on failure, the failing tests again with whatever they printed, so only its tally
 * counts. A plain stage's last "N passed, N failed[, N skipped]" is its own (integration tests
 * print their children's first).
 */
export function parseCounts(
  output: string,
  format: CountFormat,
): { passed: number; failed: number; skipped: number } | undefined {
  if (format === 'node') {
    const last = (name: string) => [...output.matchAll(new RegExp(`^(?:ℹ|#) ${name} (\\d+)$`, 'gm'))].pop()?.[1];
    const [pass, fail, skip] = [last('pass'), last('fail'), last('skipped')];
    if (pass === undefined && fail === undefined) return undefined;
    return { passed: Number(pass ?? 0), failed: Number(fail ?? 0), skipped: Number(skip ?? 0) };
  }
  const plain = [...output.matchAll(/(\d+) passed, (\d+) failed(?:, (\d+) skipped)?/g)].pop();
  if (plain) return { passed: Number(plain[1]), failed: Number(plain[2]), skipped: Number(plain[3] ?? 0) };
  return undefined;
}

/**
 * The failing tests node's spec reporter lists after its tally ("✖ failing tests:"), each with
 * the first lines of its error: the closing summary repeats them, so that the end of a long log
 * (all a CI page may show) says what failed and why.
 */
export function failingTests(output: string, maxLines = 6, maxWidth = 240): FailedTest[] {
  const at = output.lastIndexOf('\n✖ failing tests:');
  if (at < 0) return [];
  const out: FailedTest[] = [];
  let current: FailedTest | undefined;
  let inStack = false;
  for (const line of output.slice(at).split('\n').slice(2)) {
    const where = /^test at (.+)$/.exec(line);
    if (where) {
      current = { where: where[1] as string, name: '', cause: [] };
      out.push(current);
      inStack = false;
      continue;
    }
    if (!current) continue;
    const name = /^✖ (.*?)(?: \([\d.]+m?s\))?$/.exec(line);
    if (!current.name && name) {
      current.name = name[1] as string;
      continue;
    }
    const text = line.replace(/^ {2}/, '');
    if (/^\s+at /.test(text) || /^\s*\{$/.test(text) || text.endsWith(' {')) inStack = true;
    if (inStack || !text.trim() || current.cause.length >= maxLines) continue;
    current.cause.push(text.length > maxWidth ? `${text.slice(0, maxWidth - 1)}…` : text);
  }
  return out;
}

/** One command of a stage, streamed; its exit code and everything it printed. */
function runCommand(
  argv: string[],
  env: Record<string, string> | undefined,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd: repoRoot,
      env: { ...process.env, ...env, FORCE_COLOR: '0' },
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
      resolve({ code: code ?? (signal ? 128 : 1), output });
    });
  });
}

async function runStage(stage: Stage): Promise<Outcome> {
  const started = Date.now();
  process.stderr.write(`\n━━ ${stage.name}: ${stage.describe}\n`);
  const outcome: Outcome = { stage, exitCode: 0, seconds: 0, passed: 0, failed: 0, skipped: 0, failures: [] };
  for (const argv of stage.commands) {
    const { code, output } = await runCommand(argv, stage.env);
    const counts =
      parseCounts(output, stage.counts) ??
      (code === 0 ? { passed: 1, failed: 0, skipped: 0 } : { passed: 0, failed: 1, skipped: 0 });
    // A command that exits non-zero failed, whatever it counted.
    if (code !== 0 && counts.failed === 0) counts.failed = 1;
    if (outcome.exitCode === 0) outcome.exitCode = code;
    outcome.passed += counts.passed;
    outcome.failed += counts.failed;
    outcome.skipped += counts.skipped;
    if (stage.counts === 'node') outcome.failures.push(...failingTests(output));
  }
  outcome.seconds = (Date.now() - started) / 1000;
  return outcome;
}

export const TEST_COMMAND = {
  command: 'npm test --',
  synopsis: '[--only STAGE[,STAGE]] [--dry-run]',
  description: `
Everything the project checks, in order, each stage streamed and summarised at the end:
lint, types, steps-doc, unit, integration, suite, selftest (12 minutes measured from a fresh
clone on a 2-core machine with nothing else running, longer when it is busier; most of it
integration and selftest; unit alone, npm run test:unit: under 30 s).

  --only STAGES   run only these stages (comma-separated names from the list above)
  --dry-run       list the stages and their commands; run nothing

Exit codes: 0 every stage passed, 1 a stage failed, 2 bad input.`,
  options: { only: { type: 'string' }, 'dry-run': { type: 'boolean' } },
} satisfies CommandSpec<ParseArgsOptionsConfig>;

export async function runTests(argv: string[]): Promise<number> {
  const parsed = parseCommand(TEST_COMMAND, argv);
  if (!parsed) return 0;
  const all = await stages();
  const only = parsed.values.only === undefined ? undefined : new Set(parsed.values.only.split(',').filter(Boolean));
  const unknown = [...(only ?? [])].filter((n) => !all.some((s) => s.name === n));
  if (only && (only.size === 0 || unknown.length > 0))
    throw new UsageError(
      `--only ${JSON.stringify(parsed.values.only)} names no stage${unknown.length ? ` (unknown: ${unknown.join(', ')})` : ''}`,
      `stages: ${all.map((s) => s.name).join(', ')}`,
    );
  const selected = all.filter((s) => !only || only.has(s.name));
  if (parsed.values['dry-run']) {
    for (const s of selected)
      process.stdout.write(`${s.name}: ${s.describe}\n${s.commands.map((c) => `    ${c.join(' ')}\n`).join('')}`);
    return 0;
  }
  // The tests, the suite and the self-test start embedded targets: their set-up first, once.
  if (selected.some((s) => ['integration', 'suite', 'selftest'].includes(s.name))) await ensureEmbeddedSetup();
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
  const failures = outcomes.flatMap((o) => o.failures.map((f) => ({ stage: o.stage.name, ...f })));
  if (failures.length) {
    process.stderr.write('\n━━ failing tests\n');
    for (const f of failures) {
      process.stderr.write(`${f.stage}: ${f.name} (${f.where})\n`);
      for (const l of f.cause) process.stderr.write(`    ${l}\n`);
    }
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
