/**
 * The embedded target's STS answers AssumeRoleWithWebIdentity as AWS does (tools/moto/web_identity.py):
 * one test per row of AWS's error table (code, HTTP status, exact message where one is on record),
 * the success answer's extra fields, the decision log, and concurrency. Tokens are signed by an
 * issuer published in the emulator's own S3, as the embedded target's cluster issuer is.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CreateOpenIDConnectProviderCommand, CreateRoleCommand } from '@aws-sdk/client-iam';
import { CreateBucketCommand, PutBucketPolicyCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { AssumeRoleWithWebIdentityCommand } from '@aws-sdk/client-sts';
import { issuerHostPath } from '../../support/oidc/discovery.ts';
import { createSigningIssuer, foreignSigningKey, type SigningIssuer } from '../../support/oidc/signing-issuer.ts';
import { publicReadPolicy } from '../../support/provision/infrastructure.ts';
import { Launcher } from '../support/moto-fixture.ts';

const region = 'us-east-1';
const AUDIENCE = 'sts.amazonaws.com';
const SUB = 'system:serviceaccount:team-a:s3-manager';
const NOT_AUTHORIZED = 'Not authorized to perform sts:AssumeRoleWithWebIdentity';
const NO_KEY =
  "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements";

let moto: Launcher;
/** Published publicly, registered as a provider. */
let issuer: SigningIssuer;
/** Published in a bucket without a public policy, registered as a provider. */
let privateIssuer: SigningIssuer;
/** Published publicly, not registered. */
let unregistered: SigningIssuer;
let providerArn = '';
let roleArn = '';
let denyingRoleArn = '';
let shortRoleArn = '';
const secrets: string[] = [];

async function publish(bucket: string, signing: SigningIssuer, isPublic: boolean): Promise<void> {
  const s3 = moto.s3(moto.admin);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: '.well-known/openid-configuration',
      Body: JSON.stringify(signing.discovery),
    }),
  );
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'keys.json', Body: JSON.stringify(signing.jwks) }));
  if (isPublic) await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: publicReadPolicy(bucket) }));
}

async function role(name: string, statements: Record<string, unknown>[], maxSessionDuration?: number) {
  const out = await moto.iam(moto.admin).send(
    new CreateRoleCommand({
      RoleName: name,
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: statements }),
      ...(maxSessionDuration ? { MaxSessionDuration: maxSessionDuration } : {}),
    }),
  );
  return out.Role?.Arn as string;
}

function trustsSub(sub: string): Record<string, unknown> {
  return {
    Sid: 'ServiceAccount',
    Effect: 'Allow',
    Principal: { Federated: providerArn },
    Action: 'sts:AssumeRoleWithWebIdentity',
    Condition: { StringEquals: { [`${issuerHostPath(issuer.issuer)}:sub`]: sub } },
  };
}

async function token(claims: Record<string, unknown> = {}, signing: SigningIssuer = issuer): Promise<string> {
  const t = await signing.sign({ sub: SUB, aud: AUDIENCE, ...claims });
  secrets.push(t);
  return t;
}

