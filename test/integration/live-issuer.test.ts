/**
 * Issuer patching on OpenShift (provision mode), against a fake Kubernetes API: the merge patch of
 * authentication.config.openshift.io/cluster spec.serviceAccountIssuer, the ledger entry that
 * restores the old value (written before the patch), the revert through the ledger's cleanup, and
 * the wait until tokens carry the new issuer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { flushLedger } from '../../support/cleanup.ts';
import { type Clients, createClients } from '../../support/clients.ts';
import { loadConfig } from '../../support/config.ts';
import { OperationTimeout } from '../../support/errors.ts';
import { Ledger } from '../../support/ledger.ts';
import { repoRoot } from '../../support/paths.ts';
import type { ProvisionContext } from '../../support/provision/context.ts';
import { patchClusterIssuer, waitForClusterIssuer } from '../../support/provision/infrastructure.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { UPSTREAM_DEFAULT_DIALECT } from '../../support/targets/dialect.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';
import { FakeKubeApi, tokenRequestRoute } from '../support/live-fake-kube.ts';

const AUTH = '/apis/config.openshift.io/v1/authentications/cluster';
const OLD = 'https://rh-oidc.s3.us-east-1.amazonaws.com/old';
const NEW = 'https://irsa-oidc-ic123456.s3.us-east-1.amazonaws.com';

describe('OpenShift issuer patching', () => {
  let api: FakeKubeApi;
  let clients: Clients;
  let dir: string;
  let ledger: Ledger;
  let current = OLD;
  let tokenIssuer = OLD;
  const logs: string[] = [];

  before(async () => {
    api = await FakeKubeApi.start({
      [`GET ${AUTH}`]: () => ({
        body: {
          apiVersion: 'config.openshift.io/v1',
          kind: 'Authentication',
          metadata: { name: 'cluster' },
          spec: { serviceAccountIssuer: current },
        },
      }),
      [`PATCH ${AUTH}`]: (req) => {
        current = (req.body as { spec: { serviceAccountIssuer: string } }).spec.serviceAccountIssuer;
        return {
          body: {
            apiVersion: 'config.openshift.io/v1',
            kind: 'Authentication',
            spec: { serviceAccountIssuer: current },
          },
        };
      },
      // API discovery, for the generic object client the ledger's cleanup uses.
      'GET /apis/config.openshift.io/v1': {
        body: {
          kind: 'APIResourceList',
          groupVersion: 'config.openshift.io/v1',
          resources: [
            {
              name: 'authentications',
              singularName: 'authentication',
              namespaced: false,
              kind: 'Authentication',
              verbs: ['get', 'patch'],
            },
          ],
        },
      },
      'POST /api/v1/namespaces/default/serviceaccounts/default/token': tokenRequestRoute(() => tokenIssuer),
    });
    const descriptor: TargetDescriptor = {
      name: 'live',
      envId: 'test',
      kubeconfigPath: api.kubeconfigPath,
      aws: { region: 'us-east-1', forcePathStyle: false, accountId: '111122223333' },
      podAwsEnv: {},
      issuer: { mode: 'patchable' },
      webhook: { mode: 'existing', configurationName: 'pod-identity-webhook' },
      dialect: { ...UPSTREAM_DEFAULT_DIALECT, mountPath: '/m' },
      podRoot: '',
      logs: {},
    };
    clients = createClients(descriptor);
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-issuer-test-'));
    ledger = new Ledger(path.join(dir, 'ledger.jsonl'));
    ctx = {
      clients,
      target: descriptor,
      setup: loadSetup(path.join(repoRoot, 'fixtures/setups/default')),
      config: loadConfig({}),
      runId: 'ic123456',
      ledger,
      scope: 'run',
      log: (l) => logs.push(l),
    };
  });
  let ctx: ProvisionContext;
  beforeEach(() => {
    api.requests.length = 0;
  });
  after(async () => {
    clients.destroy();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('merge-patches spec.serviceAccountIssuer and records how to restore the old value', async () => {
    const { previous } = await patchClusterIssuer(ctx, NEW);
    assert.equal(previous, OLD);
    assert.equal(current, NEW);
    const patch = api.requests.find((r) => r.method === 'PATCH');
    assert.equal(patch?.path, AUTH);
    assert.equal(patch?.contentType, 'application/merge-patch+json');
    assert.deepEqual(patch?.body, { spec: { serviceAccountIssuer: NEW } });
    const [entry] = ledger.outstanding('run');
    assert.equal(entry?.ref.kind, 'k8s-patch-revert');
    assert.deepEqual(entry?.ref.kind === 'k8s-patch-revert' && entry.ref.mergePatch, {
      spec: { serviceAccountIssuer: OLD },
    });
  });

  it('patching to the value it already has changes nothing and records nothing', async () => {
    const before = ledger.outstanding().length;
    await patchClusterIssuer(ctx, NEW);
    assert.deepEqual(api.writes(), []);
    assert.equal(ledger.outstanding().length, before);
  });

  it('waits until tokens carry the new issuer, and reports the wait', async () => {
    let calls = 0;
    api.route('POST /api/v1/namespaces/default/serviceaccounts/default/token', (req) => {
      calls++;
      // The API servers roll out one by one: the first tokens still carry the old issuer.
      tokenIssuer = calls < 3 ? OLD : NEW;
      return tokenRequestRoute(() => tokenIssuer)(req);
    });
    const got = await waitForClusterIssuer(clients, NEW, 10, ctx.log, { initialDelayMs: 10, maxDelayMs: 20 });
    assert.equal(got, NEW);
    assert.equal(calls, 3);
    assert.ok(
      logs.some((l) => /tokens carry the new issuer after .* \(3 TokenRequests\)/.test(l)),
      logs.join('\n'),
    );
  });

  it('gives up after its deadline, naming the issuer tokens still carry', async () => {
    tokenIssuer = OLD;
    api.route(
      'POST /api/v1/namespaces/default/serviceaccounts/default/token',
      tokenRequestRoute(() => OLD),
    );
    await assert.rejects(
      waitForClusterIssuer(clients, NEW, 1, ctx.log, { initialDelayMs: 100, maxDelayMs: 200 }),
      (e: unknown) => e instanceof OperationTimeout && e.message.includes(OLD),
    );
  });

  it('the run cleanup restores the old issuer through the ledger', async () => {
    const report = await flushLedger(clients, ledger, { timeoutSeconds: 10 });
    assert.deepEqual(report.failed, []);
    assert.equal(current, OLD);
    const patch = api.requests.find((r) => r.method === 'PATCH');
    assert.equal(patch?.contentType, 'application/merge-patch+json');
    assert.deepEqual((patch?.body as { spec?: unknown } | undefined)?.spec, { serviceAccountIssuer: OLD });
    assert.deepEqual(ledger.outstanding(), []);
  });
});
