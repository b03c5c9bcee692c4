/**
 * The embedded target's AWS emulator launcher (tools/moto/launcher.py) against the real AWS SDK over
 * TLS: IAM enforced for every signed request, AWS's rules for unsigned ones (AssumeRoleWithWebIdentity,
 * public reads), no HTTP 500 under concurrent mixed traffic, no secret in its log, a clean stop.
 * How AssumeRoleWithWebIdentity validates tokens and trust policies: test/integration/moto-web-identity.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  CreateAccessKeyCommand,
  CreateOpenIDConnectProviderCommand,
  CreateRoleCommand,
  CreateUserCommand,
  GetRoleCommand,
  ListOpenIDConnectProvidersCommand,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  DeletePublicAccessBlockCommand,
  GetBucketAclCommand,
  GetBucketOwnershipControlsCommand,
  GetObjectCommand,
  GetPublicAccessBlockCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutBucketAclCommand,
  PutBucketOwnershipControlsCommand,
  PutBucketPolicyCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { AssumeRoleWithWebIdentityCommand, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { issuerHostPath } from '../../support/oidc/discovery.ts';
import { createSigningIssuer } from '../../support/oidc/signing-issuer.ts';
import {
  type AdminCredentials,
  assertAwsError,
  type Credentials,
  Launcher,
  repo,
  venvPython,
  waitForFile,
} from '../support/moto-fixture.ts';

const region = 'eu-west-1';
const START_TIMEOUT_MS = 60_000;

let moto: Launcher;
let admin: AdminCredentials;
const secrets: string[] = [];

// Fixture names. Bucket A is where the role may write, B where it may not. The public bucket is
// an OIDC issuer: its discovery document and keys are readable by anyone.
const bucketA = 'irsa-launcher-a';
const bucketB = 'irsa-launcher-b';
const publicBucket = 'irsa-launcher-public';
const publicKey = '.well-known/openid-configuration';
let publicBody = '';
const privateKey = 'private/object.txt';
const roleName = 'irsa-launcher-writer';
const roleSession = 'irsa-launcher-session';
const subject = 'system:serviceaccount:ns:sa';
let roleArn = '';
let plainUser: Credentials;
/** Signed by the issuer published in the public bucket, for the role's ServiceAccount. */
let webIdentityToken = '';

function unsignedAssumeRoleWithWebIdentity() {
  return moto.assumeRoleWithWebIdentity({
    RoleArn: roleArn,
    RoleSessionName: roleSession,
    WebIdentityToken: webIdentityToken,
  });
}