/** The raw answer to an unsigned call, and its code and message as the XML carries them. */
async function call(params: { token: string; role?: string; duration?: number; session?: string }) {
  const r = await moto.assumeRoleWithWebIdentity({
    RoleArn: params.role ?? roleArn,
    RoleSessionName: params.session ?? 'irsa-test',
    WebIdentityToken: params.token,
    ...(params.duration ? { DurationSeconds: String(params.duration) } : {}),
  });
  const code = /<Code>([^<]*)<\/Code>/.exec(r.body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(r.body)?.[1]?.replaceAll('&amp;', '&').replaceAll('&apos;', "'");
  return { status: r.status, code, message, body: r.body };
}

async function refused(
  params: Parameters<typeof call>[0],
  code: string,
  status: number,
  message?: string | RegExp,
): Promise<void> {
  const r = await call(params);
  assert.equal(r.status, status, r.body);
  assert.equal(r.code, code, r.body);
  assert.match(
    r.body,
    /^<ErrorResponse xmlns="https:\/\/sts\.amazonaws\.com\/doc\/2011-06-15\/"><Error><Type>Sender<\/Type>/,
  );
  if (typeof message === 'string') assert.equal(r.message, message);
  else if (message) assert.match(r.message ?? '', message);
}

before(async () => {
  moto = await Launcher.start(region);
  const base = moto.admin.endpoint;
  [issuer, privateIssuer, unregistered] = await Promise.all([
    createSigningIssuer(`${base}/irsa-sts-issuer`),
    createSigningIssuer(`${base}/irsa-sts-private`),
    createSigningIssuer(`${base}/irsa-sts-unregistered`),
  ]);
  await publish('irsa-sts-issuer', issuer, true);
  await publish('irsa-sts-private', privateIssuer, false);
  await publish('irsa-sts-unregistered', unregistered, true);
  const iam = moto.iam(moto.admin);
  for (const i of [issuer, privateIssuer]) {
    const p = await iam.send(
      new CreateOpenIDConnectProviderCommand({ Url: i.issuer, ClientIDList: [AUDIENCE, 'second-client'] }),
    );
    if (i === issuer) providerArn = p.OpenIDConnectProviderArn as string;
  }
  roleArn = await role('irsa-sts-app', [trustsSub(SUB)]);
  shortRoleArn = await role('irsa-sts-short', [trustsSub(SUB)], 3600);
  denyingRoleArn = await role('irsa-sts-deny', [
    trustsSub(SUB),
    {
      Sid: 'NoTeamA',
      Effect: 'Deny',
      Principal: '*',
      Action: 'sts:*',
      Condition: { StringLike: { [`${issuerHostPath(issuer.issuer)}:sub`]: '*:team-a:*' } },
    },
  ]);
});

after(async () => {
  await moto?.stop();
});

test('a genuine token for a trusting role gets a session, with Subject, Audience and Provider (the provider ARN)', async () => {
  const out = await moto.sts().send(
    new AssumeRoleWithWebIdentityCommand({
      RoleArn: roleArn,
      RoleSessionName: 'irsa-test',
      WebIdentityToken: await token(),
    }),
  );
  secrets.push(out.Credentials?.SecretAccessKey ?? '', out.Credentials?.SessionToken ?? '');
  assert.equal(out.AssumedRoleUser?.Arn, `arn:aws:sts::${moto.admin.accountId}:assumed-role/irsa-sts-app/irsa-test`);
  assert.equal(out.SubjectFromWebIdentityToken, SUB);
  assert.equal(out.Audience, AUDIENCE);
  assert.equal(out.Provider, providerArn);
});

test('not a JWT: InvalidIdentityToken (400)', async () => {
  await refused({ token: 'not-a-jwt' }, 'InvalidIdentityToken', 400);
  await refused({ token: 'a.b.c' }, 'InvalidIdentityToken', 400);
});

test('an issuer with no IAM OIDC provider: InvalidIdentityToken "No OpenIDConnect provider found in your account for <iss>"', async () => {
  await refused(
    { token: await token({}, unregistered) },
    'InvalidIdentityToken',
    400,
    `No OpenIDConnect provider found in your account for ${unregistered.issuer}`,
  );
  // The match is exact: a trailing slash is another issuer.
  await refused(
    { token: await token({ iss: `${issuer.issuer}/` }) },
    'InvalidIdentityToken',
    400,
    `No OpenIDConnect provider found in your account for ${issuer.issuer}/`,
  );
});

test('an audience the provider does not list: InvalidIdentityToken "Incorrect token audience"; azp wins over aud', async () => {
  await refused(
    { token: await token({ aud: 'sts.amazon.com' }) },
    'InvalidIdentityToken',
    400,
    'Incorrect token audience',
  );
  await refused(
    { token: await token({ aud: AUDIENCE, azp: 'not-a-client' }) },
    'InvalidIdentityToken',
    400,
    'Incorrect token audience',
  );
  // Any one of several audiences may be the client ID; the answer names it.
  const multi = await call({ token: await token({ aud: ['other', 'second-client'] }) });
  assert.equal(multi.status, 200, multi.body);
  assert.match(multi.body, /<Audience>second-client<\/Audience>/);
});

test("keys that cannot be read anonymously, or no key with the token's kid: InvalidIdentityToken with AWS's text", async () => {
  await refused({ token: await token({}, privateIssuer) }, 'InvalidIdentityToken', 400, NO_KEY);
  // A kid keys.json does not list.
  const other = await createSigningIssuer(issuer.issuer);
  await refused({ token: await token({}, other) }, 'InvalidIdentityToken', 400, NO_KEY);
});

test('a token signed by another key under the published kid: InvalidIdentityToken', async () => {
  const forged = await issuer.sign({ sub: SUB, aud: AUDIENCE }, await foreignSigningKey());
  secrets.push(forged);
  await refused({ token: forged }, 'InvalidIdentityToken', 400);
});

test("an expired token: ExpiredTokenException with AWS's text; five minutes of clock skew are allowed", async () => {
  const now = Math.floor(Date.now() / 1000);
  await refused(
    { token: await token({ iat: now - 7200, exp: now - 3600 }) },
    'ExpiredTokenException',
    400,
    new RegExp(`^Token expired: current date/time \\d+ must be before the expiration date/time${now - 3600}$`),
  );
  const withinSkew = await call({ token: await token({ iat: now - 3600, exp: now - 120 }) });
  assert.equal(withinSkew.status, 200, withinSkew.body);
});

test('a token not yet valid (nbf or iat in the future) or without sub: InvalidIdentityToken', async () => {
  const now = Math.floor(Date.now() / 1000);
  await refused({ token: await token({ nbf: now + 3600 }) }, 'InvalidIdentityToken', 400);
  await refused({ token: await token({ iat: now + 3600, exp: now + 7200 }) }, 'InvalidIdentityToken', 400);
  await refused({ token: await token({ sub: '' }) }, 'InvalidIdentityToken', 400);
});

test('a role that does not exist: AccessDenied (403) "Not authorized to perform sts:AssumeRoleWithWebIdentity"', async () => {
  await refused(
    { token: await token(), role: `arn:aws:iam::${moto.admin.accountId}:role/irsa-sts-no-such-role` },
    'AccessDenied',
    403,
    NOT_AUTHORIZED,
  );
});

test("a trust policy that does not admit the token's sub, or that denies it: AccessDenied (403)", async () => {
  await refused(
    { token: await token({ sub: 'system:serviceaccount:intruder:s3-manager' }) },
    'AccessDenied',
    403,
    NOT_AUTHORIZED,
  );
  await refused({ token: await token(), role: denyingRoleArn }, 'AccessDenied', 403, NOT_AUTHORIZED);
});

test('DurationSeconds above the role maximum or outside 900-43200: ValidationError', async () => {
  await refused(
    { token: await token(), role: shortRoleArn, duration: 7200 },
    'ValidationError',
    400,
    'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.',
  );
  await refused(
    { token: await token(), duration: 100 },
    'ValidationError',
    400,
    "1 validation error detected: Value '100' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900",
  );
  assert.equal((await call({ token: await token(), role: shortRoleArn, duration: 3600 })).status, 200);
});

test('64 concurrent calls, half refused, each get their own answer', async () => {
  const good = await token();
  const bad = await token({ sub: 'system:serviceaccount:intruder:s3-manager' });
  const started = performance.now();
  const answers = await Promise.all(
    Array.from({ length: 64 }, (_, i) => call({ token: i % 2 === 0 ? good : bad }).then((r) => ({ i, ...r }))),
  );
  console.log(`# 64 concurrent calls answered in ${Math.round(performance.now() - started)} ms`);
  const wrong = answers.filter((a) => (a.i % 2 === 0 ? a.status !== 200 : a.code !== 'AccessDenied'));
  assert.deepEqual(
    wrong.map((a) => `${a.i}: ${a.status} ${a.code ?? ''}`),
    [],
  );
});

test('one log line per decision names the role, sub, aud and the check that decided, never the token', () => {
  assert.match(
    moto.log,
    /AssumeRoleWithWebIdentity arn:aws:iam::\d+:role\/irsa-sts-app: sub system:serviceaccount:team-a:s3-manager aud sts\.amazonaws\.com allowed by ServiceAccount/,
  );
  assert.match(
    moto.log,
    /AssumeRoleWithWebIdentity arn:aws:iam::\d+:role\/irsa-sts-app: AccessDenied: sub system:serviceaccount:intruder:s3-manager aud sts\.amazonaws\.com: ServiceAccount: \S+:sub StringEquals/,
  );
  assert.match(moto.log, /AssumeRoleWithWebIdentity \S+: AccessDenied: .*denied by NoTeamA/);
  assert.match(
    moto.log,
    /AssumeRoleWithWebIdentity \S+: InvalidIdentityToken: keys not retrievable: GET https:\/\/\S+: HTTP 403/,
  );
  for (const s of secrets.filter(Boolean)) assert.ok(!moto.log.includes(s), 'a token or secret appears in the log');
  // The keys were read in-process, through the launcher's gate, as anonymous requests.
  assert.match(moto.log, /GET \/irsa-sts-issuer\/keys\.json 200 anonymous/);
});
