/**
 * The harness's state on this machine is per user and closed to other users (issue 16, item 4),
 * and a state file is never trusted to name a command (D15) nor a sweep to pass when it could not
 * look (D16):
 *   - the state directory is $XDG_RUNTIME_DIR/irsa-conformance when XDG_RUNTIME_DIR is this
 *     user's, else $TMPDIR/irsa-conformance-<uid>; it and its runs/ and envs/ are made 0700 and
 *     refused (exit 2, naming the directory) as a symbolic link, with another owner or another mode;
 *   - a warm environment's state file of another user, or one that others may write, is refused;
 *     one naming a kubeconfig with a credential plugin is refused before the plugin could run;
 *   - sweep exits 1, saying it is incomplete, when it could not list what it looks for.
 * The cases that need no child process or listener are test/unit/private-dirs.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ensurePrivateDir, repoRoot, stateRootFor } from '../../support/paths.ts';
import { freeLoopbackPort } from '../../support/process.ts';
import { plant, scratch } from '../support/state-files.ts';

const uid = process.getuid?.() ?? 0;
const { root, fresh } = scratch('irsa-private-dirs-');

/** `bash tools/irsa <argv>` with TMPDIR=tmp and nothing else of this process's environment. */
function irsa(argv: string[], tmp: string, extra: Record<string, string> = {}) {
  const env: Record<string, string> = { TMPDIR: tmp, IRSA_REPORTS_DIR: path.join(tmp, 'reports'), ...extra };
  for (const k of ['PATH', 'HOME', 'IRSA_NODE', 'IRSA_CACHE']) if (process.env[k]) env[k] = process.env[k] as string;
  return spawnSync('bash', [path.join(repoRoot, 'tools/irsa'), ...argv], { cwd: repoRoot, env, encoding: 'utf8' });
}

after(() => rmSync(root, { recursive: true, force: true }));

describe('the per-user state directory', () => {
  it('conformance refuses a planted state directory at once: exit 2, the directory named', () => {
    const tmp = fresh();
    const planted = fresh();
    symlinkSync(planted, path.join(tmp, `irsa-conformance-${uid}`));
    const r = irsa(['conformance', '--name', 'nothing at all'], tmp);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^irsa: .*irsa-conformance-\d+ is a symbolic link/m);
    assert.deepEqual(
      spawnSync('ls', ['-A', planted], { encoding: 'utf8' }).stdout,
      '',
      'nothing was written through the link',
    );
  });
});

describe('warm environment state files', () => {
  it('sweep refuses a state file whose kubeconfig runs a command, and the command never runs', () => {
    const tmp = fresh();
    const marker = path.join(tmp, 'plugin-ran');
    const envs = ensurePrivateDir(path.join(stateRootFor({ TMPDIR: tmp }), 'envs'), stateRootFor({ TMPDIR: tmp }));
    plant(
      envs,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
        `users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: sh, args: ["-c", "touch ${marker}"]}}}]`,
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
        '',
      ].join('\n'),
    );
    const r = irsa(['sweep', '--dry-run'], tmp);
    assert.equal(r.status, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /^irsa: the kubeconfig .* has user "u" with a credential plugin \(exec\)/m);
    assert.equal(existsSync(marker), false, 'the plugin did not run');
  });

  it('sweep exits 1 and says it is incomplete when it could not list anything', async () => {
    const tmp = fresh();
    const port = await freeLoopbackPort();
    const file = plant(
      fresh(),
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}"}}]`,
        'users: [{name: u, user: {token: x}}]',
        'contexts: [{name: x, context: {cluster: c, user: u}}]',
        'current-context: x',
        '',
      ].join('\n'),
    );
    // An endpoint nothing listens on, with credentials: every listing fails.
    const state = JSON.parse((await import('node:fs')).readFileSync(file, 'utf8'));
    state.descriptor.aws = {
      region: 'us-east-1',
      endpoint: `https://127.0.0.1:${port}`,
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIAIRSATESTPLANTED1', secretAccessKey: 'planted-planted-planted-planted' },
      accountId: '123456789012',
    };
    writeFileSync(file, JSON.stringify(state), { mode: 0o600 });
    const r = irsa(['sweep', '--dry-run', '--attach', file], tmp, {
      IRSA_CLEANUP_TIMEOUT: '5',
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    assert.equal(r.status, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /warning: listing namespaces/);
    assert.match(r.stdout, /incomplete: \d+ listing\(s\) failed/);
  });
});
