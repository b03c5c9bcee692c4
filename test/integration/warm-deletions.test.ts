/**
 * Namespace deletions handed over to a warm environment (support/targets/warm-deletions.ts), on a
 * real embedded target: a record whose namespaces are gone is confirmed and removed; one whose
 * namespace a finalizer holds is named as stuck after the cleanup timeout (with the sweep command),
 * and as terminating before it; a run reports a namespace whose deletion it never requested; stopping
 * the environment removes the records.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { type Clients, createClients } from '../../support/clients.ts';
import { LABEL_RUN_ID } from '../../support/names.ts';
import { type EmbeddedTarget, startEmbeddedTarget } from '../../support/targets/embedded/index.ts';
import {
  checkPendingDeletions,
  describeStuck,
  pendingDir,
  readPendingDeletions,
  recordPendingDeletion,
  runNamespaces,
} from '../../support/targets/warm-deletions.ts';
import { binariesMissing } from '../support/binaries.ts';
import { embeddedTestOptions } from '../support/embedded-options.ts';

const missing = binariesMissing();
const HOLD = 'irsa-conformance.io/test-hold';

describe('namespace deletions handed over to a warm environment', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 120_000,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'irsa-warm-deletions-'));
  const stateFile = join(dir, 'warm.json');
  let target: EmbeddedTarget;
  let c: Clients;

  before(async () => {
    target = await startEmbeddedTarget(embeddedTestOptions(dir, { logsDir: join(dir, 'logs'), stateFile }));
    c = createClients(target.descriptor);
  });

  after(async () => {
    c?.destroy();
    await target?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const namespace = async (name: string, runId: string, finalizers: string[] = []) =>
    c.core.createNamespace({ body: { metadata: { name, labels: { [LABEL_RUN_ID]: runId }, finalizers } } });

  test('gone: confirmed and forgotten; held by a finalizer: terminating, then stuck with the sweep command', async () => {
    await namespace('irsa-held-icheld001', 'icheld001', [HOLD]);
    await c.core.deleteNamespace({ name: 'irsa-held-icheld001' });
    const now = new Date();
    recordPendingDeletion(stateFile, {
      runId: 'icgone001',
      requestedAt: now.toISOString(),
      namespaces: ['irsa-never-there-icgone001'],
    });
    recordPendingDeletion(stateFile, {
      runId: 'icheld001',
      requestedAt: new Date(now.getTime() - 30_000).toISOString(),
      namespaces: ['irsa-held-icheld001'],
    });

    const young = await checkPendingDeletions(stateFile, c, 60, now);
    assert.deepEqual(young.confirmed, ['icgone001']);
    assert.deepEqual(
      young.terminating.map((t) => t.runId),
      ['icheld001'],
    );
    assert.deepEqual(young.stuck, []);
    assert.deepEqual(
      readPendingDeletions(stateFile).map((r) => r.runId),
      ['icheld001'],
      'the confirmed record is removed',
    );

    const later = await checkPendingDeletions(stateFile, c, 60, new Date(now.getTime() + 60_000));
    assert.deepEqual(
      later.stuck.map((s) => [s.runId, s.namespaces, s.ageSeconds]),
      [['icheld001', ['irsa-held-icheld001'], 90]],
    );
    const [line] = describeStuck(later);
    assert.match(line ?? '', /irsa-held-icheld001 of run icheld001 still there 90 s after/);
    assert.match(line ?? '', /npm run sweep -- --run-id icheld001/);

    // Released, the namespace goes and the next check confirms it.
    await c.core.patchNamespace(
      { name: 'irsa-held-icheld001', body: { metadata: { finalizers: [] } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    for (let i = 0; i < 100 && (await runNamespaces(c, 'icheld001')).present.length > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    const released = await checkPendingDeletions(stateFile, c, 60);
    assert.deepEqual(released.confirmed, ['icheld001']);
    assert.deepEqual(readPendingDeletions(stateFile), []);
  });

  test('a namespace whose deletion was never requested is reported as such', async () => {
    await namespace('irsa-kept-ickept001', 'ickept001');
    const r = await runNamespaces(c, 'ickept001');
    assert.deepEqual(r, { present: ['irsa-kept-ickept001'], notDeleting: ['irsa-kept-ickept001'] });
    await c.core.deleteNamespace({ name: 'irsa-kept-ickept001' });
    assert.deepEqual((await runNamespaces(c, 'ickept001')).notDeleting, []);
  });

  test('stopping the environment removes the records', async () => {
    recordPendingDeletion(stateFile, { runId: 'iclast001', requestedAt: new Date().toISOString(), namespaces: ['x'] });
    assert.ok(existsSync(pendingDir(stateFile)));
    await target.stop();
    assert.equal(existsSync(pendingDir(stateFile)), false);
  });
});
