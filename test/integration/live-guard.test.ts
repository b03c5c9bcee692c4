/**
 * The live target's guard: the AWS account of the credentials must be the confirmed one before
 * anything is written, with both ids in the refusal; provision mode refuses without confirmation.
 * Recorded AWS answers (aws-sdk-client-mock) and a fake Kubernetes API on 127.0.0.1.
 * The cases that need no child process or listener are test/unit/live-guard.test.ts.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../support/config.ts';
import { isUsageError } from '../../support/errors.ts';
import { repoRoot } from '../../support/paths.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { connectLiveTarget } from '../../support/targets/live/index.ts';
import { FakeKubeApi, tokenRequestRoute } from '../support/live-fake-kube.ts';

const caller = { account: '111122223333', arn: 'arn:aws:iam::111122223333:user/alice' };

describe('connectLiveTarget: the guard before anything else', () => {
  let api: FakeKubeApi;
  const sts = mockClient(STSClient);
  const setup = loadSetup(path.join(repoRoot, 'fixtures/setups/default'));
  const issuer = 'https://oidc.example.test/cluster';

  before(async () => {
    api = await FakeKubeApi.start({
      'POST /api/v1/namespaces/default/serviceaccounts/default/token': tokenRequestRoute(() => issuer),
      'GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations': {
        body: {
          items: [
            {
              metadata: { name: 'pod-identity-webhook' },
              webhooks: [{ name: 'iam-for-pods.amazonaws.com', clientConfig: { url: 'https://webhook.test/mutate' } }],
            },
          ],
        },
      },
    });
  });
  afterEach(() => {
    sts.reset();
    api.requests.length = 0;
  });
  after(async () => {
    sts.restore();
    await api.stop();
  });

  const config = (extra: Record<string, string>) =>
    loadConfig({ IRSA_TARGET: 'live', IRSA_KUBECONFIG: api.kubeconfigPath, IRSA_REGION: 'eu-west-1', ...extra });

  it('mismatch: refuses with both ids before the cluster is asked anything', async () => {
    sts.on(GetCallerIdentityCommand).resolves({ Account: caller.account, Arn: caller.arn });
    await assert.rejects(
      connectLiveTarget(config({ IRSA_AWS_ACCOUNT_ID: '444455556666' }), setup, () => undefined),
      (e: unknown) => isUsageError(e) && /111122223333/.test(e.message) && /444455556666/.test(e.message),
    );
    assert.equal(sts.commandCalls(GetCallerIdentityCommand).length, 1);
    assert.deepEqual(api.requests, [], 'no request reached the cluster');
  });

  it('no confirmation in provision mode: refuses', async () => {
    sts.on(GetCallerIdentityCommand).resolves({ Account: caller.account, Arn: caller.arn });
    await assert.rejects(
      connectLiveTarget(config({}), setup, () => undefined),
      isUsageError,
    );
    assert.deepEqual(api.requests, []);
  });

  it('no credentials at all: a UsageError naming the default chain', async () => {
    sts
      .on(GetCallerIdentityCommand)
      .rejects(
        Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }),
      );
    await assert.rejects(
      connectLiveTarget(config({ IRSA_AWS_ACCOUNT_ID: caller.account }), setup, () => undefined),
      (e: unknown) => isUsageError(e) && /AWS_PROFILE/.test(e.hint),
    );
  });

  it('match: proceeds, describes the target and writes nothing', async () => {
    sts.on(GetCallerIdentityCommand).resolves({ Account: caller.account, Arn: caller.arn });
    const t = await connectLiveTarget(config({ IRSA_AWS_ACCOUNT_ID: caller.account }), setup, () => undefined);
    try {
      const d = t.descriptor;
      assert.equal(d.name, 'live');
      assert.equal(d.aws.accountId, caller.account);
      assert.equal(d.aws.region, 'eu-west-1');
      assert.equal(d.aws.endpoint, undefined, 'real AWS: no endpoint override');
      assert.equal(d.aws.credentials, undefined, 'the AWS default credential chain');
      assert.deepEqual(d.issuer, { mode: 'read-only', issuer });
      assert.deepEqual(d.webhook, { mode: 'existing', configurationName: 'pod-identity-webhook' });
      assert.equal(d.podRoot, '');
      assert.deepEqual(d.podAwsEnv, {});
      assert.equal(d.readOnly, undefined, 'provision mode is not read-only');
      assert.ok(d.detected?.some((v) => v.name === 'API server' && v.value === api.url));
      // Connecting reads; the only POST is the TokenRequest that shows the issuer (nothing is stored).
      assert.deepEqual(
        api.writes().map((r) => `${r.method} ${r.path}`),
        ['POST /api/v1/namespaces/default/serviceaccounts/default/token'],
      );
    } finally {
      await t.stop();
    }
  });
});
