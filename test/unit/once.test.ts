/**
 * Unit tests of support/provision/once.ts: one creation per key and run directory, waiting on
 * another creator's lock until it publishes its result or its failure.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runOnce } from '../../support/provision/once.ts';

const dirs: string[] = [];
function runDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'irsa-once-test-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('runOnce', () => {
  it('creates once for concurrent callers and hands every caller the same value', async () => {
    const dir = runDir();
    let calls = 0;
    const create = async () => {
      calls++;
      return { n: calls };
    };
    const values = await Promise.all([1, 2, 3].map(() => runOnce(dir, 'tenant-t1-aws', 5, create)));
    assert.equal(calls, 1);
    assert.deepEqual(values, [{ n: 1 }, { n: 1 }, { n: 1 }]);
  });

  it('waits for the holder of the lock (another worker) and takes its published result', async () => {
    const dir = runDir();
    writeFileSync(path.join(dir, 'once-shared.lock'), '');
    let created = false;
    const p = runOnce(dir, 'shared', 5, async () => {
      created = true;
      return 'mine';
    });
    setImmediate(() => writeFileSync(path.join(dir, 'once-shared.json'), JSON.stringify('theirs')));
    assert.equal(await p, 'theirs');
    assert.equal(created, false);
  });

  it("passes on the other worker's failure, naming the key", async () => {
    const dir = runDir();
    writeFileSync(path.join(dir, 'once-broken.lock'), '');
    const p = runOnce(dir, 'broken', 5, async () => 'never');
    setImmediate(() => writeFileSync(path.join(dir, 'once-broken.failed.json'), JSON.stringify({ message: 'boom' })));
    await assert.rejects(p, /broken could not be created .*: boom/);
  });

  it('publishes its own failure for the others and times out waiting for a silent holder', async () => {
    const dir = runDir();
    await assert.rejects(
      runOnce(dir, 'fails', 5, async () => {
        throw new Error('quota exceeded');
      }),
      /quota exceeded/,
    );
    assert.match(readFileSync(path.join(dir, 'once-fails.failed.json'), 'utf8'), /quota exceeded/);
    // A holder that never publishes: the waiter gives up with a timeout naming the key.
    writeFileSync(path.join(dir, 'once-silent.lock'), '');
    await assert.rejects(
      runOnce(dir, 'silent', 1, async () => 'x'),
      /timed out after 1 s/,
    );
  });

  it('refuses keys that are not file-safe', async () => {
    await assert.rejects(
      runOnce(runDir(), '../escape', 1, async () => 1),
      /not a file-safe name/,
    );
  });
});
