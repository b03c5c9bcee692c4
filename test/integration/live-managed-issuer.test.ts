/**
 * Managed issuers (issue 15, item 5): on EKS, and any cluster whose issuer already serves its own
 * discovery documents (AKS, GKE, OpenShift in STS mode, an S3 issuer set up earlier), provision
 * mode uses that issuer and the account's identity provider instead of publishing documents the
 * issuer does not name. Here: the decision, and an EKS-shaped cluster (a fake Kubernetes API with
 * EKS's webhook registration and issuer) reaching the live target's description. The provisioning
 * on a managed issuer runs end to end in test/integration/live-embedded.test.ts.
 * The cases that need no child process or listener are test/unit/live-managed-issuer.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../support/config.ts';
import { repoRoot } from '../../support/paths.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { connectLiveTarget } from '../../support/targets/live/index.ts';
import { FakeKubeApi, tokenRequestRoute } from '../support/live-fake-kube.ts';

const ACCOUNT = '111122223333';
const EKS_ISSUER = 'https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE';

describe('an EKS-shaped cluster', () => {
  let api: FakeKubeApi;
  const sts = mockClient(STSClient);
  const setup = loadSetup(`${repoRoot}/fixtures/setups/default`);
  before(async () => {
    sts.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT, Arn: `arn:aws:iam::${ACCOUNT}:role/ops` });
    // What EKS has: the webhook registered with a URL into the control plane (no Deployment to
    // read), and tokens whose issuer is the cluster's OIDC endpoint.
    api = await FakeKubeApi.start({
      'GET /version': { body: { gitVersion: 'v1.33.4-eks-1234567' } },
      'GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations': {
        body: {
          items: [
            {
              metadata: { name: 'pod-identity-webhook' },
              webhooks: [
                {
                  name: 'iam-for-pods.amazonaws.com',
                  clientConfig: { url: 'https://127.0.0.1:23443/mutate', caBundle: 'LS0t' },
                  admissionReviewVersions: ['v1beta1'],
                  sideEffects: 'None',
                  failurePolicy: 'Ignore',
                  rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
                },
              ],
            },
          ],
        },
      },
      'POST /api/v1/namespaces/default/serviceaccounts/default/token': tokenRequestRoute(() => EKS_ISSUER),
    });
  });
  after(async () => {
    sts.restore();
    await api.stop();
  });

  it('provision with IRSA_LIVE_ISSUER=managed: the EKS issuer and webhook are used as they are', async () => {
    const config = loadConfig({
      IRSA_TARGET: 'live',
      IRSA_KUBECONFIG: api.kubeconfigPath,
      IRSA_AWS_ACCOUNT_ID: ACCOUNT,
      IRSA_REGION: 'us-west-2',
      IRSA_LIVE_ISSUER: 'managed',
    });
    const t = await connectLiveTarget(config, setup, () => undefined);
    try {
      assert.deepEqual(t.descriptor.issuer, { mode: 'managed', issuer: EKS_ISSUER });
      assert.deepEqual(t.descriptor.webhook, { mode: 'existing', configurationName: 'pod-identity-webhook' });
      const control = t.descriptor.detected?.find((d) => d.name === 'issuer control');
      assert.match(control?.value ?? '', /^managed: /);
      assert.match(control?.source ?? '', /IRSA_LIVE_ISSUER=managed/);
      assert.deepEqual(
        api.writes().map((w) => `${w.method} ${w.path}`),
        ['POST /api/v1/namespaces/default/serviceaccounts/default/token'],
      );
    } finally {
      await t.stop();
    }
  });
});
