/**
 * Verify-only never writes:
 *  - structurally: AWS clients of a read-only target refuse every non-read command before it
 *    leaves the process (real SDK clients against a recording server on 127.0.0.1), and the
 *    KubeConfig refuses Kubernetes writes except TokenRequests and one pod in the named namespace;
 *  - by construction: discovering the infrastructure, probing capabilities and the verify-only
 *    checks issue only reads and the token exchange (asserted on aws-sdk-client-mock mocks, which
 *    replace send() and so see what the code asks for, guard or not).
 * The cases that need no child process or listener are test/unit/live-verify-only.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  CreateOpenIDConnectProviderCommand,
  CreateRoleCommand,
  DeleteOpenIDConnectProviderCommand,
  GetOpenIDConnectProviderCommand,
  GetRoleCommand,
  IAMClient,
  ListOpenIDConnectProvidersCommand,
  ListRolesCommand,
} from '@aws-sdk/client-iam';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { AssumeRoleWithWebIdentityCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { readTrustPolicy } from '../../support/aws/iam.ts';
import { exchangeToken } from '../../support/aws/sts.ts';
import { probeCapabilities } from '../../support/capabilities.ts';
import { type Clients, createClients } from '../../support/clients.ts';
import { loadConfig } from '../../support/config.ts';
import { requestServiceAccountToken } from '../../support/kube/tokens.ts';
import { Ledger } from '../../support/ledger.ts';
import { buildDiscoveryDocument } from '../../support/oidc/discovery.ts';
import { buildJwks } from '../../support/oidc/jwks.ts';
import { repoRoot } from '../../support/paths.ts';
import type { ProvisionContext } from '../../support/provision/context.ts';
import { discoverInfrastructure } from '../../support/provision/discover.ts';
import {
  guardKubeConfig,
  isReadOnlyAwsCommand,
  ReadOnlyViolation,
  readOnlyAwsClient,
} from '../../support/read-only.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { UPSTREAM_DEFAULT_DIALECT } from '../../support/targets/dialect.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';
import { listBucketAs } from '../../support/verify/bucket.ts';
import { FakeKubeApi, rsaPublicKey, tokenRequestRoute } from '../support/live-fake-kube.ts';

const mockS3 = () => mockClient(S3Client);
const mockIam = () => mockClient(IAMClient);
const mockSts = () => mockClient(STSClient);
const ACCOUNT = '111122223333';
const fakeCredentials = { accessKeyId: 'AKIAFAKEFAKEFAKE', secretAccessKey: 'not-a-real-secret-for-tests' };

function descriptor(api: FakeKubeApi, readOnly: TargetDescriptor['readOnly']): TargetDescriptor {
  return {
    name: 'live',
    envId: 'test',
    kubeconfigPath: api.kubeconfigPath,
    aws: {
      region: 'us-east-1',
      endpoint: api.url,
      forcePathStyle: true,
      accountId: ACCOUNT,
      credentials: fakeCredentials,
    },
    podAwsEnv: {},
    issuer: { mode: 'read-only', issuer: `${api.url}/irsa-oidc-prod` },
    webhook: { mode: 'existing', configurationName: 'pod-identity-webhook' },
    dialect: UPSTREAM_DEFAULT_DIALECT,
    podRoot: '',
    logs: {},
    ...(readOnly ? { readOnly } : {}),
  };
}

describe('read-only AWS clients refuse writes before they leave the process', () => {
  let server: http.Server;
  let endpoint: string;
  const seen: string[] = [];
  before(async () => {
    server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end('<Response/>');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  afterEach(() => {
    seen.length = 0;
  });
  const opts = () => ({ region: 'us-east-1', endpoint, credentials: fakeCredentials, maxAttempts: 1 });

  it('S3: CreateBucket, PutObject, PutBucketPolicy, DeleteBucket are refused; GetObject is sent', async () => {
    const s3 = readOnlyAwsClient(new S3Client({ ...opts(), forcePathStyle: true }));
    for (const cmd of [
      new CreateBucketCommand({ Bucket: 'b' }),
      new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: 'x' }),
      new PutBucketPolicyCommand({ Bucket: 'b', Policy: '{}' }),
      new DeleteBucketCommand({ Bucket: 'b' }),
    ]) {
      await assert.rejects(s3.send(cmd as never), ReadOnlyViolation);
    }
    assert.deepEqual(seen, [], 'no write reached the server');
    await s3.send(new GetObjectCommand({ Bucket: 'b', Key: 'k' })).catch(() => undefined);
    assert.deepEqual(seen, ['GET /b/k?x-id=GetObject']);
  });

  it('IAM: CreateRole and DeleteOpenIDConnectProvider are refused; ListRoles is sent', async () => {
    const iam = readOnlyAwsClient(new IAMClient(opts()));
    await assert.rejects(
      iam.send(new CreateRoleCommand({ RoleName: 'r', AssumeRolePolicyDocument: '{}' })),
      ReadOnlyViolation,
    );
    await assert.rejects(
      iam.send(
        new DeleteOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: `arn:aws:iam::${ACCOUNT}:oidc-provider/x` }),
      ),
      /verify-only: refused to send IAM DeleteOpenIDConnectProvider/,
    );
    assert.deepEqual(seen, []);
    await iam.send(new ListRolesCommand({})).catch((e: unknown) => assert.ok(!(e instanceof ReadOnlyViolation)));
    assert.equal(seen.length, 1);
  });

  it('STS: AssumeRoleWithWebIdentity is sent (it changes nothing)', async () => {
    const sts = readOnlyAwsClient(new STSClient(opts()));
    await sts
      .send(
        new AssumeRoleWithWebIdentityCommand({
          RoleArn: `arn:aws:iam::${ACCOUNT}:role/r`,
          RoleSessionName: 's',
          WebIdentityToken: 'x.y.z',
        }),
      )
      .catch((e: unknown) => assert.ok(!(e instanceof ReadOnlyViolation)));
    assert.equal(seen.length, 1);
  });
});

describe('a read-only KubeConfig', () => {
  let api: FakeKubeApi;
  before(async () => {
    api = await FakeKubeApi.start({
      'POST /api/v1/namespaces/team-a/serviceaccounts/app/token': tokenRequestRoute(() => 'https://issuer.test'),
      'POST /api/v1/namespaces/team-a/pods': { status: 201, body: { metadata: { name: 'p', namespace: 'team-a' } } },
      'DELETE /api/v1/namespaces/team-a/pods/p': { body: { metadata: { name: 'p' } } },
    });
  });
  after(async () => {
    await api.stop();
  });

  it('refuses writes, lets TokenRequests and the one pod through', async () => {
    const c = createClients(descriptor(api, { podNamespace: 'team-a' }));
    try {
      await assert.rejects(c.core.createNamespace({ body: { metadata: { name: 'x' } } }), ReadOnlyViolation);
      await assert.rejects(
        c.core.createNamespacedPod({ namespace: 'team-b', body: { metadata: { name: 'p' } } }),
        ReadOnlyViolation,
      );
      await assert.rejects(
        c.admission.deleteMutatingWebhookConfiguration({ name: 'pod-identity-webhook' }),
        ReadOnlyViolation,
      );
      assert.deepEqual(api.writes(), [], 'no refused request reached the API server');
      await c.core.createNamespacedServiceAccountToken({
        namespace: 'team-a',
        name: 'app',
        body: { spec: { audiences: ['sts.amazonaws.com'] } },
      });
      await c.core.createNamespacedPod({ namespace: 'team-a', body: { metadata: { name: 'p' } } });
      await c.core.deleteNamespacedPod({ namespace: 'team-a', name: 'p' });
      assert.deepEqual(
        api.writes().map((r) => `${r.method} ${r.path}`),
        [
          'POST /api/v1/namespaces/team-a/serviceaccounts/app/token',
          'POST /api/v1/namespaces/team-a/pods',
          'DELETE /api/v1/namespaces/team-a/pods/p',
        ],
      );
    } finally {
      c.destroy();
    }
  });

  it('guardKubeConfig works on any KubeConfig (the coordinator and every worker build their own)', async () => {
    const c = createClients(descriptor(api, undefined));
    try {
      guardKubeConfig(c.kc, {});
      const { CoreV1Api } = await import('@kubernetes/client-node');
      await assert.rejects(
        c.kc.makeApiClient(CoreV1Api).createNamespacedPod({ namespace: 'team-a', body: { metadata: { name: 'p' } } }),
        ReadOnlyViolation,
      );
    } finally {
      c.destroy();
    }
  });
});

describe('verify-only issues no write (recorded AWS answers)', () => {
  let api: FakeKubeApi;
  let clients: Clients;
  let ctx: ProvisionContext;
  let dir: string;
  // Created in before(): a mock replaces send() of every client of its class, and the tests above use real ones.
  let iam: ReturnType<typeof mockIam>;
  let s3: ReturnType<typeof mockS3>;
  let sts: ReturnType<typeof mockSts>;
  const key = rsaPublicKey();
  const logs: string[] = [];
  let issuer: string;
  let document: Record<string, unknown>;
  let jwks: unknown;
  let publicDocs = true;

  before(async () => {
    iam = mockIam();
    s3 = mockS3();
    sts = mockSts();
    api = await FakeKubeApi.start({
      'POST /api/v1/namespaces/default/serviceaccounts/default/token': tokenRequestRoute(() => issuer),
      'POST /api/v1/namespaces/team-a/serviceaccounts/app/token': tokenRequestRoute(() => issuer),
      'GET /openid/v1/jwks': () => ({ body: buildJwks([key]) }),
      'GET /api/v1/nodes': {
        body: { items: [{ metadata: { name: 'n1' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } }] },
      },
    });
    issuer = `${api.url}/irsa-oidc-prod`;
    document = { ...buildDiscoveryDocument(issuer) };
    jwks = buildJwks([key], { duplicateWithEmptyKid: true });
    api.route('GET /irsa-oidc-prod/.well-known/openid-configuration', () =>
      publicDocs ? { body: document } : { status: 403, body: '<Error><Code>AccessDenied</Code></Error>' },
    );
    api.route('GET /irsa-oidc-prod/keys.json', () =>
      publicDocs ? { body: jwks } : { status: 403, body: '<Error><Code>AccessDenied</Code></Error>' },
    );
    const d = descriptor(api, { podNamespace: 'team-a' });
    clients = createClients(d);
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-verify-test-'));
    ctx = {
      clients,
      target: d,
      setup: loadSetup(path.join(repoRoot, 'fixtures/setups/default')),
      config: loadConfig({
        IRSA_TARGET: 'live',
        IRSA_LIVE_MODE: 'verify-only',
        IRSA_VERIFY_NAMESPACE: 'team-a',
        IRSA_VERIFY_SERVICE_ACCOUNT: 'app',
        IRSA_VERIFY_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/app`,
        IRSA_VERIFY_ALLOWED_BUCKET: 'team-a-data',
        IRSA_VERIFY_DENIED_BUCKET: 'team-b-data',
      }),
      runId: 'ic000001',
      ledger: new Ledger(path.join(dir, 'ledger.jsonl')),
      scope: 'run',
      log: (l) => logs.push(l),
    };
    const hostPath = issuer.replace(/^http:\/\//, '');
    iam.on(ListOpenIDConnectProvidersCommand).resolves({
      OpenIDConnectProviderList: [
        { Arn: `arn:aws:iam::${ACCOUNT}:oidc-provider/oidc.eks.example/other` },
        { Arn: `arn:aws:iam::${ACCOUNT}:oidc-provider/${hostPath}` },
      ],
    });
    iam.on(GetOpenIDConnectProviderCommand).resolves({ Url: hostPath, ClientIDList: ['sts.amazonaws.com'] });
    iam.on(GetRoleCommand).resolves({
      Role: {
        RoleName: 'app',
        Arn: `arn:aws:iam::${ACCOUNT}:role/app`,
        Path: '/',
        RoleId: 'AROAEXAMPLE',
        CreateDate: new Date(),
        AssumeRolePolicyDocument: encodeURIComponent(JSON.stringify({ Version: '2012-10-17', Statement: [] })),
      },
    });
    sts.on(AssumeRoleWithWebIdentityCommand).resolves({
      Credentials: {
        AccessKeyId: 'ASIAFAKEFAKEFAKE',
        SecretAccessKey: 'fake-secret-access-key-for-tests',
        SessionToken: 'fake-session-token-for-tests',
        Expiration: new Date(Date.now() + 900_000),
      },
      AssumedRoleUser: {
        Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/app/irsa-conformance-verify`,
        AssumedRoleId: 'AROA:x',
      },
    });
    sts.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT, Arn: `arn:aws:iam::${ACCOUNT}:user/ops` });
    s3.on(ListObjectsV2Command, { Bucket: 'team-a-data' }).resolves({ KeyCount: 1 });
    s3.on(ListObjectsV2Command, { Bucket: 'team-b-data' }).rejects(
      new S3ServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        $metadata: { httpStatusCode: 403 },
        message: 'Access Denied',
      }),
    );
    s3.on(GetObjectCommand).callsFake((input: { Key: string }) => ({
      Body: { transformToString: async () => JSON.stringify(input.Key === 'keys.json' ? jwks : document) },
    }));
  });
  after(async () => {
    iam.restore();
    s3.restore();
    sts.restore();
    clients.destroy();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function assertOnlyReads(): string[] {
    const calls = [...iam.calls(), ...s3.calls(), ...sts.calls()].map(
      (c) => (c.args[0] as { constructor: { name: string } }).constructor.name,
    );
    const writes = calls.filter((n) => !isReadOnlyAwsCommand(n));
    assert.deepEqual(writes, [], `verify-only issued AWS writes: ${writes.join(', ')}`);
    const kubeWrites = api
      .writes()
      .filter((r) => !/\/serviceaccounts\/[^/]+\/token$/.test(r.path))
      .map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(kubeWrites, [], 'no Kubernetes write but TokenRequests');
    return [...new Set(calls)].sort();
  }

  it('discovers the existing infrastructure from reads only', async () => {
    const record = await discoverInfrastructure(ctx);
    assert.equal(record.issuer, issuer);
    assert.equal(record.discoveryBucket, 'irsa-oidc-prod');
    assert.equal(record.identityProviderArn, `arn:aws:iam::${ACCOUNT}:oidc-provider/${issuer.replace('http://', '')}`);
    assert.deepEqual(record.clientIds, ['sts.amazonaws.com']);
    assert.equal(record.webhookConfigurationName, 'pod-identity-webhook');
    assert.deepEqual(record.discoveryDocument, document);
    assert.deepEqual(record.jwks, jwks);
    assert.equal(record.clusterKeySource, '/openid/v1/jwks');
    assert.deepEqual(record.created, []);
    assert.deepEqual(assertOnlyReads(), ['GetOpenIDConnectProviderCommand', 'ListOpenIDConnectProvidersCommand']);
  });

  it('documents that are not public: read with the admin credentials (a read), the finding logged', async () => {
    publicDocs = false;
    try {
      const record = await discoverInfrastructure(ctx);
      assert.deepEqual(record.discoveryDocument, document, 'the checks still see the document');
      assert.ok(
        logs.some((l) => /returned HTTP 403/.test(l) && /admin credentials/.test(l)),
        logs.join('\n'),
      );
      assert.ok(assertOnlyReads().includes('GetObjectCommand'));
    } finally {
      publicDocs = true;
    }
  });

  it('an identity provider that does not exist reads as its expected ARN (the checks then name it)', async () => {
    const providers = await clients.iam.send(new ListOpenIDConnectProvidersCommand({}));
    iam.on(ListOpenIDConnectProvidersCommand).resolves({ OpenIDConnectProviderList: [] });
    try {
      const record = await discoverInfrastructure(ctx);
      assert.match(record.identityProviderArn, /:oidc-provider\/127\.0\.0\.1:\d+\/irsa-oidc-prod$/);
      assert.deepEqual(record.clientIds, []);
      assert.ok(logs.some((l) => /no IAM OIDC identity provider/.test(l)));
      assertOnlyReads();
    } finally {
      iam.on(ListOpenIDConnectProvidersCommand).resolves(providers);
    }
  });

  it('the checks of the named ServiceAccount and role: token, trust policy, STS, both buckets', async () => {
    const subject = { namespace: 'team-a', serviceAccount: 'app' };
    const token = await requestServiceAccountToken(clients, subject, 'sts.amazonaws.com');
    await readTrustPolicy(clients, 'app');
    const session = await exchangeToken(clients, token, `arn:aws:iam::${ACCOUNT}:role/app`);
    assert.equal(session.assumedRoleArn, `arn:aws:sts::${ACCOUNT}:assumed-role/app/irsa-conformance-verify`);
    assert.deepEqual(await listBucketAs(clients, ctx.target, session, 'team-a-data'), { ok: true, keys: 1 });
    const denied = await listBucketAs(clients, ctx.target, session, 'team-b-data');
    assert.equal(denied.ok, false);
    assert.equal(denied.ok === false && denied.code, 'AccessDenied');
    const used = assertOnlyReads();
    for (const c of ['GetRoleCommand', 'AssumeRoleWithWebIdentityCommand', 'ListObjectsV2Command'])
      assert.ok(used.includes(c), c);
  });

  it('the capability probes of a verify-only run', async () => {
    const matrix = await probeCapabilities({
      clients,
      target: ctx.target,
      config: ctx.config,
      runId: ctx.runId,
      ledger: ctx.ledger,
      issuer,
      log: () => undefined,
    });
    assert.equal(matrix['writes-allowed'].available, false);
    assert.equal(matrix['runs-pods'].available, true);
    assertOnlyReads();
    assert.deepEqual(ctx.ledger.outstanding(), [], 'nothing was created');
  });

  it('the mocks would have caught a write (the assertion can fail)', async () => {
    iam.on(CreateOpenIDConnectProviderCommand).resolves({});
    await clients.iam.send(new CreateOpenIDConnectProviderCommand({ Url: 'https://x', ClientIDList: [] }));
    assert.throws(() => assertOnlyReads(), /CreateOpenIDConnectProvider/);
    iam.resetHistory();
  });
});
