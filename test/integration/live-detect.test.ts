/**
 * Dialect detection against a fake Kubernetes API: an OpenShift cluster (ClusterVersion,
 * authentication.config, the built-in webhook in openshift-cloud-credential-operator and its
 * Deployment's flags, several signing keys in bound-sa-token-signing-certs, one of them SPKI bytes
 * under an `RSA PUBLIC KEY` label as OpenShift writes it) and a plain cluster without a webhook.
 * The cases that need no child process or listener are test/unit/live-detect.test.ts.
 */
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { type Clients, createClients } from '../../support/clients.ts';
import { loadConfig } from '../../support/config.ts';
import { isUsageError } from '../../support/errors.ts';
import { kidForKey } from '../../support/oidc/jwks.ts';
import { repoRoot } from '../../support/paths.ts';
import { readClusterSigningKeys } from '../../support/provision/infrastructure.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { defaultImages } from '../../support/targets/docker/images.ts';
import { detectCluster, OPENSHIFT_WEBHOOK_NAMESPACE } from '../../support/targets/live/detect.ts';
import { connectLiveTarget } from '../../support/targets/live/index.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';
import { readVersions } from '../../support/versions.ts';
import { FakeKubeApi, pem, rsaPublicKey, tokenRequestRoute } from '../support/live-fake-kube.ts';

const ACCOUNT = '111122223333';
const ISSUER = 'https://irsa-oidc-prod.s3.us-east-1.amazonaws.com';
const setup = loadSetup(path.join(repoRoot, 'fixtures/setups/default'));
// One mock for the file: it stubs STSClient's prototype, so two would overwrite each other.
const sts = mockClient(STSClient);
sts.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT, Arn: `arn:aws:iam::${ACCOUNT}:user/ops` });
after(() => sts.restore());

function descriptorFor(api: FakeKubeApi): TargetDescriptor {
  return {
    name: 'live',
    envId: 'test',
    kubeconfigPath: api.kubeconfigPath,
    aws: { region: 'us-east-1', forcePathStyle: false, accountId: ACCOUNT },
    podAwsEnv: {},
    issuer: { mode: 'read-only', issuer: ISSUER },
    webhook: { mode: 'existing', configurationName: '' },
    dialect: { annotationPrefix: '', audience: '', mountPath: '', tokenFileName: 'token', defaultExpirationSeconds: 0 },
    podRoot: '',
    logs: {},
  };
}

