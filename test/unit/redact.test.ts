/** Unit tests of support/redact.ts: what counts as a secret, and what must stay readable. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { onSecretRegistered, redact, redactObject, registerSecret } from '../../support/redact.ts';

// Shapes only: these values are made up.
const SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const SESSION_TOKEN = 'FwoGZXIvYXdzEXAMPLE//////////wEaDH+session+token+example==';
const ACCESS_KEY_ID = 'ASIAIOSFODNN7EXAMPLE';
const JWT =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2kiLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2lnbmF0dXJlLWJ5dGVz';

function assertGone(out: string, secret: string, kind: string) {
  assert.ok(!out.includes(secret), `secret still present in: ${out}`);
  assert.ok(out.includes(`[REDACTED:${kind}]`), `no [REDACTED:${kind}] in: ${out}`);
}

describe('redact patterns', () => {
  it('scrubs JWTs wherever they appear, keeping the surrounding text', () => {
    const out = redact(`token=${JWT} and "t":"${JWT}"`);
    assertGone(out, JWT, 'jwt');
    assert.equal(out, 'token=[REDACTED:jwt] and "t":"[REDACTED:jwt]"');
    const unsigned = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.';
    assert.equal(redact(unsigned), '[REDACTED:jwt]');
  });

  it('scrubs secret access keys in env, INI, JSON, inspect and XML forms', () => {
    for (const text of [
      `AWS_SECRET_ACCESS_KEY=${SECRET_KEY}`,
      `export MY_AWS_SECRET_ACCESS_KEY=${SECRET_KEY}`,
      `aws_secret_access_key = ${SECRET_KEY}`,
      `{"AccessKeyId":"${ACCESS_KEY_ID}","SecretAccessKey":"${SECRET_KEY}"}`,
      `{ accessKeyId: '${ACCESS_KEY_ID}', secretAccessKey: '${SECRET_KEY}' }`,
      `<AccessKeyId>${ACCESS_KEY_ID}</AccessKeyId><SecretAccessKey>${SECRET_KEY}</SecretAccessKey>`,
    ]) {
      const out = redact(text);
      assertGone(out, SECRET_KEY, 'secret-access-key');
      if (text.includes(ACCESS_KEY_ID)) assert.ok(out.includes(ACCESS_KEY_ID), `access key id kept: ${out}`);
    }
  });

  it('scrubs session tokens in every form, including the STS XML response', () => {
    for (const text of [
      `AWS_SESSION_TOKEN=${SESSION_TOKEN}`,
      `"SessionToken": "${SESSION_TOKEN}"`,
      `sessionToken: '${SESSION_TOKEN}'`,
      `<Credentials><SessionToken>${SESSION_TOKEN}</SessionToken></Credentials>`,
      `x-amz-security-token: ${SESSION_TOKEN}`,
    ]) {
      assertGone(redact(text), SESSION_TOKEN, 'session-token');
    }
  });

  it('scrubs presigned URL signatures and security tokens but keeps the rest of the URL', () => {
    const url = `https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${ACCESS_KEY_ID}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Security-Token=${encodeURIComponent(SESSION_TOKEN)}&X-Amz-Signature=0123456789abcdef0123456789abcdef&X-Amz-Expires=60`;
    const out = redact(url);
    assert.ok(!out.includes('0123456789abcdef'));
    assert.ok(!out.includes(encodeURIComponent(SESSION_TOKEN)));
    assert.ok(out.includes('X-Amz-Signature=[REDACTED:signature]&X-Amz-Expires=60'));
    assert.ok(out.includes(`X-Amz-Credential=${ACCESS_KEY_ID}`));
  });

  it('scrubs Authorization header values and Bearer credentials', () => {
    const header =
      'Authorization: AWS4-HMAC-SHA256 Credential=AKIA/x, SignedHeaders=host, Signature=deadbeefdeadbeef\nHost: s3';
    assert.equal(redact(header), 'Authorization: [REDACTED:authorization]\nHost: s3');
    assert.equal(
      redact('{"authorization":"Basic dXNlcjpwYXNzd29yZA=="}'),
      '{"authorization":"[REDACTED:authorization]"}',
    );
    assert.equal(
      redact("headers: { authorization: 'Bearer abc' }"),
      "headers: { authorization: '[REDACTED:authorization]' }",
    );
    assert.equal(redact('using Bearer 0123456789abcdef0123 now'), 'using Bearer [REDACTED:bearer] now');
  });

  it('scrubs PEM private keys, also when cut off, and keeps public keys', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const priv = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const pub = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const body = priv.split('\n')[1] ?? '';
    const out = redact(`key:\n${priv}\nafter`);
    assertGone(out, body, 'private-key');
    assert.ok(out.endsWith('\nafter'));
    assertGone(redact(pkcs1), pkcs1.split('\n')[1] ?? '', 'private-key');
    const cut = redact(priv.slice(0, 200));
    assertGone(cut, body.slice(0, 20), 'private-key');
    assert.equal(redact(pub), pub);
    // JSON-escaped newlines, as in a serialised object
    assertGone(redact(JSON.stringify({ pem: priv })), body, 'private-key');
  });

  it('keeps access key ids, ARNs and decoded claims', () => {
    const text = `AccessKeyId=${ACCESS_KEY_ID} arn:aws:sts::123456789012:assumed-role/app/s {"iss":"https://i","sub":"system:serviceaccount:a:b","aud":["sts.amazonaws.com"]}`;
    assert.equal(redact(text), text);
    assert.equal(redact('secretKeyRef: {name: x}'), 'secretKeyRef: {name: x}');
  });
});

describe('registered secrets', () => {
  it('scrubs a registered value and its URL-encoded form anywhere', () => {
    const secret = 'registered/secret+value=1';
    assert.equal(registerSecret(secret), true);
    assert.equal(redact(`a ${secret} b`), 'a [REDACTED:registered] b');
    assert.equal(redact(`q=${encodeURIComponent(secret)}`), 'q=[REDACTED:registered]');
  });

  it('refuses short values that would scrub ordinary words', () => {
    assert.equal(registerSecret('test'), false);
    assert.equal(redact('a test run'), 'a test run');
  });

  it('tells a test-only listener about values registered before and after it subscribed', () => {
    registerSecret('before-subscribe-123');
    const seen: string[] = [];
    const unsubscribe = onSecretRegistered((v) => seen.push(v));
    registerSecret('after-subscribe-456');
    unsubscribe();
    registerSecret('after-unsubscribe-789');
    assert.ok(seen.includes('before-subscribe-123'));
    assert.ok(seen.includes('after-subscribe-456'));
    assert.ok(!seen.includes('after-unsubscribe-789'));
  });
});

describe('redactObject', () => {
  it('replaces secret fields whole and redacts strings deep, without touching the input', () => {
    const input = {
      Credentials: { AccessKeyId: ACCESS_KEY_ID, SecretAccessKey: SECRET_KEY, SessionToken: SESSION_TOKEN },
      status: { token: 'opaque-not-a-jwt-value' },
      users: [{ user: { 'client-key-data': 'LS0tLS1CRUdJTg==' } }],
      note: `saw ${JWT}`,
      count: 3,
      empty: { token: '' },
    };
    const copy = structuredClone(input);
    const out = redactObject(input);
    assert.deepEqual(input, copy, 'input unchanged');
    assert.deepEqual(out, {
      Credentials: {
        AccessKeyId: ACCESS_KEY_ID,
        SecretAccessKey: '[REDACTED:SecretAccessKey]',
        SessionToken: '[REDACTED:SessionToken]',
      },
      status: { token: '[REDACTED:token]' },
      users: [{ user: { 'client-key-data': '[REDACTED:client-key-data]' } }],
      note: 'saw [REDACTED:jwt]',
      count: 3,
      empty: { token: '' },
    });
  });

  it('keeps error name and message (redacted), survives cycles, summarises binary data', () => {
    const err = Object.assign(new Error(`AccessDenied for ${JWT}`), { Code: 'AccessDenied' });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const input: Record<string, unknown> = { err, cyclic, bytes: Buffer.from('secret bytes') };
    const out = redactObject(input) as Record<string, Record<string, unknown>>;
    assert.equal(out.err?.name, 'Error');
    assert.equal(out.err?.message, 'AccessDenied for [REDACTED:jwt]');
    assert.equal(out.err?.Code, 'AccessDenied');
    assert.equal(out.cyclic?.self, '[Circular]');
    assert.equal(out.bytes, '[binary 12 bytes]');
  });
});

describe('speed', () => {
  it('redacts 20k ordinary log lines quickly', () => {
    const line = '2026-01-01T00:00:00Z info pod app/s3-manager-7d9 Running, GET /api/v1/namespaces/app/pods 200 12ms';
    const start = performance.now();
    for (let i = 0; i < 20_000; i++) redact(`${line} ${i}`);
    const ms = performance.now() - start;
    // Generous bound for a loaded 2-core machine; typically far below it.
    assert.ok(ms < 2000, `20k lines took ${ms.toFixed(0)} ms`);
  });
});
