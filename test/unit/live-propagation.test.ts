/**
 * Real-world timing: IAM eventual consistency. Retries on the named propagation error codes (and
 * throttling) only, with the waited time reported; anything else fails at once; a deadline bounds
 * the wait. Recorded AWS answers (aws-sdk-client-mock).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  CreateOpenIDConnectProviderCommand,
  GetOpenIDConnectProviderCommand,
  IAMClient,
  NoSuchEntityException,
} from '@aws-sdk/client-iam';
import {
  AssumeRoleWithWebIdentityCommand,
  ExpiredTokenException,
  InvalidIdentityTokenException,
  STSClient,
} from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { awsErrorName, isAwsError } from '../../support/aws/errors.ts';
import { retryIamPropagation } from '../../support/aws/propagation.ts';
import { loadConfig } from '../../support/config.ts';
import { OperationTimeout } from '../../support/errors.ts';
import { Ledger } from '../../support/ledger.ts';
import { repoRoot } from '../../support/paths.ts';
import type { ProvisionContext } from '../../support/provision/context.ts';
import { createIdentityProvider } from '../../support/provision/infrastructure.ts';
import { loadSetup } from '../../support/setup/setup.ts';

const mockIam = () => mockClient(IAMClient);
const mockSts = () => mockClient(STSClient);
const ROLE = 'arn:aws:iam::111122223333:role/app';
// As the SDK builds them from an STS/IAM answer: the modelled class, and the wire code in Code.
const notYet = () =>
  Object.assign(
    new InvalidIdentityTokenException({
      message: 'No OpenIDConnect provider found in your account for https://oidc.example/x',
      $metadata: { httpStatusCode: 400 },
    }),
    { Code: 'InvalidIdentityToken' },
  );
const credentials = {
  AccessKeyId: 'ASIAFAKE',
  SecretAccessKey: 'fake-secret-for-tests',
  SessionToken: 'fake-token-for-tests',
  Expiration: new Date(),
};

describe('retryIamPropagation', () => {
  let sts: ReturnType<typeof mockSts>;
  before(() => {
    sts = mockSts();
  });
  afterEach(() => sts.reset());
  after(() => sts.restore());
  const assume = () =>
    new STSClient({ region: 'us-east-1' }).send(
      new AssumeRoleWithWebIdentityCommand({ RoleArn: ROLE, RoleSessionName: 's', WebIdentityToken: 'x.y.z' }),
    );

  it('retries a new provider that STS does not know yet, and reports the wait', async () => {
    sts
      .on(AssumeRoleWithWebIdentityCommand)
      .rejectsOnce(notYet())
      .rejectsOnce(notYet())
      .resolves({ Credentials: credentials });
    const lines: string[] = [];
    const out = await retryIamPropagation(assume, {
      operation: 'AssumeRoleWithWebIdentity for app',
      timeoutSeconds: 10,
      initialDelayMs: 10,
      log: (l) => lines.push(l),
    });
    assert.equal(out.attempts, 3);
    assert.deepEqual(out.errors, ['InvalidIdentityToken', 'InvalidIdentityToken']);
    assert.ok(out.waitedMs >= 10);
    assert.equal(lines.length, 1);
    assert.match(lines[0] as string, /succeeded after 3 attempts, \d+\.\d s waited \(InvalidIdentityToken\)/);
    assert.equal(sts.commandCalls(AssumeRoleWithWebIdentityCommand).length, 3);
  });

  it('does not retry an error that is not about propagation, and reports nothing when there was no wait', async () => {
    sts.on(AssumeRoleWithWebIdentityCommand).rejects(new ExpiredTokenException({ message: 'expired', $metadata: {} }));
    const lines: string[] = [];
    await assert.rejects(
      retryIamPropagation(assume, {
        operation: 'x',
        timeoutSeconds: 10,
        initialDelayMs: 10,
        log: (l) => lines.push(l),
      }),
      (e: unknown) => (e as Error).name === 'ExpiredTokenException',
    );
    assert.equal(sts.commandCalls(AssumeRoleWithWebIdentityCommand).length, 1);
    sts.reset();
    sts.on(AssumeRoleWithWebIdentityCommand).resolves({ Credentials: credentials });
    await retryIamPropagation(assume, { operation: 'x', timeoutSeconds: 10, log: (l) => lines.push(l) });
    assert.deepEqual(lines, []);
  });

  it('retries only the codes it is given', async () => {
    sts.on(AssumeRoleWithWebIdentityCommand).rejects(notYet());
    await assert.rejects(
      retryIamPropagation(assume, { operation: 'x', timeoutSeconds: 10, codes: ['NoSuchEntity'], initialDelayMs: 10 }),
      InvalidIdentityTokenException,
    );
    assert.equal(sts.commandCalls(AssumeRoleWithWebIdentityCommand).length, 1);
  });

  it('gives up at its deadline with an OperationTimeout naming the operation, the last error as cause', async () => {
    sts.on(AssumeRoleWithWebIdentityCommand).rejects(notYet());
    await assert.rejects(
      retryIamPropagation(assume, {
        operation: 'AssumeRoleWithWebIdentity for app',
        timeoutSeconds: 1,
        initialDelayMs: 100,
      }),
      (e: unknown) =>
        e instanceof OperationTimeout &&
        /AssumeRoleWithWebIdentity for app/.test(e.message) &&
        awsErrorName(e.cause) === 'InvalidIdentityToken',
    );
  });
});

describe('AWS error names', () => {
  it('a modelled IAM/STS error is known by its wire code (and still matches its class name)', () => {
    const e = notYet();
    assert.equal(awsErrorName(e), 'InvalidIdentityToken');
    assert.ok(isAwsError(e, 'InvalidIdentityToken'));
    assert.ok(isAwsError(e, 'InvalidIdentityTokenException'));
    const bare = new NoSuchEntityException({ message: 'x', $metadata: {} });
    assert.ok(isAwsError(bare, 'NoSuchEntity'), 'without Code, the class name without "Exception"');
    assert.ok(!isAwsError(e, 'NoSuchEntity'));
  });
});

describe('createIdentityProvider reads the new provider back through IAM propagation', () => {
  let iam: ReturnType<typeof mockIam>;
  let dir: string;
  before(() => {
    iam = mockIam();
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-propagation-test-'));
  });
  after(() => {
    iam.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  it('NoSuchEntity right after the create is waited out; the provider is in the ledger first', async () => {
    const arn = 'arn:aws:iam::111122223333:oidc-provider/oidc.example/x';
    iam.on(CreateOpenIDConnectProviderCommand).resolves({ OpenIDConnectProviderArn: arn });
    iam
      .on(GetOpenIDConnectProviderCommand)
      .rejectsOnce(
        Object.assign(new NoSuchEntityException({ message: 'not found', $metadata: { httpStatusCode: 404 } }), {
          Code: 'NoSuchEntity',
        }),
      )
      .resolves({ Url: 'oidc.example/x', ClientIDList: ['sts.amazonaws.com'] });
    const lines: string[] = [];
    const ledger = new Ledger(path.join(dir, 'ledger.jsonl'));
    const ctx = {
      clients: { iam: new IAMClient({ region: 'us-east-1' }) },
      setup: loadSetup(path.join(repoRoot, 'fixtures/setups/default')),
      config: loadConfig({}),
      runId: 'ic000002',
      ledger,
      scope: 'run',
      log: (l: string) => lines.push(l),
    } as unknown as ProvisionContext;
    const idp = await createIdentityProvider(ctx, 'https://oidc.example/x');
    assert.deepEqual(idp, { arn, url: 'oidc.example/x', clientIds: ['sts.amazonaws.com'] });
    assert.equal(iam.commandCalls(GetOpenIDConnectProviderCommand).length, 2);
    assert.deepEqual(
      ledger.outstanding().map((e) => e.ref),
      [{ kind: 'iam-oidc-provider', arn }],
    );
    assert.ok(
      lines.some((l) => /IAM propagation: reading back identity provider .* succeeded after 2 attempts/.test(l)),
      lines.join('\n'),
    );
  });
});
