/**
 * Smoke test of the docker profile: `bash tools/irsa conformance -p docker` runs the whole suite on
 * K3s and the configured emulator and exits 0; afterwards no container of the run is left.
 *
 * Runs only where a container engine answers and the images are already on it (they are large;
 * IRSA_DOCKER_SMOKE_PULL=1 lets the run pull them). K3s also pulls its own pause and CoreDNS images,
 * so the engine needs registry access (or IRSA_K3S_REGISTRIES). Otherwise the test is skipped and
 * says why. Takes minutes; reports go to a temporary directory.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../support/config.ts';
import { isUsageError } from '../../support/errors.ts';
import { repoRoot } from '../../support/paths.ts';
import { loadSetup } from '../../support/setup/setup.ts';

const SMOKE_TIMEOUT_MS = 30 * 60_000;

/** Why the smoke test cannot run here, or undefined. */
async function notRunnable(): Promise<{ reason: string } | { refs: string[] }> {
  const { preflightDockerTarget } = await import('../../support/targets/docker/index.ts');
  const config = loadConfig({ ...process.env, IRSA_TARGET: 'docker' });
  const setup = loadSetup(config.setupDir);
  let pre: Awaited<ReturnType<typeof preflightDockerTarget>>;
  try {
    pre = await preflightDockerTarget(config, setup);
  } catch (e) {
    return { reason: isUsageError(e) ? `${e.message} (${e.hint})` : String(e) };
  }
  const { ImageName } = await import('testcontainers');
  const refs = [pre.images.k3s.ref, pre.images[config.docker.aws].ref, pre.images.webhook.ref, pre.images.app.ref];
  if (process.env.IRSA_DOCKER_SMOKE_PULL !== '1') {
    const missing: string[] = [];
    for (const ref of refs) if (!(await pre.client.image.exists(ImageName.fromString(ref)))) missing.push(ref);
    if (missing.length) {
      return {
        reason: `the docker target's images are not on the engine: ${missing.join(', ')} (pull them, or set IRSA_DOCKER_SMOKE_PULL=1)`,
      };
    }
  }
  return { refs };
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', args, { cwd: repoRoot, env, stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGINT'), SMOKE_TIMEOUT_MS);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

test('the docker profile runs the suite end to end and leaves no container', {
  timeout: SMOKE_TIMEOUT_MS + 60_000,
}, async (t) => {
  const ready = await notRunnable();
  if ('reason' in ready) {
    t.skip(`docker smoke test skipped: ${ready.reason}`);
    return;
  }
  const reports = mkdtempSync(join(tmpdir(), 'irsa-docker-smoke-'));
  try {
    const r = await run(['tools/irsa', 'conformance', '-p', 'docker'], {
      ...process.env,
      IRSA_REPORTS_DIR: reports,
      IRSA_TARGET: '',
    });
    const tail = r.stderr.split('\n').slice(-40).join('\n');
    assert.equal(r.code, 0, `exit ${r.code}; reports in ${reports}; last lines:\n${tail}`);
    assert.match(r.stderr, /Capabilities of the docker target/);
    assert.match(r.stderr, /Scenarios: [1-9]\d* passed, 0 failed/);
    const { getContainerRuntimeClient } = await import('testcontainers');
    const client = await getContainerRuntimeClient();
    const left = (await client.container.list()).filter(
      (c) => c.Labels?.['org.testcontainers'] === 'true' && ready.refs.includes(c.Image),
    );
    assert.deepEqual(
      left.map((c) => `${c.Image} ${c.Names.join(',')}`),
      [],
      'the run removes its containers',
    );
    rmSync(reports, { recursive: true, force: true });
  } catch (e) {
    t.diagnostic(`reports kept in ${reports}`);
    throw e;
  }
});