describe('an OpenShift cluster', () => {
  let api: FakeKubeApi;
  let clients: Clients;
  const keys: KeyObject[] = [rsaPublicKey(), rsaPublicKey(), rsaPublicKey()];

  before(async () => {
    const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
    const pkcs1 = (k: KeyObject) => k.export({ type: 'pkcs1', format: 'der' });
    api = await FakeKubeApi.start({
      'GET /apis/config.openshift.io/v1/clusterversions/version': {
        body: {
          apiVersion: 'config.openshift.io/v1',
          kind: 'ClusterVersion',
          status: { desired: { version: '4.16.3' }, history: [{ state: 'Completed', version: '4.16.3' }] },
        },
      },
      'GET /apis/config.openshift.io/v1/authentications/cluster': {
        body: { apiVersion: 'config.openshift.io/v1', kind: 'Authentication', spec: { serviceAccountIssuer: ISSUER } },
      },
      'GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations': {
        body: {
          items: [
            {
              metadata: { name: 'unrelated' },
              webhooks: [{ name: 'defaults.example.com', clientConfig: { service: { namespace: 'x', name: 'y' } } }],
            },
            {
              metadata: { name: 'pod-identity-webhook' },
              webhooks: [
                {
                  name: 'pod-identity-webhook.amazonaws.com',
                  failurePolicy: 'Ignore',
                  admissionReviewVersions: ['v1beta1'],
                  clientConfig: {
                    service: { namespace: OPENSHIFT_WEBHOOK_NAMESPACE, name: 'pod-identity-webhook', path: '/mutate' },
                  },
                },
              ],
            },
          ],
        },
      },
      [`GET /apis/apps/v1/namespaces/${OPENSHIFT_WEBHOOK_NAMESPACE}/deployments/pod-identity-webhook`]: {
        body: {
          metadata: { name: 'pod-identity-webhook', namespace: OPENSHIFT_WEBHOOK_NAMESPACE },
          spec: {
            selector: { matchLabels: { app: 'pod-identity-webhook' } },
            template: {
              metadata: { labels: { app: 'pod-identity-webhook' } },
              spec: {
                containers: [
                  {
                    name: 'pod-identity-webhook',
                    image: 'quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:0123',
                    command: [
                      '/usr/bin/aws-pod-identity-webhook',
                      '--in-cluster=false',
                      `--namespace=${OPENSHIFT_WEBHOOK_NAMESPACE}`,
                      '--port=9443',
                      '--annotation-prefix=eks.amazonaws.com',
                      '--token-audience',
                      'sts.amazonaws.com',
                      '--logtostderr',
                    ],
                  },
                ],
              },
            },
          },
        },
      },
      'GET /api/v1/namespaces/openshift-kube-apiserver/configmaps/bound-sa-token-signing-certs': {
        body: {
          metadata: { name: 'bound-sa-token-signing-certs', namespace: 'openshift-kube-apiserver' },
          data: {
            // OpenShift's flavour: SPKI bytes under the PKCS#1 label.
            'service-account-001.pub': pem('RSA PUBLIC KEY', spki(keys[0] as KeyObject)),
            'service-account-002.pub': pem('PUBLIC KEY', spki(keys[1] as KeyObject)),
            // openssl -RSAPublicKey_out: real PKCS#1 under the same label.
            'service-account-003.pub': pem('RSA PUBLIC KEY', pkcs1(keys[2] as KeyObject)),
            'ca-bundle.crt': 'not a signing key',
          },
        },
      },
      'POST /api/v1/namespaces/default/serviceaccounts/default/token': tokenRequestRoute(() => ISSUER),
    });
    clients = createClients(descriptorFor(api));
  });
  after(async () => {
    clients.destroy();
    await api.stop();
  });

  it('detects OpenShift, its version and the built-in webhook with the flags of its Deployment', async () => {
    const facts = await detectCluster(clients, loadConfig({}).live);
    assert.deepEqual(facts.openshift, { version: '4.16.3', serviceAccountIssuer: ISSUER });
    assert.equal(facts.webhook?.configurationName, 'pod-identity-webhook');
    assert.deepEqual(facts.webhook?.service, { namespace: OPENSHIFT_WEBHOOK_NAMESPACE, name: 'pod-identity-webhook' });
    assert.equal(facts.webhook?.version, undefined, 'a digest names no release');
    assert.equal(facts.dialect.annotationPrefix, 'eks.amazonaws.com');
    assert.equal(facts.dialect.audience, 'sts.amazonaws.com');
    const source = (name: string) => facts.detected.find((d) => d.name === name)?.source ?? '';
    assert.match(source('token audience'), /--token-audience of Deployment openshift-cloud-credential-operator/);
    assert.match(source('token mount path'), /default/);
    assert.equal(facts.detected.find((d) => d.name === 'OpenShift')?.value, '4.16.3');
    assert.equal(facts.detected.find((d) => d.name === 'webhook namespace')?.value, OPENSHIFT_WEBHOOK_NAMESPACE);
  });

  it('a setting wins over the detected value, and says so', async () => {
    const facts = await detectCluster(clients, loadConfig({ IRSA_ANNOTATION_PREFIX: 'sts.amazonaws.com' }).live);
    assert.equal(facts.dialect.annotationPrefix, 'sts.amazonaws.com');
    assert.equal(facts.detected.find((d) => d.name === 'annotation prefix')?.source, 'setting IRSA_ANNOTATION_PREFIX');
  });

  it('reads every signing key of the ConfigMap, SPKI under RSA PUBLIC KEY included, with the API server kid', async () => {
    const read = await readClusterSigningKeys(clients);
    assert.match(read.source, /bound-sa-token-signing-certs/);
    assert.deepEqual(
      read.keys.map((k) => k.kid),
      keys.map((k) => kidForKey(k)),
    );
  });

  it('provision mode: the issuer is patchable and the webhook the built-in one', async () => {
    const t = await connectLiveTarget(
      loadConfig({ IRSA_TARGET: 'live', IRSA_KUBECONFIG: api.kubeconfigPath, IRSA_AWS_ACCOUNT_ID: ACCOUNT }),
      setup,
      () => undefined,
    );
    assert.deepEqual(t.descriptor.issuer, { mode: 'patchable' });
    assert.deepEqual(t.descriptor.webhook, { mode: 'existing', configurationName: 'pod-identity-webhook' });
    assert.equal(t.descriptor.readOnly, undefined);
    await t.stop();
  });

  it('verify-only: the issuer is read-only and the descriptor read-only, with the pod namespace', async () => {
    api.route('GET /api/v1/namespaces/team-a/serviceaccounts/app', { body: { metadata: { name: 'app' } } });
    const t = await connectLiveTarget(
      loadConfig({
        IRSA_TARGET: 'live',
        IRSA_KUBECONFIG: api.kubeconfigPath,
        IRSA_LIVE_MODE: 'verify-only',
        IRSA_VERIFY_NAMESPACE: 'team-a',
        IRSA_VERIFY_SERVICE_ACCOUNT: 'app',
        IRSA_VERIFY_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/app`,
        IRSA_VERIFY_ALLOWED_BUCKET: 'team-a-data',
        IRSA_VERIFY_DENIED_BUCKET: 'team-b-data',
      }),
      setup,
      () => undefined,
    );
    assert.deepEqual(t.descriptor.issuer, { mode: 'read-only', issuer: ISSUER });
    assert.deepEqual(t.descriptor.readOnly, { podNamespace: 'team-a' });
    await t.stop();
  });

  it('verify-only with a ServiceAccount that does not exist: exit 2', async () => {
    await assert.rejects(
      connectLiveTarget(
        loadConfig({
          IRSA_TARGET: 'live',
          IRSA_KUBECONFIG: api.kubeconfigPath,
          IRSA_LIVE_MODE: 'verify-only',
          IRSA_VERIFY_NAMESPACE: 'team-a',
          IRSA_VERIFY_SERVICE_ACCOUNT: 'typo',
          IRSA_VERIFY_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/app`,
          IRSA_VERIFY_ALLOWED_BUCKET: 'a-bucket',
          IRSA_VERIFY_DENIED_BUCKET: 'b-bucket',
        }),
        setup,
        () => undefined,
      ),
      (e: unknown) => isUsageError(e) && /team-a\/typo/.test(e.message),
    );
  });

  it('verify-only without the names it checks: exit 2 naming the settings', async () => {
    await assert.rejects(
      connectLiveTarget(
        loadConfig({ IRSA_TARGET: 'live', IRSA_KUBECONFIG: api.kubeconfigPath, IRSA_LIVE_MODE: 'verify-only' }),
        setup,
        () => undefined,
      ),
      (e: unknown) =>
        isUsageError(e) && /IRSA_VERIFY_ROLE_ARN/.test(e.message) && /IRSA_VERIFY_DENIED_BUCKET/.test(e.message),
    );
  });
});