before(async () => {
  moto = await Launcher.start(region);
  admin = moto.admin;
  secrets.push(admin.secretAccessKey);

  // Fixtures, made by the administrator.
  const adminS3 = moto.s3(admin);
  for (const Bucket of [bucketA, bucketB, publicBucket]) {
    await adminS3.send(new CreateBucketCommand({ Bucket, CreateBucketConfiguration: { LocationConstraint: region } }));
  }
  const issuer = await createSigningIssuer(`${admin.endpoint}/${publicBucket}`);
  publicBody = JSON.stringify(issuer.discovery);
  await adminS3.send(new PutObjectCommand({ Bucket: publicBucket, Key: publicKey, Body: publicBody }));
  await adminS3.send(
    new PutObjectCommand({ Bucket: publicBucket, Key: 'keys.json', Body: JSON.stringify(issuer.jwks) }),
  );
  await adminS3.send(new PutObjectCommand({ Bucket: publicBucket, Key: privateKey, Body: 'private' }));
  await adminS3.send(new PutObjectCommand({ Bucket: bucketA, Key: privateKey, Body: 'private' }));
  await adminS3.send(
    new PutBucketPolicyCommand({
      Bucket: publicBucket,
      Policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:GetObject',
            Resource: [`arn:aws:s3:::${publicBucket}/.well-known/*`, `arn:aws:s3:::${publicBucket}/keys.json`],
          },
        ],
      }),
    }),
  );
  const adminIam = moto.iam(admin);
  const provider = await adminIam.send(
    new CreateOpenIDConnectProviderCommand({ Url: issuer.issuer, ClientIDList: ['sts.amazonaws.com'] }),
  );
  const role = await adminIam.send(
    new CreateRoleCommand({
      RoleName: roleName,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Federated: provider.OpenIDConnectProviderArn },
            Action: 'sts:AssumeRoleWithWebIdentity',
            Condition: { StringEquals: { [`${issuerHostPath(issuer.issuer)}:sub`]: subject } },
          },
        ],
      }),
    }),
  );
  roleArn = role.Role?.Arn ?? '';
  await adminIam.send(
    new PutRolePolicyCommand({
      RoleName: roleName,
      PolicyName: 'put-into-a',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucketA}/*` }],
      }),
    }),
  );
  webIdentityToken = await issuer.sign({ sub: subject, aud: 'sts.amazonaws.com' });
  secrets.push(webIdentityToken);
  await adminIam.send(new CreateUserCommand({ UserName: 'irsa-launcher-no-policies' }));
  const key = await adminIam.send(new CreateAccessKeyCommand({ UserName: 'irsa-launcher-no-policies' }));
  plainUser = { accessKeyId: key.AccessKey?.AccessKeyId ?? '', secretAccessKey: key.AccessKey?.SecretAccessKey ?? '' };
  secrets.push(plainUser.secretAccessKey);
});

after(async () => {
  await moto?.stop();
});

test('refuses to bind anything but a loopback address', () => {
  const run = spawnSync(
    venvPython(),
    [
      join(repo, 'tools/moto/launcher.py'),
      '--host',
      '0.0.0.0',
      '--port',
      '0',
      '--region',
      region,
      '--admin-credentials-out',
      join(moto.workDir, 'x.json'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(run.status, 2);
  assert.match(run.stderr, /^irsa: --host 0\.0\.0\.0 is not a loopback IP address\nhint: /);
});

test('the credentials file is private to its owner', () => {
  const mode = (statSync(join(moto.workDir, 'admin.json')).mode & 0o777).toString(8);
  assert.equal(mode, '600');
});

test('the administrator can create buckets, objects, roles and OIDC providers', async () => {
  const adminS3 = moto.s3(admin);
  await adminS3.send(
    new CreateBucketCommand({
      Bucket: 'irsa-launcher-admin',
      CreateBucketConfiguration: { LocationConstraint: region },
    }),
  );
  await adminS3.send(new PutObjectCommand({ Bucket: 'irsa-launcher-admin', Key: 'k', Body: 'v' }));
  const object = await adminS3.send(new GetObjectCommand({ Bucket: 'irsa-launcher-admin', Key: 'k' }));
  assert.equal(await object.Body?.transformToString(), 'v');

  const adminIam = moto.iam(admin);
  const role = await adminIam.send(new GetRoleCommand({ RoleName: roleName }));
  assert.equal(role.Role?.Arn, `arn:aws:iam::${admin.accountId}:role/${roleName}`);
  const created = await adminIam.send(
    new CreateOpenIDConnectProviderCommand({
      Url: 'https://oidc.example.test/cluster',
      ClientIDList: ['sts.amazonaws.com'],
      ThumbprintList: ['0'.repeat(40)],
    }),
  );
  const listed = await adminIam.send(new ListOpenIDConnectProvidersCommand({}));
  assert.ok(listed.OpenIDConnectProviderList?.some((p) => p.Arn === created.OpenIDConnectProviderArn));
});

test('an IAM user without policies is denied PutObject and ListBuckets', async () => {
  const userS3 = moto.s3(plainUser);
  await assertAwsError(
    userS3.send(new PutObjectCommand({ Bucket: bucketA, Key: 'denied', Body: 'x' })),
    'AccessDenied',
    403,
  );
  await assertAwsError(userS3.send(new ListBucketsCommand({})), 'AccessDenied', 403);
});

test("an identity policy is evaluated for the action AWS names, where moto's own name differs", async () => {
  // moto checks GET ?publicAccessBlock and ?ownershipControls as s3:ListBucket; AWS as
  // s3:GetBucketPublicAccessBlock and s3:GetBucketOwnershipControls (docs/live.md's verify-only policy).
  const adminS3 = moto.s3(admin);
  await adminS3.send(
    new PutPublicAccessBlockCommand({
      Bucket: bucketB,
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        IgnorePublicAcls: true,
        BlockPublicPolicy: true,
        RestrictPublicBuckets: true,
      },
    }),
  );
  await adminS3.send(
    new PutBucketOwnershipControlsCommand({
      Bucket: bucketB,
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
    }),
  );
  const adminIam = moto.iam(admin);
  const userWith = async (name: string, actions: string[]): Promise<S3Client> => {
    await adminIam.send(new CreateUserCommand({ UserName: name }));
    await adminIam.send(
      new PutUserPolicyCommand({
        UserName: name,
        PolicyName: 'only',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: actions, Resource: `arn:aws:s3:::${bucketB}` }],
        }),
      }),
    );
    const key = await adminIam.send(new CreateAccessKeyCommand({ UserName: name }));
    secrets.push(key.AccessKey?.SecretAccessKey ?? '');
    return moto.s3({
      accessKeyId: key.AccessKey?.AccessKeyId ?? '',
      secretAccessKey: key.AccessKey?.SecretAccessKey ?? '',
    });
  };
  const reader = await userWith('irsa-launcher-bucket-settings', [
    's3:GetBucketPublicAccessBlock',
    's3:GetBucketOwnershipControls',
  ]);
  const block = await reader.send(new GetPublicAccessBlockCommand({ Bucket: bucketB }));
  assert.equal(block.PublicAccessBlockConfiguration?.RestrictPublicBuckets, true);
  const ownership = await reader.send(new GetBucketOwnershipControlsCommand({ Bucket: bucketB }));
  assert.equal(ownership.OwnershipControls?.Rules?.[0]?.ObjectOwnership, 'BucketOwnerEnforced');
  await assertAwsError(reader.send(new ListObjectsV2Command({ Bucket: bucketB })), 'AccessDenied', 403);
  const lister = await userWith('irsa-launcher-bucket-lister', ['s3:ListBucket']);
  await lister.send(new ListObjectsV2Command({ Bucket: bucketB }));
  await assertAwsError(lister.send(new GetPublicAccessBlockCommand({ Bucket: bucketB })), 'AccessDenied', 403);
  await assertAwsError(lister.send(new GetBucketOwnershipControlsCommand({ Bucket: bucketB })), 'AccessDenied', 403);
});

test('a wrong secret is refused with SignatureDoesNotMatch', async () => {
  const forged = moto.s3({ accessKeyId: admin.accessKeyId, secretAccessKey: 'not-the-secret' });
  await assertAwsError(forged.send(new ListBucketsCommand({})), 'SignatureDoesNotMatch', 403);
});

test('a role assumed with a web identity may write only where its policy allows', async () => {
  const assumed = await moto.sts().send(
    new AssumeRoleWithWebIdentityCommand({
      RoleArn: roleArn,
      RoleSessionName: roleSession,
      WebIdentityToken: webIdentityToken,
    }),
  );
  const c = assumed.Credentials;
  assert.ok(c?.AccessKeyId && c.SecretAccessKey && c.SessionToken);
  const role: Credentials = {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretAccessKey,
    sessionToken: c.SessionToken,
  };
  secrets.push(role.secretAccessKey, c.SessionToken);
  // The line names the time, the call, the role and the credentials it issued (diagnostics select
  // a scenario's lines by these), never the token.
  // (logged once the response is sent: give the line a moment to reach the log)
  const issued = new RegExp(
    `\\[moto\\] \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z POST / 200 anonymous sts:AssumeRoleWithWebIdentity RoleArn=\\S+ RoleSessionName=\\S+ -> ${c.AccessKeyId}`,
  );
  for (let i = 0; i < 40 && !issued.test(moto.log); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(moto.log, issued);
  assert.match(moto.log, /POST \/ 200 anonymous/, 'AssumeRoleWithWebIdentity went out unsigned');

  const roleS3 = moto.s3(role);
  await roleS3.send(new PutObjectCommand({ Bucket: bucketA, Key: 'from-role', Body: 'ok' }));
  await assertAwsError(
    roleS3.send(new PutObjectCommand({ Bucket: bucketB, Key: 'from-role', Body: 'no' })),
    'AccessDenied',
    403,
  );
  await assertAwsError(roleS3.send(new GetObjectCommand({ Bucket: bucketA, Key: privateKey })), 'AccessDenied', 403);

  const identity = await moto.sts(role).send(new GetCallerIdentityCommand({}));
  assert.equal(identity.Arn, `arn:aws:sts::${admin.accountId}:assumed-role/${roleName}/${roleSession}`);
});

test('anonymous reads follow the bucket policy; anonymous writes it does not grant are refused', async () => {
  const published = await moto.rawRequest('GET', `/${publicBucket}/${publicKey}`);
  assert.equal(published.status, 200);
  assert.equal(published.body, publicBody);
  assert.equal((await moto.rawRequest('HEAD', `/${publicBucket}/${publicKey}`)).status, 200);

  // Same bucket, outside the policy's Resource; and a bucket with no policy at all.
  for (const path of [`/${publicBucket}/${privateKey}`, `/${bucketA}/${privateKey}`]) {
    const denied = await moto.rawRequest('GET', path);
    assert.equal(denied.status, 403, path);
    assert.match(denied.body, /<Code>AccessDenied<\/Code>/, path);
  }
  const listing = await moto.rawRequest('GET', `/${publicBucket}?list-type=2`);
  assert.equal(listing.status, 403, 'the policy grants s3:GetObject, not s3:ListBucket');

  const write = await moto.rawRequest('PUT', `/${publicBucket}/.well-known/keys.json`, '{"keys":[]}');
  assert.equal(write.status, 403);
  assert.match(write.body, /<Code>AccessDenied<\/Code>/);
  await assertAwsError(
    moto.s3(admin).send(new HeadObjectCommand({ Bucket: publicBucket, Key: '.well-known/keys.json' })),
    'NotFound',
    404,
  );
});

/** A bucket of its own per test, with the issuer's two documents and a public-read policy for them. */
async function discoveryLikeBucket(name: string, extraStatements: object[] = []): Promise<string> {
  const adminS3 = moto.s3(admin);
  await adminS3.send(
    new CreateBucketCommand({ Bucket: name, CreateBucketConfiguration: { LocationConstraint: region } }),
  );
  for (const Key of [publicKey, 'keys.json'])
    await adminS3.send(new PutObjectCommand({ Bucket: name, Key, Body: '{}' }));
  await adminS3.send(
    new PutBucketPolicyCommand({
      Bucket: name,
      Policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'PublicRead',
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:GetObject',
            Resource: [`arn:aws:s3:::${name}/${publicKey}`, `arn:aws:s3:::${name}/keys.json`],
          },
          ...extraStatements,
        ],
      }),
    }),
  );
  return name;
}

