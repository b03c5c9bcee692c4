/**
 * `bash tools/irsa conformance -p docker` on a machine without a container engine: exit code 2,
 * one line of cause and one of hint pointing at the embedded target, nothing left behind (no run
 * directory, no environment logs). Skipped, with the reason, where an engine answers (there
 * the smoke test runs the profile instead).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runsRoot } from '../../support/paths.ts';
import { runBash as run } from '../support/bash.ts';

async function engineAnswers(): Promise<boolean> {
  const { getContainerRuntimeClient } = await import('testcontainers');
  try {
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

test('-p docker without a container engine exits 2 with a one-line cause and the embedded target as hint', async (t) => {
  if (await engineAnswers()) {
    t.skip(
      'a container engine answers on this machine: test/integration/docker-smoke.test.ts runs the docker profile instead',
    );
    return;
  }
  const reports = mkdtempSync(join(tmpdir(), 'irsa-docker-cli-test-'));
  try {
    const r = await run(['tools/irsa', 'conformance', '-p', 'docker'], {
      ...process.env,
      IRSA_REPORTS_DIR: reports,
      IRSA_TARGET: '',
    });
    assert.equal(r.code, 2, `exit ${r.code}\nstderr:\n${r.stderr}`);
    // Before the cause only the coordinator's "irsa-conformance run …" line may come; the cause is one line, the hint the next.
    const lines = r.stderr.trim().split('\n');
    const causes = lines.filter((l) => l.startsWith('irsa: '));
    assert.equal(causes.length, 1, `one cause line, got:\n${r.stderr}`);
    assert.match(lines.at(-2) as string, /^irsa: the docker target needs a container engine: /);
    assert.match(lines.at(-1) as string, /^hint: .*embedded/);
    assert.ok(
      lines.slice(0, -2).every((l) => l.startsWith('irsa-conformance run ')),
      `nothing else on stderr:\n${r.stderr}`,
    );
    const runId = /run (ic[a-z0-9]+)/.exec(r.stdout)?.[1];
    if (runId) assert.equal(existsSync(join(runsRoot, runId)), false, 'the run directory is removed');
    assert.equal(
      readdirSync(reports).includes('logs') && readdirSync(join(reports, 'logs')).some((d) => d.startsWith('env')),
      false,
      'no environment was started (no container logs)',
    );
  } finally {
    rmSync(reports, { recursive: true, force: true });
  }
});
