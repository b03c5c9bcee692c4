/**
 * The entrypoint's Sonobuoy hand-over read back by GNU tar: the reports packed, then the done file
 * naming the tarball. The rest of issue 19's pieces that need no cluster are
 * test/unit/at-scale-units.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { handOverToSonobuoy, SONOBUOY_TARBALL } from '../../support/cli/entrypoint.ts';
import { report } from '../support/junit-report.ts';

const work = mkdtempSync(path.join(tmpdir(), 'irsa-at-scale-units-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('the entrypoint under Sonobuoy', () => {
  it('packs the reports, then writes the done file naming the tarball', async () => {
    const results = path.join(work, 'sonobuoy-ok');
    const reports = path.join(results, 'irsa-conformance');
    mkdirSync(path.join(reports, 'logs'), { recursive: true });
    writeFileSync(path.join(reports, 'junit.xml'), report('irsa-conformance', [{ name: 'a' }]));
    writeFileSync(path.join(reports, 'logs', 'harness.log'), 'log');
    const tarball = await handOverToSonobuoy(results, reports, { code: 1, stderrTail: '', command: 'verify' });
    assert.equal(tarball, path.join(results, SONOBUOY_TARBALL));
    assert.equal(readFileSync(path.join(results, 'done'), 'utf8'), tarball);
    const listed = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
    assert.deepEqual(listed, [
      'irsa-conformance/',
      'irsa-conformance/junit.xml',
      'irsa-conformance/logs/',
      'irsa-conformance/logs/harness.log',
    ]);
  });
});
