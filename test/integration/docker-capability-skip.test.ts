/**
 * The skip logic the docker target relies on with LocalStack community, run where it can run: the
 * embedded target with moto in plain mode (IRSA_MOTO_MODE=plain: no IAM enforcement, as LocalStack
 * community). The AccessDenied scenario must be skipped, never passed, with the probe's reason
 * naming what to do; the run exits 0. The reason reaches every report a person reads: the
 * terminal's list of skipped scenarios, the JUnit <skipped> (message and body) and the HTML report
 * (with the capability matrix under its test-run hook). Needs the embedded target's binaries.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { IAM_NOT_ENFORCED } from '../../support/capabilities.ts';
import { repoRoot } from '../../support/paths.ts';
import { binariesMissing } from '../support/binaries.ts';

test('without IAM enforcement the AccessDenied scenario is skipped with the reason, never passed', async (t) => {
  const missing = binariesMissing();
  if (missing) {
    t.skip(`the embedded target's binaries are missing: ${missing}`);
    return;
  }
  const reports = mkdtempSync(join(tmpdir(), 'irsa-docker-skip-test-'));
  try {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(
        'bash',
        ['tools/irsa', 'conformance', '-p', 'embedded', '--name', 'Writing to another bucket is denied'],
        {
          cwd: repoRoot,
          env: { ...process.env, IRSA_MOTO_MODE: 'plain', IRSA_REPORTS_DIR: reports, IRSA_TARGET: '' },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, stderr }));
    });
    assert.equal(r.code, 0, `exit ${r.code}:\n${r.stderr.split('\n').slice(-30).join('\n')}`);
    assert.match(r.stderr, /enforces-iam\s+no\s+the target does not enforce IAM policies/);
    assert.match(r.stderr, /Scenarios: 0 passed, 0 failed, 1 skipped/);
    const messages = readFileSync(join(reports, 'cucumber.ndjson'), 'utf8');
    const reason = `the embedded target lacks enforces-iam: ${IAM_NOT_ENFORCED}`;
    assert.ok(messages.includes(`Skipped: ${reason}`), 'the skipped scenario carries the reason in the report');
    assert.match(
      r.stderr,
      /^Skipped \(1\):\n {2}features\/02-application\.feature:\d+ {2}Writing to another bucket is denied\n {6}the embedded target lacks enforces-iam: /m,
      'the terminal lists the skipped scenario with its reason',
    );
    const junit = readFileSync(join(reports, 'junit.xml'), 'utf8');
    assert.ok(junit.includes(`<skipped message="${reason}`), `JUnit gives the reason as message:\n${junit}`);
    assert.ok(junit.includes(`<![CDATA[${reason}`), 'and as the skipped body');
    const html = readFileSync(join(reports, 'cucumber.html'), 'utf8');
    assert.match(
      html,
      /enforces-iam +no +the target does not enforce IAM[^"]*","contentEncoding":"IDENTITY","mediaType":"text\/plain","fileName":"capabilities\.txt","testRunHookStartedId"/,
    );
    assert.equal(readFileSync(join(reports, '@rerun.txt'), 'utf8'), '', 'a skipped scenario is not one to rerun');
  } finally {
    rmSync(reports, { recursive: true, force: true });
  }
});
