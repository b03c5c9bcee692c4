/**
 * cucumber's worldParameters are settings with the IRSA_CONFIG file's keys, between that file and
 * the environment; a key the harness does not know is exit 2 (issue 15, item 10). cucumber-js
 * started on its own (npx cucumber-js, an IDE's run button) stops with exit 2 and a one-line hint
 * to run the suite through the harness.
 * The cases that need no child process or listener are test/unit/world-parameters.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBash } from '../support/bash.ts';

describe('worldParameters as settings', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-world-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--world-parameters reaches the run: the live mode and the tenant count select the scenarios', async () => {
    const env = { ...process.env, IRSA_TARGET: '', IRSA_TENANTS: '', IRSA_REPORTS_DIR: path.join(dir, 'reports') };
    const live = await runBash(
      [
        'tools/irsa',
        'conformance',
        '--dry-run',
        '--world-parameters',
        '{"target":"live","live":{"mode":"verify-only"}}',
      ],
      env,
    );
    assert.equal(live.code, 0, live.stderr);
    assert.match(live.stderr, /would run on the live target \(verify-only mode\)/);
    const tenants = await runBash(
      ['tools/irsa', 'conformance', '--dry-run', '--tags', '@tenant-matrix', '--world-parameters', '{"tenants":1}'],
      env,
    );
    assert.equal(tenants.code, 0, tenants.stderr);
    assert.doesNotMatch(tenants.stdout, /[Tt]enant 2/, 'one tenant only');
  });

  it('--world-parameters with an unknown key: exit 2 before anything starts', async () => {
    const r = await runBash(['tools/irsa', 'conformance', '--world-parameters', '{"regoin":"eu-west-1"}'], {
      ...process.env,
      IRSA_REPORTS_DIR: path.join(dir, 'reports'),
    });
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0] ?? '', /^irsa: invalid setting worldParameters \(from --world-parameters or the profile\)/);
  });
});

describe('cucumber-js started on its own', () => {
  it('stops with exit 2 and a one-line hint to use npm run conformance', async () => {
    const env = { ...process.env };
    delete env.IRSA_HARNESS;
    const r = await runBash(
      ['-c', `"${process.execPath}" node_modules/@cucumber/cucumber/bin/cucumber.js --tags @infrastructure`],
      env,
    );
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0] ?? '', /^irsa: cucumber-js alone cannot run this suite/);
    assert.match(lines[1] ?? '', /^hint: .*npm run conformance --/);
  });
});
