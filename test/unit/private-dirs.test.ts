/**
 * The per-user state directory and warm state files, checked in process: where the directory is,
 * its mode and owner, a symbolic link or another user's directory refused, a state file another
 * user may write refused. The commands refusing them (conformance, sweep) are
 * test/integration/private-dirs.test.ts.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { isUsageError } from '../../support/errors.ts';
import { checkOwnFile, ensurePrivateDir, ensureReportsDir, stateRootFor } from '../../support/paths.ts';
import { plant, scratch } from '../support/state-files.ts';

const uid = process.getuid?.() ?? 0;
const { root, fresh } = scratch('irsa-private-dirs-');
const refused = (re: RegExp) => (e: unknown) => isUsageError(e) && re.test(e.message);

after(() => rmSync(root, { recursive: true, force: true }));

describe('the per-user state directory', () => {
  it('is under XDG_RUNTIME_DIR when that is this user’s, else named with the uid under TMPDIR', () => {
    const xdg = fresh();
    assert.equal(stateRootFor({ XDG_RUNTIME_DIR: xdg, TMPDIR: '/x' }), path.join(xdg, 'irsa-conformance'));
    assert.equal(stateRootFor({ TMPDIR: '/x' }), `/x/irsa-conformance-${uid}`);
    const open = fresh();
    chmodSync(open, 0o755);
    assert.equal(stateRootFor({ XDG_RUNTIME_DIR: open, TMPDIR: '/x' }), `/x/irsa-conformance-${uid}`, 'not 0700');
  });

  it('is created 0700 with runs/ and envs/', () => {
    const base = path.join(fresh(), `irsa-conformance-${uid}`);
    ensurePrivateDir(path.join(base, 'runs'), base);
    for (const d of [base, path.join(base, 'runs')]) assert.equal(statSync(d).mode & 0o777, 0o700, d);
  });

  it('refuses a symbolic link, another mode, another owner', () => {
    const t = fresh();
    const base = path.join(t, 'state');
    symlinkSync(fresh(), base);
    assert.throws(() => ensurePrivateDir(path.join(base, 'runs'), base), refused(/is a symbolic link/));
    const t2 = fresh();
    const open = path.join(t2, 'state');
    mkdirSync(open, { mode: 0o755 });
    chmodSync(open, 0o755);
    assert.throws(() => ensurePrivateDir(open, open), refused(/has mode 0755, not 0700/));
    const file = path.join(fresh(), 'state');
    writeFileSync(file, '');
    assert.throws(() => ensurePrivateDir(file, file), refused(/exists and is not a directory/));
  });

  it('refuses a directory of another user', { skip: uid === 0 ? false : 'needs root to give it away' }, () => {
    const other = path.join(fresh(), 'state');
    mkdirSync(other, { mode: 0o700 });
    chownSync(other, 65534, 65534);
    assert.throws(() => ensurePrivateDir(other, other), refused(/belongs to user 65534/));
  });

  it('refuses a reports directory that is a file', () => {
    const file = path.join(fresh(), 'reports');
    writeFileSync(file, '');
    assert.throws(() => ensureReportsDir(file), refused(/reports directory .* is not usable: it .* is a file/));
  });
});

describe('warm environment state files', () => {
  it('is refused when another user may write it, or owns it', () => {
    const dir = fresh();
    const file = plant(dir, 'apiVersion: v1\nkind: Config\n');
    chmodSync(file, 0o666);
    assert.throws(() => checkOwnFile(file, 'state'), refused(/may be written by other users/));
    if (uid === 0) {
      chmodSync(file, 0o600);
      chownSync(file, 65534, 65534);
      assert.throws(() => checkOwnFile(file, 'state'), refused(/belongs to user 65534/));
    }
  });
});
