/**
 * Only the embedded target needs the embedded target's set-up (issue 15, item 1). On a machine
 * without Go and Python (a PATH without them) and with an empty cache (IRSA_CACHE in a temporary
 * directory; IRSA_NODE is this Node, so that no runtime is downloaded), `verify`, `-p live` and
 * `-p docker` reach their target's own checks and build nothing: the cache holds no component
 * binaries and no virtualenv afterwards. The embedded target on the same machine stops with exit
 * 2, the missing tool and a hint (never an unbound variable or exit 1).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBash as run } from '../support/bash.ts';

/** A directory of links to every program on the PATH except Python's and Go's. */
function pathWithout(dir: string, hidden: RegExp): string {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  for (const d of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      const link = path.join(bin, name);
      if (hidden.test(name) || existsSync(link)) continue;
      symlinkSync(path.join(d, name), link);
    }
  }
  return bin;
}

describe('a machine with Node and npm only: no Go, no Python, an empty cache', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let cache: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-setup-levels-'));
    cache = path.join(dir, 'cache');
    const bin = pathWithout(dir, /^(go|gofmt|python.*|pip.*|pydoc.*|pyenv.*)$/);
    env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('IRSA_') || k === 'KUBECONFIG') delete env[k];
    Object.assign(env, {
      PATH: bin,
      IRSA_CACHE: cache,
      IRSA_NODE: process.execPath,
      IRSA_REPORTS_DIR: path.join(dir, 'reports'),
    });
    // No AWS credentials or configuration from the machine.
    env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'no-credentials');
    env.AWS_CONFIG_FILE = path.join(dir, 'no-config');
    env.AWS_EC2_METADATA_DISABLED = 'true';
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  const builtNothing = () => {
    assert.ok(existsSync(cache), 'the set-up used the empty cache');
    const left = readdirSync(cache);
    assert.deepEqual(
      left.filter((e) => e === 'bin' || e === 'go-work' || e.startsWith('venv-')),
      [],
      `nothing of the embedded target in the cache: ${left.join(', ')}`,
    );
  };

  /** Exit 2, the cause and the hint as the last two lines, no shell error on the way. */
  const refused = (r: { code: number | null; stderr: string }, cause: RegExp) => {
    assert.equal(r.code, 2, `exit ${r.code}\n${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines.at(-2) ?? '', cause, r.stderr);
    assert.match(lines.at(-1) ?? '', /^hint: /, r.stderr);
    assert.doesNotMatch(r.stderr, /unbound variable|No such file|command not found/, r.stderr);
  };

  it('verify without its settings names them (exit 2) and builds nothing', async () => {
    const r = await run(['tools/irsa', 'verify'], env);
    refused(r, /^irsa: verify-only mode needs IRSA_VERIFY_NAMESPACE, /);
    builtNothing();
  });

  it('verify with its settings goes on to the cluster connection and builds nothing', async () => {
    const r = await run(['tools/irsa', 'verify'], {
      ...env,
      KUBECONFIG: path.join(dir, 'no-kubeconfig'),
      IRSA_VERIFY_NAMESPACE: 'payments',
      IRSA_VERIFY_SERVICE_ACCOUNT: 's3-reader',
      IRSA_VERIFY_ROLE_ARN: 'arn:aws:iam::123456789012:role/payments-s3-reader',
      IRSA_VERIFY_ALLOWED_BUCKET: 'payments-data',
      IRSA_VERIFY_DENIED_BUCKET: 'billing-data',
    });
    refused(r, /^irsa: no kubeconfig found at .*no-kubeconfig/);
    builtNothing();
  });

  it('-p docker goes on to its engine check and builds nothing', async () => {
    const r = await run(['tools/irsa', 'conformance', '-p', 'docker'], { ...env, DOCKER_HOST: 'tcp://127.0.0.1:1' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^irsa: the docker target needs a container engine/m);
    builtNothing();
  });

  it('the embedded target names the missing tool, exit 2', async () => {
    const r = await run(['tools/irsa', 'conformance'], env);
    refused(r, /^irsa: no Python interpreter 'python3' on PATH/);
    assert.doesNotMatch(r.stderr, /irsa-conformance run ic/, 'no run started');
  });

  it('the embedded target without Go, given a Python, names Go, exit 2', async () => {
    const r = await run(['tools/build-go-components.sh', 'all'], env);
    refused(r, /^irsa: no Go toolchain on PATH/);
  });

  it('an unknown set-up level is refused', async () => {
    const r = await run(['tools/bootstrap.sh', 'everything'], env);
    refused(r, /^irsa: unknown set-up level 'everything'/);
  });
});
