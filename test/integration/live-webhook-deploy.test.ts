/**
 * The in-cluster webhook (support/webhook-deploy.ts) and the live target's use of it: on a cluster
 * without a webhook, provisioning deploys it (namespace, RBAC, TLS Secret, Deployment, Service),
 * records what must be deleted in the ledger, waits for its pod, and registers the
 * MutatingWebhookConfiguration for its Service with the harness's own CA. Fake Kubernetes API.
 * The cases that need no child process or listener are test/unit/live-webhook-deploy.test.ts.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1MutatingWebhookConfiguration, V1Secret } from '@kubernetes/client-node';
import { type Clients, createClients } from '../../support/clients.ts';
import { loadConfig } from '../../support/config.ts';
import { Ledger } from '../../support/ledger.ts';
import { repoRoot } from '../../support/paths.ts';
import type { ProvisionContext } from '../../support/provision/context.ts';
import { registerWebhook } from '../../support/provision/infrastructure.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { UPSTREAM_DEFAULT_DIALECT } from '../../support/targets/dialect.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';
import { FakeKubeApi, type FakeRequest } from '../support/live-fake-kube.ts';

const NS = 'irsa-pod-identity-webhook';

describe('registerWebhook on a cluster without a webhook (live provision)', () => {
  let api: FakeKubeApi;
  let clients: Clients;
  let dir: string;
  let ctx: ProvisionContext;
  const created = (req: FakeRequest) => ({ status: 201, body: req.body });
  const resources = (groupVersion: string, list: [string, string, boolean][]) => ({
    body: {
      kind: 'APIResourceList',
      groupVersion,
      resources: list.map(([name, kind, namespaced]) => ({
        name,
        kind,
        namespaced,
        singularName: '',
        verbs: ['create', 'delete'],
      })),
    },
  });

  before(async () => {
    api = await FakeKubeApi.start({
      'GET /api/v1': resources('v1', [
        ['namespaces', 'Namespace', false],
        ['serviceaccounts', 'ServiceAccount', true],
        ['secrets', 'Secret', true],
        ['services', 'Service', true],
      ]),
      'GET /apis/rbac.authorization.k8s.io/v1': resources('rbac.authorization.k8s.io/v1', [
        ['clusterroles', 'ClusterRole', false],
        ['clusterrolebindings', 'ClusterRoleBinding', false],
      ]),
      'GET /apis/apps/v1': resources('apps/v1', [['deployments', 'Deployment', true]]),
      'POST /api/v1/namespaces': created,
      [`POST /api/v1/namespaces/${NS}/serviceaccounts`]: created,
      'POST /apis/rbac.authorization.k8s.io/v1/clusterroles': created,
      'POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings': created,
      [`POST /api/v1/namespaces/${NS}/secrets`]: created,
      [`POST /apis/apps/v1/namespaces/${NS}/deployments`]: created,
      [`POST /api/v1/namespaces/${NS}/services`]: created,
      [`GET /api/v1/namespaces/${NS}/pods`]: {
        body: {
          metadata: { resourceVersion: '1' },
          items: [
            {
              metadata: { name: 'pod-identity-webhook-1', namespace: NS },
              status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
            },
          ],
        },
      },
      'POST /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations': created,
    });
    const target: TargetDescriptor = {
      name: 'live',
      envId: 'test',
      kubeconfigPath: api.kubeconfigPath,
      aws: { region: 'us-east-1', forcePathStyle: false, accountId: '111122223333' },
      podAwsEnv: {},
      issuer: { mode: 'read-only', issuer: 'https://irsa-oidc-x.s3.us-east-1.amazonaws.com' },
      webhook: {
        mode: 'harness-service',
        namespace: NS,
        serviceName: 'pod-identity-webhook',
        path: '/mutate',
        caBundle: '',
        deploy: { image: 'registry.example/webhook:v0.6.17', flags: { 'token-audience': 'sts.amazonaws.com' } },
      },
      dialect: UPSTREAM_DEFAULT_DIALECT,
      podRoot: '',
      logs: {},
    };
    clients = createClients(target);
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-webhook-deploy-test-'));
    ctx = {
      clients,
      target,
      setup: loadSetup(path.join(repoRoot, 'fixtures/setups/default')),
      config: loadConfig({}),
      runId: 'ic000003',
      ledger: new Ledger(path.join(dir, 'ledger.jsonl')),
      scope: 'run',
      log: () => undefined,
    };
  });
  after(async () => {
    clients.destroy();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('deploys, records what to delete, and registers the configuration with its own CA', async () => {
    const name = await registerWebhook(ctx);
    assert.equal(name, 'pod-identity-webhook-ic000003');
    assert.deepEqual(
      api.writes().map((r) => `${r.method} ${r.path}`),
      [
        'POST /api/v1/namespaces',
        `POST /api/v1/namespaces/${NS}/serviceaccounts`,
        'POST /apis/rbac.authorization.k8s.io/v1/clusterroles',
        'POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
        `POST /api/v1/namespaces/${NS}/secrets`,
        `POST /apis/apps/v1/namespaces/${NS}/deployments`,
        `POST /api/v1/namespaces/${NS}/services`,
        'POST /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
      ],
    );
    assert.deepEqual(
      ctx.ledger
        .outstanding()
        .map((e) => (e.ref.kind === 'k8s-cluster-object' ? `${e.ref.k8sKind} ${e.ref.name}` : e.ref.kind)),
      [
        'k8s-namespace',
        `ClusterRole pod-identity-webhook-${NS}`,
        `ClusterRoleBinding pod-identity-webhook-${NS}`,
        'MutatingWebhookConfiguration pod-identity-webhook-ic000003',
      ],
    );
    const secret = api.writes().find((r) => r.path.endsWith('/secrets'))?.body as V1Secret;
    const mwc = api.writes().at(-1)?.body as V1MutatingWebhookConfiguration;
    const cc = mwc.webhooks?.[0]?.clientConfig;
    assert.deepEqual(cc?.service, { namespace: NS, name: 'pod-identity-webhook', path: '/mutate', port: 443 });
    const ca = new X509Certificate(Buffer.from(cc?.caBundle ?? '', 'base64'));
    const serving = new X509Certificate(secret.stringData?.['tls.crt'] ?? '');
    assert.ok(serving.verify(ca.publicKey), 'caBundle is the CA that signed the serving certificate');
  });
});