/** Every change to the bucket and its documents that only the owner may make, as SDK calls. */
function changes(s3: S3Client, Bucket: string) {
  const acl = { Owner: { ID: 'someone' }, Grants: [] };
  return {
    PutObject: () => s3.send(new PutObjectCommand({ Bucket, Key: 'keys.json', Body: '{"keys":[]}' })),
    DeleteObject: () => s3.send(new DeleteObjectCommand({ Bucket, Key: publicKey })),
    PutObjectAcl: () => s3.send(new PutObjectAclCommand({ Bucket, Key: 'keys.json', AccessControlPolicy: acl })),
    PutBucketPolicy: () =>
      s3.send(
        new PutBucketPolicyCommand({
          Bucket,
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:*', Resource: `arn:aws:s3:::${Bucket}/*` }],
          }),
        }),
      ),
    DeleteBucketPolicy: () => s3.send(new DeleteBucketPolicyCommand({ Bucket })),
    PutBucketAcl: () => s3.send(new PutBucketAclCommand({ Bucket, AccessControlPolicy: acl })),
    PutPublicAccessBlock: () =>
      s3.send(
        new PutPublicAccessBlockCommand({
          Bucket,
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: false,
            IgnorePublicAcls: false,
            BlockPublicPolicy: false,
            RestrictPublicBuckets: false,
          },
        }),
      ),
    DeletePublicAccessBlock: () => s3.send(new DeletePublicAccessBlockCommand({ Bucket })),
    DeleteBucket: () => s3.send(new DeleteBucketCommand({ Bucket })),
  };
}