describe('a plain cluster without a pod identity webhook', () => {
  let api: FakeKubeApi;
  before(async () => {
    api = await FakeKubeApi.start({
      'GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations': { body: { items: [] } },
      'POST /api/v1/namespaces/default/serviceaccounts/default/token': tokenRequestRoute(
        () => 'https://kubernetes.default.svc',
      ),
    });
  });
  after(async () => {
    await api.stop();
  });
  const env = (extra: Record<string, string>) =>
    loadConfig({ IRSA_TARGET: 'live', IRSA_KUBECONFIG: api.kubeconfigPath, IRSA_AWS_ACCOUNT_ID: ACCOUNT, ...extra });

  it('provision without an image setting: the pinned upstream release from the ECR Public gallery', async () => {
    const t = await connectLiveTarget(env({}), setup, () => undefined);
    const w = t.descriptor.webhook;
    assert.equal(w.mode, 'harness-service');
    if (w.mode !== 'harness-service') return;
    const pinned = defaultImages(setup).webhook;
    assert.equal(w.deploy?.image, pinned);
    assert.match(pinned, /\/eks\/amazon-eks-pod-identity-webhook:v\d+\.\d+\.\d+$/);
    assert.equal(t.descriptor.webhookVersion, readVersions().POD_IDENTITY_WEBHOOK_VERSION);
    const d = t.descriptor.detected?.find((v) => v.name === 'webhook image (deployed)');
    assert.deepEqual([d?.value, d?.source], [pinned, 'default (support/targets/docker/images.ts)']);
    assert.equal(t.descriptor.podTemplate, undefined, "pods use the setup's image");
    await t.stop();
  });

  it('every image the cluster pulls has a setting: IRSA_IMAGE_WEBHOOK, IRSA_IMAGE_APP', async () => {
    const t = await connectLiveTarget(
      env({
        IRSA_IMAGE_WEBHOOK: 'mirror.example:5000/eks/amazon-eks-pod-identity-webhook:v0.6.18',
        IRSA_IMAGE_APP: 'mirror.example:5000/amazon/aws-cli:2.27.50',
      }),
      setup,
      () => undefined,
    );
    const w = t.descriptor.webhook;
    assert.equal(
      w.mode === 'harness-service' ? w.deploy?.image : '',
      'mirror.example:5000/eks/amazon-eks-pod-identity-webhook:v0.6.18',
    );
    assert.equal(t.descriptor.webhookVersion, 'v0.6.18');
    assert.deepEqual(t.descriptor.podTemplate, { image: 'mirror.example:5000/amazon/aws-cli:2.27.50' });
    const app = t.descriptor.detected?.find((v) => v.name === 'app image');
    assert.deepEqual([app?.value, app?.source], ['mirror.example:5000/amazon/aws-cli:2.27.50', 'setting images.app']);
    await t.stop();
  });

  it('an image setting that is not an image reference: exit 2 before connecting', async () => {
    await assert.rejects(
      connectLiveTarget(env({ IRSA_IMAGE_VERIFY: 'Not An Image' }), setup, () => undefined),
      (e: unknown) =>
        isUsageError(e) && /^invalid setting images\.verify: "Not An Image" is not an image/.test(e.message),
    );
  });

  it('provision with an image: the harness deploys the webhook at provisioning, with the dialect as flags', async () => {
    const t = await connectLiveTarget(
      env({ IRSA_WEBHOOK_IMAGE: 'registry.example/pod-identity-webhook:v0.6.17', IRSA_AUDIENCE: 'sts.example' }),
      setup,
      () => undefined,
    );
    const w = t.descriptor.webhook;
    assert.equal(w.mode, 'harness-service');
    if (w.mode !== 'harness-service') return;
    assert.equal(w.namespace, 'irsa-pod-identity-webhook');
    assert.equal(w.deploy?.image, 'registry.example/pod-identity-webhook:v0.6.17');
    assert.equal(w.deploy?.flags['token-audience'], 'sts.example');
    assert.equal(t.descriptor.webhookVersion, 'v0.6.17');
    assert.deepEqual(t.descriptor.issuer, { mode: 'read-only', issuer: 'https://kubernetes.default.svc' });
    await t.stop();
  });
});
