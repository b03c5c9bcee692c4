/**
 * Every command answers --help (and a bare invocation where it takes a verb) with its usage, exit
 * 0 and nothing done; --dry-run starts no target and writes nothing; bad arguments are exit 2 with
 * a one-line cause and the usage as hint (issue 15, item 7). Each case runs the command in this
 * process (test/support/in-process-cli.ts) with its own reports directory and TMPDIR, and checks
 * that neither holds anything afterwards and that docs/steps.md was not touched; the unit tier's
 * guard fails a case that would start a process, listen or connect. The same path through
 * `bash tools/irsa` and a process of its own: test/integration/cli-help.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../../support/paths.ts';
import { assertRefused } from '../support/bad-settings.ts';
import { irsaInProcess } from '../support/in-process-cli.ts';

describe('--help, bare invocations and --dry-run do nothing but answer', () => {
  let dir: string;
  const stepsDoc = path.join(repoRoot, 'docs', 'steps.md');
  let stepsDocMtime: number;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-cli-help-'));
    stepsDocMtime = statSync(stepsDoc).mtimeMs;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const irsa = (args: string[], extraEnv: Record<string, string> = {}) => irsaInProcess(dir, args, extraEnv);

  const helpCases: [string, string[], RegExp][] = [
    ['no command', [], /^usage: npm run <command>/],
    ['--help', ['--help'], /^usage: npm run <command>/],
    ['conformance --help', ['conformance', '--help'], /^usage: npm run conformance -- \[-p embedded\|docker\|live\]/],
    ['verify -h', ['verify', '-h'], /^usage: npm run verify -- /],
    ['test --help', ['test', '--help'], /^usage: npm test -- /],
    ['selftest --help', ['selftest', '--help'], /^usage: npm run selftest -- /],
    ['env (no verb)', ['env'], /^usage: npm run env -- up\|down\|status/],
    ['env --help', ['env', '--help'], /^usage: npm run env -- up\|down\|status/],
    ['sweep --help', ['sweep', '--help'], /^usage: npm run sweep -- /],
    ['bench --help', ['bench', '--help'], /^usage: npm run bench -- /],
    ['steps-doc --help', ['steps-doc', '--help'], /^usage: bash tools\/irsa steps-doc/],
  ];
  for (const [name, args, usage] of helpCases) {
    it(`${name}: the usage, exit 0, nothing written`, async () => {
      const r = await irsa(args);
      assert.equal(r.code, 0, `exit ${r.code}\n${r.stderr}`);
      assert.match(r.stdout, usage);
      assert.equal(r.stderr, '', 'nothing on stderr');
      assert.deepEqual(r.left, [], 'nothing written');
    });
  }

  it('--help of conformance names the profiles, the pass-through options and the rerun file', async () => {
    const r = await irsa(['conformance', '--help']);
    for (const want of ['--tags', '--name', '--parallel', '--dry-run', '--world-parameters', 'reports/@rerun.txt'])
      assert.ok(r.stdout.includes(want), `mentions ${want}`);
  });

  it('conformance --dry-run lists the selected scenarios and starts nothing', async () => {
    const r = await irsa(['conformance', '--dry-run', '--tags', '@infrastructure']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.length >= 7, r.stdout);
    // The @infrastructure scenarios: feature 01's, and those of other features tagged so (e.g. 09).
    for (const l of lines) assert.match(l, /^features\/\d\d-[a-z-]+\.feature:\d+ {2}\S/);
    assert.ok(lines.filter((l) => l.startsWith('features/01-infrastructure.feature:')).length >= 7, r.stdout);
    assert.match(r.stderr, /scenario\(s\) would run on the embedded target; --dry-run started nothing/);
    assert.doesNotMatch(r.stderr, /target ready|irsa-conformance run/);
    assert.deepEqual(r.left, [], 'no reports, no run directory');
  });

  it('verify --dry-run lists the verify-only checks without its settings or a cluster', async () => {
    const r = await irsa(['verify', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^features\/verify-only\.feature:\d+ /m);
    assert.doesNotMatch(r.stdout, /02-application/);
    assert.match(r.stderr, /on the live target \(verify-only mode\)/);
    assert.deepEqual(r.left, []);
  });

  it('test, bench and selftest --dry-run say what they would run', async () => {
    const t = await irsa(['test', '--dry-run', '--only', 'lint,unit']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^lint: biome check$/m);
    assert.match(t.stdout, /^unit: /m);
    assert.doesNotMatch(t.stdout, /^suite: /m);
    const b = await irsa(['bench', '--dry-run', '--skip', 'start,tenants']);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /bench would measure cold, warm, other-node with 3 run\(s\) each/);
    const s = await irsa(['selftest', '--dry-run', '--only', '01']);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^01-/);
    for (const x of [t, b, s]) assert.deepEqual(x.left, []);
  });

  const badCases: [string, string[], RegExp][] = [
    ['sweep --bogus', ['sweep', '--bogus'], /^irsa: unknown option --bogus$/],
    ['sweep --run-id without a value', ['sweep', '--run-id'], /^irsa: option --run-id needs a value$/],
    ['bench --runs x', ['bench', '--runs', 'x'], /^irsa: --runs "x" is not a whole number from 1 to 20$/],
    ['env sideways', ['env', 'sideways'], /^irsa: unknown env command "sideways"$/],
    ['test --only nope', ['test', '--only', 'nope'], /^irsa: --only "nope" names no stage/],
    ['selftest --jobs 0', ['selftest', '--jobs', '0'], /^irsa: --jobs 0: not a number of parallel runs/],
    ['steps-doc extra', ['steps-doc', 'extra'], /^irsa: unexpected argument "extra"$/],
    ['an unknown command', ['deploy'], /^irsa: unknown command "deploy"$/],
  ];
  for (const [name, args, cause] of badCases) {
    it(`${name}: exit 2, the cause and a hint`, async () => {
      const r = await irsa(args);
      assertRefused(r, cause);
      assert.deepEqual(r.left, []);
    });
  }

  it('docs/steps.md was not regenerated by any of it', () => {
    assert.equal(statSync(stepsDoc).mtimeMs, stepsDocMtime);
  });
});
