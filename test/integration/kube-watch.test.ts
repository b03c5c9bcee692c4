/**
 * watchUntil, the harness's one waiting primitive, against a fake API server whose watches end
 * early: a watch the server closes (or client-node aborts for 30 s of silence) is resumed until
 * the caller's own timeout, from the objects as they are now; an error that is an answer rejects.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { OperationTimeout } from '../../support/errors.ts';
import { podIsReady, watchUntil } from '../../support/kube/ops.ts';
import { FakeKubeApi, type FakeRequest } from '../support/live-fake-kube.ts';

const readyPod: V1Pod = {
  metadata: { name: 'app', namespace: 'ns', resourceVersion: '12' },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
};
const pendingPod: V1Pod = {
  metadata: { name: 'app', namespace: 'ns', resourceVersion: '11' },
  status: { phase: 'Pending' },
};

let api: FakeKubeApi;
let kc: KubeConfig;
/** What the n-th watch request of the pods collection answers (a stream of one line, then closed). */
let answers: ((req: FakeRequest) => { status?: number; body: unknown })[] = [];
let watches: FakeRequest[] = [];

before(async () => {
  api = await FakeKubeApi.start({
    'GET /api/v1/namespaces/ns/pods': (req) => {
      watches.push(req);
      const next = answers.shift();
      return next ? next(req) : { body: '' };
    },
  });
  kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigPath);
});

after(async () => {
  await api?.stop();
});

const wait = (timeoutSeconds: number) =>
  watchUntil<V1Pod>(kc, '/api/v1/namespaces/ns/pods', { resourceVersion: '10' }, podIsReady, {
    operation: 'waiting for a Ready pod',
    describeLast: (last) => `last: ${last?.status?.phase ?? 'none'}`,
    timeoutSeconds,
  });

test('a watch the server closes is resumed, from the current objects, until the pod is ready', async () => {
  watches = [];
  answers = [
    () => ({ body: '' }),
    () => ({ body: `${JSON.stringify({ type: 'ADDED', object: pendingPod })}\n` }),
    () => ({ body: `${JSON.stringify({ type: 'ADDED', object: readyPod })}\n` }),
  ];
  const pod = await wait(10);
  assert.equal(pod.metadata?.name, 'app');
  assert.equal(watches.length, 3);
  assert.equal(watches[0]?.query.get('resourceVersion'), '10', 'the first watch starts where the list was');
  assert.equal(watches[1]?.query.get('resourceVersion'), null, 'a resumed watch replays the current state');
});

test('an answer such as 403 Forbidden rejects at once', async () => {
  answers = [() => ({ status: 403, body: { kind: 'Status', code: 403, reason: 'Forbidden', message: 'no' } })];
  const started = Date.now();
  await assert.rejects(wait(10), (e: Error) => !(e instanceof OperationTimeout));
  assert.ok(Date.now() - started < 5000);
});

test("the caller's timeout still ends a watch that never sees the object, naming what it saw last", async () => {
  answers = Array.from({ length: 100 }, () => () => ({
    body: `${JSON.stringify({ type: 'MODIFIED', object: pendingPod })}\n`,
  }));
  await assert.rejects(wait(1), (e: Error) => e instanceof OperationTimeout && /last: Pending/.test(e.message));
});
