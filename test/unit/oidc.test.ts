/**
 * Unit tests of support/oidc: keys from every PEM flavour, the kid kube-apiserver computes, the
 * JWKS and discovery document IRSA publishes, and token decoding that never leaks the token.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { exportJWK, SignJWT } from 'jose';
import { UsageError } from '../../support/errors.ts';
import {
  buildDiscoveryDocument,
  discoveryUrl,
  issuerHostPath,
  validateDiscoveryDocument,
} from '../../support/oidc/discovery.ts';
import {
  buildJwks,
  foreignKeys,
  jwkForKey,
  jwkThumbprint,
  keysFromJwks,
  keysFromOpenShiftConfigMap,
  kidForKey,
  publicKeyFromPem,
  publicKeysFromPemBundle,
} from '../../support/oidc/jwks.ts';
import { decodeTokenClaims, decodeTokenHeader, describeToken, TokenFormatError } from '../../support/oidc/token.ts';

// Fixture key pair generated with openssl; the private half was discarded.
// FIXTURE_KID was computed independently of this code:
//   openssl pkey -pubin -in pub.pem -outform DER | openssl dgst -sha256 -binary | basenc --base64url
// (padding `=` removed, as kube-apiserver's base64.RawURLEncoding does).
const FIXTURE_KID = 'B9IrajWl9ELEvShA5RveoLbwzs2x0adAa-UYrsFDY64';
const OTHER_KID = 'S3HuKYjbHqs6R9d5NvTICUIwAXZKUhhyEfggXhmJG0g';
const SPKI_PEM = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqk9ikBi7XlZCX7xQJzvF
+LUGXlPe9lP7QdI2L+2m8N/gBkmLsJFYoEHQlrbraMcntydWFfFSGZDS4BL0K6HH
3Uh9cok9pvuasrfljrr2WW5HwT6Ux2o4hStEAVkmpvVwQVcwkkArwpzS05OOLLNx
zN3QO/qrfm3pMtNHO+FUdJkY35wq4zV5xHhKU7LIRXrfuFatKApgv49cjE+Nc6ZO
+u78IpTSHtava3pZKQAV5el3CXRU9Sqswz5HACwaFGtRbkRukmVD0NDqMGsElySH
vgrtDfPr2RpzG+oeDxzqg179IW6RoJM9B3z026TdvL/h9AlYoHEDXcnbRoDC/MBC
LwIDAQAB
-----END PUBLIC KEY-----\n`;
const PKCS1_PEM = `-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAqk9ikBi7XlZCX7xQJzvF+LUGXlPe9lP7QdI2L+2m8N/gBkmLsJFY
oEHQlrbraMcntydWFfFSGZDS4BL0K6HH3Uh9cok9pvuasrfljrr2WW5HwT6Ux2o4
hStEAVkmpvVwQVcwkkArwpzS05OOLLNxzN3QO/qrfm3pMtNHO+FUdJkY35wq4zV5
xHhKU7LIRXrfuFatKApgv49cjE+Nc6ZO+u78IpTSHtava3pZKQAV5el3CXRU9Sqs
wz5HACwaFGtRbkRukmVD0NDqMGsElySHvgrtDfPr2RpzG+oeDxzqg179IW6RoJM9
B3z026TdvL/h9AlYoHEDXcnbRoDC/MBCLwIDAQAB
-----END RSA PUBLIC KEY-----\n`;
const CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIDETCCAfmgAwIBAgIUB39ObpBEWl2zCJRfCnCQwkBEqt4wDQYJKoZIhvcNAQEL
BQAwFzEVMBMGA1UEAwwMaXJzYS1maXh0dXJlMCAXDTI2MTEzMDAwMzA0MloYDzIx
MjYxMTA2MDAzMDQyWjAXMRUwEwYDVQQDDAxpcnNhLWZpeHR1cmUwggEiMA0GCSqG
SIb3DQEBAQUAA4IBDwAwggEKAoIBAQCqT2KQGLteVkJfvFAnO8X4tQZeU972U/tB
0jYv7abw3+AGSYuwkVigQdCWtutoxye3J1YV8VIZkNLgEvQrocfdSH1yiT2m+5qy
t+WOuvZZbkfBPpTHajiFK0QBWSam9XBBVzCSQCvCnNLTk44ss3HM3dA7+qt+beky
00c74VR0mRjfnCrjNXnEeEpTsshFet+4Vq0oCmC/j1yMT41zpk767vwilNIe1q9r
elkpABXl6XcJdFT1KqzDPkcALBoUa1FuRG6SZUPQ0OowawSXJIe+Cu0N8+vZGnMb
6h4PHOqDXv0hbpGgkz0HfPTbpN28v+H0CVigcQNdydtGgML8wEIvAgMBAAGjUzBR
MB0GA1UdDgQWBBRzsuNLqV6uFDVKbTHMUNGuniXKwjAfBgNVHSMEGDAWgBRzsuNL
qV6uFDVKbTHMUNGuniXKwjAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUA
A4IBAQBM7jCAdzNgUKDX3LT1dI7LA3oXE80J4msvi0YS7Vvo1AX1nlgUzo0mh8uK
n/P6KWauz5XRd1iaphUemorYgpDd34v3ozfhqNBWItgyWN8XUhlPpzOf+fpKOh4F
hqFALyDQyzWR7Go86s8M1+zaLrm0BOj8+8Y1PapQzpmz+szUJ6hpUPukWT583QCX
rFvTcH8ORpWkwzkIesiJsmdOqIOb7ro06LswS//QQ42yItolPfoofhcF7DmohIZX
dQ4oV8sfFxS7Bs0SkGlMr9djrFVIA0BlPobUBo3jaI/gZPh4HZdHPvsBeIL0jSou
QIwUgJpy2PyDlFlGzWH0NMFfYn3e
-----END CERTIFICATE-----\n`;
const OTHER_SPKI_PEM = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAjvF15uGJkujNOqiuexIV
itqMT3U7lEJXZMRTtqYc38wrkkEb//Aiivxe6KrNheqob5I/6yuBlr6ltPaUKqeK
gS7Kss6Lz9r+c8whEek5wDxzktko1N4DzvHCz2QYZ/0T9jqnwzNks8qscmdMitpi
iA+mqmdlHNIUYeKw52P/Hr/TxZagyODCLYkkAwsk5AncU4Zy59QJJhWmva5ivr6H
1ywXaRP4Te1lgO9lvZ8e7TiYePYGcNAs/JNJIUsgQ4iij5AJvmpZih849FgjkBAA
SO3cWrnaXqSi/GvSYNUMy86ng12F1YHxODZCCcfPVYrz+dP+D40SK/uPCzwO63rU
dwIDAQAB
-----END PUBLIC KEY-----\n`;
// OpenShift's bound-sa-token-signing-certs: SPKI bytes under the PKCS#1 label.
const OPENSHIFT_PEM = SPKI_PEM.replaceAll('PUBLIC KEY', 'RSA PUBLIC KEY');

function spkiDer(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

describe('publicKeyFromPem', () => {
  it('reads every PEM flavour of the same key to the same SPKI', () => {
    const reference = spkiDer(publicKeyFromPem(SPKI_PEM));
    for (const [name, pem] of [
      ['PKCS#1', PKCS1_PEM],
      ['OpenShift SPKI-as-RSA', OPENSHIFT_PEM],
      ['certificate', CERT_PEM],
    ] as const) {
      assert.deepEqual(spkiDer(publicKeyFromPem(pem)), reference, name);
    }
  });

  it('reads the OpenShift flavour that node refuses on its own', () => {
    assert.throws(() => createPublicKey(OPENSHIFT_PEM));
    assert.equal(kidForKey(publicKeyFromPem(OPENSHIFT_PEM)), FIXTURE_KID);
  });

  it('derives the public half of a private key', () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    assert.deepEqual(spkiDer(publicKeyFromPem(pem)), spkiDer(publicKey));
  });

  it('names the source and block of a failure without quoting the PEM body', () => {
    const broken = SPKI_PEM.replace('LwIDAQAB', ''); // truncated DER, still valid base64
    assert.throws(
      () => publicKeyFromPem(broken, 'service-account-003.pub'),
      (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /^service-account-003\.pub: PEM block 1 \(PUBLIC KEY\)/);
        assert.doesNotMatch(e.message, /MIIB/);
        return true;
      },
    );
  });

  it('refuses text with no PEM block, several blocks, or a non-key label', () => {
    assert.throws(() => publicKeyFromPem('hello'), /no PEM block/);
    assert.throws(() => publicKeyFromPem(SPKI_PEM + OTHER_SPKI_PEM), /2 PEM blocks/);
    assert.throws(
      () => publicKeyFromPem('-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n'),
      /labelled DH PARAMETERS/,
    );
  });
});

describe('publicKeysFromPemBundle', () => {
  it('reads every block in order', () => {
    const keys = publicKeysFromPemBundle(`${SPKI_PEM}\n${OTHER_SPKI_PEM}`);
    assert.deepEqual(keys.map(kidForKey), [FIXTURE_KID, OTHER_KID]);
  });

  it('names the block that failed', () => {
    const bad = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n';
    assert.throws(
      () => publicKeysFromPemBundle(SPKI_PEM + bad, 'bundle.pem'),
      /^UsageError: bundle\.pem: PEM block 2 /,
    );
  });
});

describe('kidForKey', () => {
  it('equals the kid computed with openssl over the DER SubjectPublicKeyInfo', () => {
    assert.equal(kidForKey(publicKeyFromPem(SPKI_PEM)), FIXTURE_KID);
    assert.equal(kidForKey(publicKeyFromPem(OTHER_SPKI_PEM)), OTHER_KID);
  });

  it('is base64url without padding and differs from the RFC 7638 thumbprint', async () => {
    const kid = kidForKey(publicKeyFromPem(SPKI_PEM));
    assert.match(kid, /^[A-Za-z0-9_-]{43}$/);
    const { calculateJwkThumbprint } = await import('jose');
    assert.notEqual(kid, await calculateJwkThumbprint(await exportJWK(publicKeyFromPem(SPKI_PEM))));
  });
});

describe('jwkForKey and buildJwks', () => {
  it('builds {kty, alg, use, kid, n, e} with the same n and e as jose', async () => {
    const key = publicKeyFromPem(SPKI_PEM);
    const jwk = jwkForKey(key);
    const viaJose = await exportJWK(key);
    assert.deepEqual(jwk, { kty: 'RSA', alg: 'RS256', use: 'sig', kid: FIXTURE_KID, n: viaJose.n, e: viaJose.e });
    assert.equal(jwk.e, 'AQAB');
    assert.equal(jwkForKey(key, 'custom').kid, 'custom');
  });

  it('duplicates each key with an empty kid when asked, as the article does', () => {
    const keys = [publicKeyFromPem(SPKI_PEM), publicKeyFromPem(OTHER_SPKI_PEM)];
    assert.deepEqual(
      buildJwks(keys).keys.map((k) => k.kid),
      [FIXTURE_KID, OTHER_KID],
    );
    const dup = buildJwks(keys, { duplicateWithEmptyKid: true }).keys;
    assert.deepEqual(
      dup.map((k) => k.kid),
      [FIXTURE_KID, OTHER_KID, '', ''],
    );
    assert.equal(dup[2]?.n, dup[0]?.n);
    assert.equal(dup[3]?.n, dup[1]?.n);
  });

  it('publishes a key given twice once', () => {
    const key = publicKeyFromPem(SPKI_PEM);
    assert.equal(buildJwks([key, publicKeyFromPem(PKCS1_PEM)]).keys.length, 1);
  });

  it('supports EC P-256 keys as ES256', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = jwkForKey(publicKey);
    assert.equal(jwk.alg, 'ES256');
    assert.equal(jwk.kty, 'EC');
    assert.equal(jwk.kid, kidForKey(publicKey));
  });
});

describe('keysFromJwks', () => {
  it('round-trips a built JWKS with kids', () => {
    const jwks = buildJwks([publicKeyFromPem(SPKI_PEM)], { duplicateWithEmptyKid: true });
    const keys = keysFromJwks(JSON.parse(JSON.stringify(jwks)));
    assert.deepEqual(
      keys.map((k) => k.kid),
      [FIXTURE_KID, ''],
    );
    assert.deepEqual(spkiDer(keys[0]?.key as KeyObject), spkiDer(publicKeyFromPem(SPKI_PEM)));
  });

  it('refuses a document without keys, a broken entry, and a private key', () => {
    assert.throws(() => keysFromJwks({ foo: 1 }), /no "keys" array/);
    assert.throws(() => keysFromJwks({ keys: [{ kty: 'RSA', kid: 'x' }] }), /keys\[0\] \(kid "x"\) is not a usable/);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const priv = privateKey.export({ format: 'jwk' });
    assert.throws(() => keysFromJwks({ keys: [priv] }), /private key/);
  });
});

describe('keysFromOpenShiftConfigMap', () => {
  it('reads every service-account-*.pub entry sorted by name and ignores the rest', () => {
    const keys = keysFromOpenShiftConfigMap({
      'service-account-002.pub': OTHER_SPKI_PEM.replaceAll('PUBLIC KEY', 'RSA PUBLIC KEY'),
      'ca-bundle.crt': 'not a key',
      'service-account-001.pub': OPENSHIFT_PEM,
    });
    assert.deepEqual(keys.map(kidForKey), [FIXTURE_KID, OTHER_KID]);
  });

  it('names the entry that failed and refuses a ConfigMap without keys', () => {
    assert.throws(
      () => keysFromOpenShiftConfigMap({ 'service-account-001.pub': OPENSHIFT_PEM, 'service-account-002.pub': 'x' }),
      /service-account-002\.pub: no PEM block/,
    );
    assert.throws(
      () => keysFromOpenShiftConfigMap({ 'ca.crt': CERT_PEM }),
      /no service-account-\*\.pub entry \(entries: ca\.crt\)/,
    );
  });
});

describe('discovery document', () => {
  it('has the fields of the demo repository', () => {
    assert.deepEqual(buildDiscoveryDocument('https://b.s3.amazonaws.com/oidc'), {
      issuer: 'https://b.s3.amazonaws.com/oidc',
      jwks_uri: 'https://b.s3.amazonaws.com/oidc/keys.json',
      authorization_endpoint: 'urn:kubernetes:programmatic_authorization',
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      claims_supported: ['aud', 'exp', 'sub', 'iat', 'iss'],
    });
  });

  it('keeps a trailing slash in issuer but not doubled in jwks_uri; honours jwksUri', () => {
    const doc = buildDiscoveryDocument('https://h/p/');
    assert.equal(doc.issuer, 'https://h/p/');
    assert.equal(doc.jwks_uri, 'https://h/p/keys.json');
    assert.equal(buildDiscoveryDocument('https://h', { jwksUri: 'https://k/j' }).jwks_uri, 'https://k/j');
  });

  it('issuerHostPath strips the scheme only', () => {
    assert.equal(issuerHostPath('https://s3.us-east-1.amazonaws.com/bucket'), 's3.us-east-1.amazonaws.com/bucket');
    assert.equal(issuerHostPath('https://h/p/'), 'h/p/');
    assert.equal(issuerHostPath('http://127.0.0.1:4566/b'), '127.0.0.1:4566/b');
    assert.equal(issuerHostPath('h/p'), 'h/p');
  });

  it('discoveryUrl removes one terminating slash before appending', () => {
    assert.equal(discoveryUrl('https://h/p/'), 'https://h/p/.well-known/openid-configuration');
    assert.equal(discoveryUrl('https://h'), 'https://h/.well-known/openid-configuration');
  });

  it('validates a built document and names each problem', () => {
    assert.deepEqual(validateDiscoveryDocument(buildDiscoveryDocument('https://h/p')), {
      ok: true,
      problems: [],
      warnings: [],
    });
    const http = validateDiscoveryDocument(buildDiscoveryDocument('http://127.0.0.1:1/b'));
    assert.equal(http.ok, true);
    assert.match(http.warnings[0] ?? '', /http: AWS IAM requires https/);
    const bad = validateDiscoveryDocument({
      issuer: 'https://h?x=1',
      id_token_signing_alg_values_supported: ['ES256'],
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
    });
    assert.equal(bad.ok, false);
    assert.deepEqual(bad.problems, [
      'issuer "https://h?x=1" has a query or fragment; OIDC forbids both',
      'jwks_uri is missing or not a string (got undefined)',
      'id_token_signing_alg_values_supported ["ES256"] does not include "RS256"',
    ]);
    assert.equal(validateDiscoveryDocument([]).ok, false);
  });
});

describe('token decoding', () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const now = 1_700_000_000;
  const tokenPromise = new SignJWT({
    'kubernetes.io': {
      namespace: 'ns1',
      pod: { name: 'p1', uid: 'pu' },
      serviceaccount: { name: 's3-manager', uid: 'su' },
    },
  })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .setIssuer('https://issuer/x')
    .setSubject('system:serviceaccount:ns1:s3-manager')
    .setAudience('sts.amazonaws.com')
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 86400)
    .sign(privateKey);

  it('decodes header and claims, aud always an array', async () => {
    const token = await tokenPromise;
    assert.deepEqual(decodeTokenHeader(token), { alg: 'RS256', kid: 'k1' });
    const claims = decodeTokenClaims(token);
    assert.equal(claims.iss, 'https://issuer/x');
    assert.equal(claims.sub, 'system:serviceaccount:ns1:s3-manager');
    assert.deepEqual(claims.aud, ['sts.amazonaws.com']);
    assert.equal(claims.exp, now + 86400);
    assert.equal(claims.iat, now);
    assert.equal(claims.nbf, now);
    assert.deepEqual(claims.kubernetes, {
      namespace: 'ns1',
      serviceAccount: 's3-manager',
      serviceAccountUid: 'su',
      pod: 'p1',
      podUid: 'pu',
    });
  });

  it('describeToken gives lifetime and never the token or its signature', async () => {
    const token = await tokenPromise;
    const d = describeToken(token);
    assert.equal(d.lifetimeSeconds, 86400);
    assert.equal(d.expiresAt, new Date((now + 86400) * 1000).toISOString());
    const text = JSON.stringify(d);
    const [h, p, s] = token.split('.');
    for (const part of [h, p, s]) assert.ok(part && !text.includes(part));
  });

  it('describes a malformed token by shape only', () => {
    assert.deepEqual(describeToken('abc.def'), { malformed: 'the token has 2 dot-separated segments; a JWT has 3' });
    assert.throws(() => decodeTokenClaims('a.b!.c'), TokenFormatError);
    const notJson = `${Buffer.from('{}').toString('base64url')}.${Buffer.from('nope').toString('base64url')}.sig`;
    assert.throws(() => decodeTokenClaims(notJson), /payload is not JSON/);
  });
});

describe('jwkThumbprint and foreignKeys', () => {
  const cluster = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;

  it('computes the RFC 7638 thumbprint (the RFC 7638 §3.1 example key)', () => {
    const n =
      '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw';
    const key = createPublicKey({ key: { kty: 'RSA', n, e: 'AQAB' }, format: 'jwk' });
    assert.equal(jwkThumbprint(key), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it("finds the entries that are none of the cluster's keys, by key material", () => {
    const jwks = {
      keys: [
        jwkForKey(cluster),
        { ...jwkForKey(cluster), kid: '' }, // the article's copy under kid "": the same key
        { ...jwkForKey(other), kid: kidForKey(cluster) }, // another key under the cluster's kid
        jwkForKey(other, 'extra'),
        { kty: 'RSA', kid: 'broken', n: 'AQAB' },
      ],
    };
    const found = foreignKeys(jwks, [cluster]);
    assert.deepEqual(
      found.map((f) => [f.index, f.kid, f.thumbprint === undefined ? f.problem?.split(':')[0] : f.thumbprint]),
      [
        [2, kidForKey(cluster), jwkThumbprint(other)],
        [3, 'extra', jwkThumbprint(other)],
        [4, 'broken', 'not a usable public key'],
      ],
    );
    assert.deepEqual(foreignKeys(buildJwks([cluster], { duplicateWithEmptyKid: true }), [cluster]), []);
  });
});
