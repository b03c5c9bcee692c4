/**
 * The embedded target's AWS emulator launcher (tools/moto/launcher.py) against the real AWS SDK over
 * TLS: IAM enforced for every signed request, AWS's rules for unsigned ones (AssumeRoleWithWebIdentity,
 * public reads), no HTTP 500 under concurrent mixed traffic, no secret in its log, a clean stop.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CreateAccessKeyCommand,
  CreateOpenIDConnectProviderCommand,
  CreateRoleCommand,
  CreateUserCommand,
  GetRoleCommand,
  IAMClient,
  ListOpenIDConnectProvidersCommand,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { AssumeRoleWithWebIdentityCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createCa, issueServingCert } from '../support/tls.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const region = 'eu-west-1';
const START_TIMEOUT_MS = 60_000;

interface AdminCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  accountId: string;
  region: string;
  endpoint: string;
}
interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

let workDir = '';
let launcher: ChildProcess | undefined;
let launcherExit: Promise<number | null> = Promise.resolve(null);
let launcherLog = '';
let admin: AdminCredentials;
let caPem = '';
let agent: https.Agent;
const secrets: string[] = [];

// Fixture names. Bucket A is where the role may write, B where it may not.
const bucketA = 'irsa-launcher-a';
const bucketB = 'irsa-launcher-b';
const publicBucket = 'irsa-launcher-public';
const publicKey = '.well-known/openid-configuration';
const publicBody = '{"issuer":"https://example.test"}';
const privateKey = 'private/object.txt';
const roleName = 'irsa-launcher-writer';
const roleSession = 'irsa-launcher-session';
let roleArn = '';
let plainUser: Credentials;
// JWT-shaped; moto does not check web identity tokens.
const webIdentityToken = [
  Buffer.from('{"alg":"RS256","kid":"k"}').toString('base64url'),
  Buffer.from('{"iss":"https://example.test","sub":"system:serviceaccount:ns:sa","aud":"sts.amazonaws.com"}').toString(
    'base64url',
  ),
  Buffer.from('not-a-real-signature').toString('base64url'),
].join('.');

function handler(): NodeHttpHandler {
  return new NodeHttpHandler({ httpsAgent: agent });
}
function s3(credentials: Credentials): S3Client {
  return new S3Client({
    region,
    endpoint: admin.endpoint,
    forcePathStyle: true,
    credentials,
    requestHandler: handler(),
  });
}
function iam(credentials: Credentials): IAMClient {
  return new IAMClient({ region, endpoint: admin.endpoint, credentials, requestHandler: handler() });
}
function sts(credentials?: Credentials): STSClient {
  // Without credentials, a provider that fails proves AssumeRoleWithWebIdentity really goes out unsigned.
  const noCredentials = async (): Promise<Credentials> => {
    throw new Error('this client must not sign');
  };
  return new STSClient({
    region,
    endpoint: admin.endpoint,
    credentials: credentials ?? noCredentials,
    requestHandler: handler(),
  });
}

interface RawResponse {
  status: number;
  body: string;
}
/** An unsigned request, as a browser or curl would send it. */
function rawRequest(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return new Promise((resolvePromise, reject) => {
    const request = https.request(new URL(path, admin.endpoint), { method, agent, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolvePromise({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

function unsignedAssumeRoleWithWebIdentity(): Promise<RawResponse> {
  const form = new URLSearchParams({
    Action: 'AssumeRoleWithWebIdentity',
    Version: '2011-06-15',
    RoleArn: roleArn,
    RoleSessionName: roleSession,
    WebIdentityToken: webIdentityToken,
  }).toString();
  return rawRequest('POST', '/', form, { 'content-type': 'application/x-www-form-urlencoded' });
}

async function assertAwsError(operation: Promise<unknown>, name: string, status: number): Promise<void> {
  await assert.rejects(operation, (error: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
    assert.equal(error.name, name);
    assert.equal(error.$metadata?.httpStatusCode, status);
    return true;
  });
}

/** Resolves when `file` exists; rejects if the launcher exits first or the time runs out. */
function waitForFile(file: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const watcher = watch(dirname(file));
    const finish = (error?: Error): void => {
      watcher.close();
      clearTimeout(timer);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolvePromise();
    };
    const check = (): void => {
      try {
        readFileSync(file);
        finish();
      } catch {
        // not there yet
      }
    };
    const onExit = (code: number | null): void =>
      finish(new Error(`launcher exited (${code}) before ready:\n${launcherLog}`));
    const timer = setTimeout(
      () => finish(new Error(`launcher not ready after ${timeoutMs} ms:\n${launcherLog}`)),
      timeoutMs,
    );
    watcher.on('change', check);
    child.on('exit', onExit);
    check();
  });
}

before(async () => {
  const venv = execFileSync('bash', [join(repo, 'tools/python-env.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  workDir = mkdtempSync(join(tmpdir(), 'irsa-moto-launcher-'));
  const ca = await createCa('irsa-moto-launcher-test');
  const serving = await issueServingCert(ca, { ipSans: ['127.0.0.1'] });
  caPem = ca.certPem;
  agent = new https.Agent({ ca: caPem, keepAlive: true, maxSockets: 64 });
  writeFileSync(join(workDir, 'tls.crt'), serving.certPem, { mode: 0o600 });
  writeFileSync(join(workDir, 'tls.key'), serving.keyPem, { mode: 0o600 });
  const credentialsFile = join(workDir, 'admin.json');

  const startedAt = performance.now();
  const child = spawn(
    join(venv, 'bin/python'),
    [
      join(repo, 'tools/moto/launcher.py'),
      ...['--host', '127.0.0.1', '--port', '0', '--region', region, '--admin-credentials-out', credentialsFile],
      ...['--tls-cert', join(workDir, 'tls.crt'), '--tls-key', join(workDir, 'tls.key')],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  launcher = child;
  launcherExit = new Promise((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  child.stdout?.on('data', (chunk: Buffer) => (launcherLog += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (launcherLog += chunk.toString()));
  await waitForFile(credentialsFile, child, START_TIMEOUT_MS);
  console.log(`# launcher ready in ${Math.round(performance.now() - startedAt)} ms (spawn to credentials file)`);

  admin = JSON.parse(readFileSync(credentialsFile, 'utf8')) as AdminCredentials;
  secrets.push(admin.secretAccessKey, webIdentityToken);
  assert.match(admin.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);

  // Fixtures, made by the administrator.
  const adminS3 = s3(admin);
  for (const Bucket of [bucketA, bucketB, publicBucket]) {
    await adminS3.send(new CreateBucketCommand({ Bucket, CreateBucketConfiguration: { LocationConstraint: region } }));
  }
  await adminS3.send(new PutObjectCommand({ Bucket: publicBucket, Key: publicKey, Body: publicBody }));
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
            Resource: `arn:aws:s3:::${publicBucket}/.well-known/*`,
          },
        ],
      }),
    }),
  );
  const adminIam = iam(admin);
  const role = await adminIam.send(
    new CreateRoleCommand({
      RoleName: roleName,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Federated: `arn:aws:iam::${admin.accountId}:oidc-provider/example.test` },
            Action: 'sts:AssumeRoleWithWebIdentity',
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
  await adminIam.send(new CreateUserCommand({ UserName: 'irsa-launcher-no-policies' }));
  const key = await adminIam.send(new CreateAccessKeyCommand({ UserName: 'irsa-launcher-no-policies' }));
  plainUser = { accessKeyId: key.AccessKey?.AccessKeyId ?? '', secretAccessKey: key.AccessKey?.SecretAccessKey ?? '' };
  secrets.push(plainUser.secretAccessKey);
});

after(async () => {
  if (launcher && launcher.exitCode === null && launcher.signalCode === null) {
    launcher.kill('SIGKILL');
    await launcherExit;
  }
  agent?.destroy();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('refuses to bind anything but a loopback address', () => {
  const venv = execFileSync('bash', [join(repo, 'tools/python-env.sh')], { encoding: 'utf8' }).trim();
  const run = spawnSync(
    join(venv, 'bin/python'),
    [
      join(repo, 'tools/moto/launcher.py'),
      '--host',
      '0.0.0.0',
      '--port',
      '0',
      '--region',
      region,
      '--admin-credentials-out',
      join(workDir, 'x.json'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(run.status, 2);
  assert.match(run.stderr, /^irsa: --host 0\.0\.0\.0 is not a loopback IP address\nhint: /);
});

test('the credentials file is private to its owner', () => {
  const mode = execFileSync('stat', ['-c', '%a', join(workDir, 'admin.json')], { encoding: 'utf8' }).trim();
  assert.equal(mode, '600');
});

test('the administrator can create buckets, objects, roles and OIDC providers', async () => {
  const adminS3 = s3(admin);
  await adminS3.send(
    new CreateBucketCommand({
      Bucket: 'irsa-launcher-admin',
      CreateBucketConfiguration: { LocationConstraint: region },
    }),
  );
  await adminS3.send(new PutObjectCommand({ Bucket: 'irsa-launcher-admin', Key: 'k', Body: 'v' }));
  const object = await adminS3.send(new GetObjectCommand({ Bucket: 'irsa-launcher-admin', Key: 'k' }));
  assert.equal(await object.Body?.transformToString(), 'v');

  const adminIam = iam(admin);
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
  const userS3 = s3(plainUser);
  await assertAwsError(
    userS3.send(new PutObjectCommand({ Bucket: bucketA, Key: 'denied', Body: 'x' })),
    'AccessDenied',
    403,
  );
  await assertAwsError(userS3.send(new ListBucketsCommand({})), 'AccessDenied', 403);
});

test('a wrong secret is refused with SignatureDoesNotMatch', async () => {
  const forged = s3({ accessKeyId: admin.accessKeyId, secretAccessKey: 'not-the-secret' });
  await assertAwsError(forged.send(new ListBucketsCommand({})), 'SignatureDoesNotMatch', 403);
});

test('a role assumed with a web identity may write only where its policy allows', async () => {
  const assumed = await sts().send(
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
  assert.match(launcherLog, /POST \/ 200 anonymous/, 'AssumeRoleWithWebIdentity went out unsigned');

  const roleS3 = s3(role);
  await roleS3.send(new PutObjectCommand({ Bucket: bucketA, Key: 'from-role', Body: 'ok' }));
  await assertAwsError(
    roleS3.send(new PutObjectCommand({ Bucket: bucketB, Key: 'from-role', Body: 'no' })),
    'AccessDenied',
    403,
  );
  await assertAwsError(roleS3.send(new GetObjectCommand({ Bucket: bucketA, Key: privateKey })), 'AccessDenied', 403);

  const identity = await sts(role).send(new GetCallerIdentityCommand({}));
  assert.equal(identity.Arn, `arn:aws:sts::${admin.accountId}:assumed-role/${roleName}/${roleSession}`);
});

test('anonymous reads follow the bucket policy; anonymous writes are refused', async () => {
  const published = await rawRequest('GET', `/${publicBucket}/${publicKey}`);
  assert.equal(published.status, 200);
  assert.equal(published.body, publicBody);
  assert.equal((await rawRequest('HEAD', `/${publicBucket}/${publicKey}`)).status, 200);

  // Same bucket, outside the policy's Resource; and a bucket with no policy at all.
  for (const path of [`/${publicBucket}/${privateKey}`, `/${bucketA}/${privateKey}`]) {
    const denied = await rawRequest('GET', path);
    assert.equal(denied.status, 403, path);
    assert.match(denied.body, /<Code>AccessDenied<\/Code>/, path);
  }
  const listing = await rawRequest('GET', `/${publicBucket}?list-type=2`);
  assert.equal(listing.status, 403, 'the policy grants s3:GetObject, not s3:ListBucket');

  const write = await rawRequest('PUT', `/${publicBucket}/.well-known/keys.json`, '{"keys":[]}');
  assert.equal(write.status, 403);
  assert.match(write.body, /<Code>AccessDenied<\/Code>/);
  await assertAwsError(
    s3(admin).send(new HeadObjectCommand({ Bucket: publicBucket, Key: '.well-known/keys.json' })),
    'NotFound',
    404,
  );
});

test("moto's unauthenticated management API is closed", async () => {
  const reset = await rawRequest('POST', '/moto-api/reset-auth', 'inf');
  assert.equal(reset.status, 403);
  await assertAwsError(s3(plainUser).send(new ListBucketsCommand({})), 'AccessDenied', 403);
});

test('50 concurrent mixed requests each get their own answer, none a 500', async () => {
  const userS3 = s3(plainUser);
  const kinds = ['anonymous-get', 'unsigned-assume-role', 'signed-denied-put'] as const;
  const results = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const kind = kinds[i % kinds.length];
      if (kind === 'anonymous-get') {
        const r = await rawRequest('GET', `/${publicBucket}/${publicKey}`);
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
  assert.match(launcherLog, new RegExp(`PUT /${bucketA}/from-role 200 ASIA`));
  assert.match(launcherLog, new RegExp(`GET /${publicBucket}/\\.well-known/openid-configuration 200 anonymous`));
  for (const secret of secrets)
    assert.ok(!launcherLog.includes(secret), 'a secret or token appears in the launcher log');
  assert.doesNotMatch(launcherLog, /Signature=|X-Amz-Security-Token|Authorization/i);
});

test('connections are kept alive (cheroot), and a client that says nothing stalls no other', async () => {
  assert.match(launcherLog, /ready on https:\/\/127\.0\.0\.1:\d+ in [\d.]+s \(cheroot,/);
  const reused: boolean[] = [];
  const oneAgent = new https.Agent({ ca: caPem, keepAlive: true, maxSockets: 1 });
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
    assert.equal((await rawRequest('GET', `/${publicBucket}/${publicKey}`)).status, 200);
    assert.ok(performance.now() - started < 2000, 'another client is answered while the silent one waits');
  } finally {
    silent.destroy();
  }
});

test("without cheroot installed it serves with werkzeug's server", async () => {
  const venv = execFileSync('bash', [join(repo, 'tools/python-env.sh')], { encoding: 'utf8' }).trim();
  // An import path where `cheroot` cannot be imported, as in the docker target's moto image.
  const hide = join(workDir, 'no-cheroot');
  execFileSync('mkdir', ['-p', join(hide, 'cheroot')]);
  writeFileSync(join(hide, 'cheroot', '__init__.py'), 'raise ImportError("hidden by the test")\n');
  const credentialsFile = join(workDir, 'fallback.json');
  const child = spawn(
    join(venv, 'bin/python'),
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
    await waitForFile(credentialsFile, child, START_TIMEOUT_MS);
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
  const child = launcher;
  assert.ok(child?.pid);
  const port = Number(new URL(admin.endpoint).port);
  const stoppedAt = performance.now();
  child.kill('SIGTERM');
  assert.equal(await launcherExit, 0);
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
  assert.throws(() => readFileSync(join(workDir, 'admin.json')), { code: 'ENOENT' });
});