test('an anonymous caller and an IAM user without policies may change nothing of a public-read bucket', async () => {
  const bucket = await discoveryLikeBucket('irsa-launcher-owner-only');
  for (const [who, s3] of [
    ['anonymous', moto.s3Anonymous()],
    ['user without policies', moto.s3(plainUser)],
  ] as const) {
    for (const [name, attempt] of Object.entries(changes(s3, bucket))) {
      await assert.rejects(attempt(), (e: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
        assert.equal(`${e.name} ${e.$metadata?.httpStatusCode}`, 'AccessDenied 403', `${who} ${name}`);
        return true;
      });
    }
  }
  assert.equal((await moto.rawRequest('GET', `/${bucket}/keys.json`)).body, '{}', 'keys.json is unchanged');
  assert.equal((await moto.rawRequest('GET', '/')).status, 403, 'anonymous ListBuckets stays refused');
  assert.equal((await moto.rawRequest('PUT', '/irsa-launcher-anonymous-create')).status, 403, 'and CreateBucket');
});

test('a bucket policy granting everyone writes lets anonymous callers and IAM users without policies write, as on AWS', async () => {
  const bucket = await discoveryLikeBucket('irsa-launcher-anyone-writes', [
    {
      Sid: 'AnyoneWrites',
      Effect: 'Allow',
      Principal: '*',
      Action: ['s3:PutObject', 's3:DeleteObject'],
      Resource: `arn:aws:s3:::${'irsa-launcher-anyone-writes'}/*`,
    },
    {
      Sid: 'AnyonePutsPolicies',
      Effect: 'Allow',
      Principal: { AWS: '*' },
      Action: 's3:PutBucketPolicy',
      Resource: `arn:aws:s3:::${'irsa-launcher-anyone-writes'}`,
    },
  ]);
  const anonymous = changes(moto.s3Anonymous(), bucket);
  await anonymous.PutObject();
  assert.equal(
    (await moto.rawRequest('GET', `/${bucket}/keys.json`)).body,
    '{"keys":[]}',
    'the anonymous write landed',
  );
  await anonymous.DeleteObject();
  await assertAwsError(moto.s3(admin).send(new HeadObjectCommand({ Bucket: bucket, Key: publicKey })), 'NotFound', 404);
  const user = changes(moto.s3(plainUser), bucket);
  await user.PutObject();
  await assertAwsError(user.PutBucketAcl(), 'AccessDenied', 403); // not granted by the policy
  await anonymous.PutBucketPolicy(); // granted to {"AWS": "*"}: anonymous callers too
  // A Deny for everyone wins over the user's grant; and Block Public Access can restrict a public policy.
  const adminS3 = moto.s3(admin);
  await adminS3.send(
    new PutBucketPolicyCommand({
      Bucket: bucket,
      Policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucket}/*` },
          { Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucket}/keys.json` },
        ],
      }),
    }),
  );
  await assertAwsError(anonymous.PutObject(), 'AccessDenied', 403);
  await assertAwsError(user.PutObject(), 'AccessDenied', 403);
  await moto.s3Anonymous().send(new PutObjectCommand({ Bucket: bucket, Key: 'other.json', Body: '{}' }));
  await adminS3.send(
    new PutPublicAccessBlockCommand({
      Bucket: bucket,
      PublicAccessBlockConfiguration: { RestrictPublicBuckets: true },
    }),
  );
  await assertAwsError(
    moto.s3Anonymous().send(new PutObjectCommand({ Bucket: bucket, Key: 'other.json', Body: '{}' })),
    'AccessDenied',
    403,
  );
});

test('ACL grants to AllUsers count for anonymous callers unless public ACLs are ignored or ACLs are disabled', async () => {
  const bucket = await discoveryLikeBucket('irsa-launcher-public-acl');
  const adminS3 = moto.s3(admin);
  await adminS3.send(new PutBucketAclCommand({ Bucket: bucket, ACL: 'public-read-write' }));
  await adminS3.send(new PutObjectAclCommand({ Bucket: bucket, Key: 'keys.json', ACL: 'public-read' }));
  const anonymous = moto.s3Anonymous();
  const grants = (await adminS3.send(new GetBucketAclCommand({ Bucket: bucket }))).Grants ?? [];
  assert.ok(grants.some((g) => g.Grantee?.URI?.endsWith('/AllUsers') && g.Permission === 'WRITE'));
  await anonymous.send(new PutObjectCommand({ Bucket: bucket, Key: 'keys.json', Body: '{"acl":1}' }));
  await anonymous.send(new DeleteObjectCommand({ Bucket: bucket, Key: publicKey }));
  // The bucket's WRITE is no WRITE_ACP: neither on the bucket nor on the object.
  await assertAwsError(changes(anonymous, bucket).PutBucketAcl(), 'AccessDenied', 403);
  await assertAwsError(changes(anonymous, bucket).PutObjectAcl(), 'AccessDenied', 403);
  await adminS3.send(
    new PutPublicAccessBlockCommand({ Bucket: bucket, PublicAccessBlockConfiguration: { IgnorePublicAcls: true } }),
  );
  await assertAwsError(changes(anonymous, bucket).PutObject(), 'AccessDenied', 403);
  await adminS3.send(new DeletePublicAccessBlockCommand({ Bucket: bucket }));
  await anonymous.send(new PutObjectCommand({ Bucket: bucket, Key: 'keys.json', Body: '{"acl":2}' }));
  await adminS3.send(
    new PutBucketOwnershipControlsCommand({
      Bucket: bucket,
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
    }),
  );
  await assertAwsError(changes(anonymous, bucket).PutObject(), 'AccessDenied', 403);
  assert.equal((await moto.rawRequest('GET', `/${bucket}/keys.json`)).body, '{"acl":2}');
});

test("moto's unauthenticated management API is closed", async () => {
  const reset = await moto.rawRequest('POST', '/moto-api/reset-auth', 'inf');
  assert.equal(reset.status, 403);
  await assertAwsError(moto.s3(plainUser).send(new ListBucketsCommand({})), 'AccessDenied', 403);
});

test('50 concurrent mixed requests each get their own answer, none a 500', async () => {
  const userS3 = moto.s3(plainUser);
  const kinds = ['anonymous-get', 'unsigned-assume-role', 'signed-denied-put'] as const;
  const results = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const kind = kinds[i % kinds.length];
      if (kind === 'anonymous-get') {
        const r = await moto.rawRequest('GET', `/${publicBucket}/${publicKey}`);
        return { kind, ok: r.status === 200 && r.body === publicBody, status: r.status };
      }
      if (kind === 'unsigned-assume-role') {
        const r = await unsignedAssumeRoleWithWebIdentity();
        return { kind, ok: r.status === 200 && r.body.includes('<AccessKeyId>'), status: r.status };
      }
      try {
        await userS3.send(new PutObjectCommand({ Bucket: bucketA, Key: `concurrent-${i}`, Body: 'x' }));
        return { kind, ok: false, status: 200 };
      } catch (error) {
        const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
        return { kind, ok: e.name === 'AccessDenied', status: e.$metadata?.httpStatusCode ?? 0 };
      }
    }),
  );
  assert.deepEqual(
    results.filter((r) => !r.ok),
    [],
  );
  assert.ok(results.every((r) => r.status !== 500));
});

test('the log names callers but never carries a secret, token or signature', () => {
  assert.match(moto.log, new RegExp(`PUT /${bucketA}/from-role 200 ASIA`));
  assert.match(moto.log, new RegExp(`GET /${publicBucket}/\\.well-known/openid-configuration 200 anonymous`));
  for (const secret of secrets) assert.ok(!moto.log.includes(secret), 'a secret or token appears in the launcher log');
  assert.doesNotMatch(moto.log, /Signature=|X-Amz-Security-Token|Authorization/i);
});

test('connections are kept alive (cheroot), and a client that says nothing stalls no other', async () => {
  assert.match(moto.log, /ready on https:\/\/127\.0\.0\.1:\d+ in [\d.]+s \(cheroot,/);
  const reused: boolean[] = [];
  const oneAgent = new https.Agent({ ca: moto.caPem, keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolvePromise, reject) => {
        const request = https.get(
          new URL(`/${publicBucket}/${publicKey}`, admin.endpoint),
          { agent: oneAgent },
          (response) => {
            assert.notEqual(response.headers.connection, 'close');
            response.resume();
            response.on('end', () => resolvePromise());
          },
        );
        request.on('error', reject);
        reused.push(request.reusedSocket);
      });
    }
  } finally {
    oneAgent.destroy();
  }
  assert.deepEqual(reused, [false, true, true], 'the second and third requests reuse the first connection');
  // A TCP connection that never starts its TLS handshake (a port probe) holds one worker at most.
  const port = Number(new URL(admin.endpoint).port);
  const silent = connect(port, '127.0.0.1');
  await new Promise((r) => silent.once('connect', r));
  try {
    const started = performance.now();
    assert.equal((await moto.rawRequest('GET', `/${publicBucket}/${publicKey}`)).status, 200);
    assert.ok(performance.now() - started < 2000, 'another client is answered while the silent one waits');
  } finally {
    silent.destroy();
  }
});

test("without cheroot installed it serves with werkzeug's server", async () => {
  // An import path where `cheroot` cannot be imported, as in the docker target's moto image.
  const hide = join(moto.workDir, 'no-cheroot');
  mkdirSync(join(hide, 'cheroot'), { recursive: true });
  writeFileSync(join(hide, 'cheroot', '__init__.py'), 'raise ImportError("hidden by the test")\n');
  const credentialsFile = join(moto.workDir, 'fallback.json');
  const child = spawn(
    venvPython(),
    [
      join(repo, 'tools/moto/launcher.py'),
      ...['--host', '127.0.0.1', '--port', '0', '--region', region, '--admin-credentials-out', credentialsFile],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PYTHONPATH: hide } },
  );
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await waitForFile(credentialsFile, child, START_TIMEOUT_MS, () => log);
    const endpoint = (JSON.parse(readFileSync(credentialsFile, 'utf8')) as AdminCredentials).endpoint;
    const status = await new Promise<number>((resolvePromise, reject) => {
      const request = http.get(new URL('/no-such-bucket/key', endpoint), (response) => {
        response.resume();
        resolvePromise(response.statusCode ?? 0);
      });
      request.on('error', reject);
    });
    assert.equal(status, 404, 'moto answers: NoSuchBucket');
    assert.match(log, /\(werkzeug,/);
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});

test('SIGTERM stops it: process gone, port closed, credentials file removed', async () => {
  const child = moto.child;
  assert.ok(child?.pid);
  const port = Number(new URL(admin.endpoint).port);
  const stoppedAt = performance.now();
  child.kill('SIGTERM');
  assert.equal(await moto.exited, 0);
  console.log(`# launcher stopped in ${Math.round(performance.now() - stoppedAt)} ms`);
  assert.throws(() => process.kill(child.pid as number, 0), { code: 'ESRCH' });
  const refused = await new Promise<string>((resolvePromise) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.destroy();
      resolvePromise('connected');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolvePromise(error.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED');
  assert.throws(() => readFileSync(join(moto.workDir, 'admin.json')), { code: 'ENOENT' });
});
