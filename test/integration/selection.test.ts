/**
 * A selection that selects nothing is an error, not a pass (issue 15, item 2): a feature path that
 * does not exist, --tags or --name that match nothing, a missing or empty rerun file, and a live
 * mode whose scenarios the selection excludes are exit 2 with the cause, before any target starts.
 * The README's rerun recipe works as written: after a run with a failed scenario,
 * `npm run conformance -- reports/@rerun.txt` runs exactly the failed scenarios again.
 * The cases that need no child process or listener are test/unit/selection.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readMessages, scenarioOutcomes } from '../../support/outcomes.ts';
import { repoRoot } from '../../support/paths.ts';
import { runBash } from '../support/bash.ts';
import { binariesMissing } from '../support/binaries.ts';
import {
  disposeRuns,
  type IrsaRun,
  startIrsa,
  startWarmEnvironment,
  type WarmEnvironment,
} from '../support/reliability-support.ts';

describe('feature paths and rerun files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-selection-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const refusals: [string, string[], Record<string, string>, RegExp][] = [
    [
      'a feature path that does not exist',
      ['features/nope.feature'],
      {},
      /^irsa: feature path features\/nope\.feature does not exist$/,
    ],
    [
      '--tags that match nothing',
      ['--tags', '@no-such-tag'],
      {},
      /^irsa: the selection runs no scenario: tags .*@no-such-tag.* match nothing$/,
    ],
    [
      '--name that matches nothing',
      ['--name', 'no scenario is called this'],
      {},
      /^irsa: the selection runs no scenario: .*--name no scenario is called this match nothing$/,
    ],
    [
      'verify-only with tags of provision scenarios only',
      ['--tags', '@tenant-matrix'],
      { IRSA_TARGET: 'live', IRSA_LIVE_MODE: 'verify-only' },
      /^irsa: the selection runs no scenario: tags .* \(the live target's verify-only mode selects by tags too\) match nothing$/,
    ],
  ];
  for (const [name, argv, env, cause] of refusals) {
    it(`${name}: exit 2 before any target starts`, async () => {
      const reports = mkdtempSync(path.join(dir, 'reports-'));
      const r = await runBash(['tools/irsa', 'conformance', ...argv], {
        ...process.env,
        IRSA_REPORTS_DIR: reports,
        IRSA_ATTACH: '',
        IRSA_TARGET: '',
        ...env,
      });
      assert.equal(r.code, 2, `exit ${r.code}\n${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.match(lines.at(-2) ?? '', cause, r.stderr);
      assert.match(lines.at(-1) ?? '', /^hint: /);
      assert.doesNotMatch(r.stderr, /irsa-conformance run |target ready/, 'no target was started');
    });
  }

  it('an empty rerun file given as the README says: exit 2, not a green run of nothing', async () => {
    const reports = mkdtempSync(path.join(dir, 'reports-'));
    writeFileSync(path.join(reports, '@rerun.txt'), '');
    const r = await runBash(['tools/irsa', 'conformance', path.join(reports, '@rerun.txt')], {
      ...process.env,
      IRSA_REPORTS_DIR: reports,
      IRSA_ATTACH: '',
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^irsa: rerun file .*@rerun\.txt lists no scenario/m);
  });
});

const missing = binariesMissing();

describe('the rerun recipe: a failing run, then its rerun', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 600_000,
}, () => {
  let dir: string;
  let warm: WarmEnvironment;
  const runs: IrsaRun[] = [];
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-rerun-'));
    warm = await startWarmEnvironment(dir);
  });
  after(async () => disposeRuns(runs, warm, dir));

  it('runs exactly the scenarios that failed', async () => {
    // Fault 01 lets the role write anywhere: "Writing to another bucket is denied" fails, the
    // other selected scenarios pass.
    const env = {
      IRSA_ATTACH: warm.statePath,
      IRSA_SETUP: path.join(repoRoot, 'fixtures/faults/01-permission-put-anywhere'),
    };
    const first = startIrsa(
      [
        'conformance',
        '--name',
        'discovery documents are public|another bucket|assumes the role and uses the app bucket',
      ],
      env,
    );
    runs.push(first);
    const r1 = await first.exited;
    assert.equal(r1.code, 1, r1.stderr);
    const outcomes = scenarioOutcomes(readMessages(path.join(first.reportsDir, 'cucumber.ndjson')));
    const failed = outcomes.filter((o) => o.status === 'FAILED').map((o) => o.name);
    const passed = outcomes.filter((o) => o.status === 'PASSED').map((o) => o.name);
    assert.ok(failed.includes('Writing to another bucket is denied'), `failed: ${failed.join(', ')}`);
    assert.ok(passed.length > 0, 'some scenarios passed');
    const rerunFile = path.join(first.reportsDir, '@rerun.txt');
    assert.match(readFileSync(rerunFile, 'utf8'), /^features\/02-application\.feature:\d+\n$/);
    assert.match(r1.stderr, /Rerun the failed scenarios: npm run conformance -- .*@rerun\.txt/);

    const second = startIrsa(['conformance', rerunFile], env);
    runs.push(second);
    const r2 = await second.exited;
    assert.equal(r2.code, 1, r2.stderr);
    const again = scenarioOutcomes(readMessages(path.join(second.reportsDir, 'cucumber.ndjson')));
    assert.deepEqual(again.map((o) => o.name).sort(), [...failed].sort(), 'the rerun ran exactly the failed scenarios');
  });
});
