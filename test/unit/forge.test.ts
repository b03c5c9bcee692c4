/**
 * Unit tests of support/oidc/forge.ts: a forged token keeps the genuine claims, is refused by the
 * STS-style diagnosis for exactly the reason it was forged for, and verifies with its own key (so a
 * refusal is never an artefact of a malformed token).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { diagnoseToken, type FetchJson } from '../../support/diagnose/token.ts';
import { buildDiscoveryDocument } from '../../support/oidc/discovery.ts';
import { forgeToken, unpublishedKid } from '../../support/oidc/forge.ts';
import { buildJwks, jwkForKey, kidForKey } from '../../support/oidc/jwks.ts';
import { decodeTokenClaims, decodeTokenHeader } from '../../support/oidc/token.ts';

const ISSUER = 'https://oidc.example.test/cluster-a';
const NOW = new Date('2026-01-01T00:00:00Z');
const NOW_S = Math.floor(NOW.getTime() / 1000);
const IDP = { url: 'oidc.example.test/cluster-a', clientIds: ['sts.amazonaws.com'] };
const cluster = generateKeyPairSync('rsa', { modulusLength: 2048 });
const CLUSTER_KID = kidForKey(cluster.publicKey);
const CLAIMS = {
  iss: ISSUER,
  sub: 'system:serviceaccount:app:s3-manager',
  aud: ['sts.amazonaws.com'],
  iat: NOW_S - 60,
  nbf: NOW_S - 60,
  exp: NOW_S + 3600,
  'kubernetes.io': { namespace: 'app', serviceaccount: { name: 's3-manager', uid: 'u1' } },
};

function fetchFor(jwks: unknown): FetchJson {
  const routes: Record<string, unknown> = {
    [`${ISSUER}/.well-known/openid-configuration`]: buildDiscoveryDocument(ISSUER),
    [`${ISSUER}/keys.json`]: jwks,
  };
  return async (url) => (url in routes ? { status: 200, body: routes[url] } : { status: 404, body: '' });
}

const failed = (d: Awaited<ReturnType<typeof diagnoseToken>>) =>
  d.checks.filter((c) => !c.ok && !c.skipped).map((c) => c.name);

describe('forgeToken', () => {
  it('keeps the claims and puts the requested kid into an RS256 header', async () => {
    const f = await forgeToken({ claims: CLAIMS, kid: CLUSTER_KID });
    assert.deepEqual(decodeTokenHeader(f.token), { alg: 'RS256', kid: CLUSTER_KID, typ: 'JWT' });
    const claims = decodeTokenClaims(f.token);
    assert.equal(claims.sub, CLAIMS.sub);
    assert.deepEqual(claims.aud, CLAIMS.aud);
    assert.equal(claims.exp, CLAIMS.exp);
  });

  it('is refused at the signature when it carries the cluster kid', async () => {
    const f = await forgeToken({ claims: CLAIMS, kid: CLUSTER_KID });
    const d = await diagnoseToken({
      token: f.token,
      fetchJson: fetchFor(buildJwks([cluster.publicKey])),
      identityProvider: IDP,
      now: NOW,
    });
    assert.deepEqual(failed(d), ['signature']);
    assert.match(d.firstFailure ?? '', /different private key/);
  });

  it('is refused at the key lookup under an unpublished kid', async () => {
    const kid = unpublishedKid();
    assert.notEqual(kid, unpublishedKid(), 'two unpublished kids must differ');
    const f = await forgeToken({ claims: CLAIMS, kid });
    const d = await diagnoseToken({
      token: f.token,
      fetchJson: fetchFor(buildJwks([cluster.publicKey])),
      identityProvider: IDP,
      now: NOW,
    });
    assert.deepEqual(failed(d), ['key-for-kid']);
    assert.match(d.firstFailure ?? '', new RegExp(`kid ${kid} not found`));
  });

  it('moves iat, nbf and exp together, so a shifted token is only expired', async () => {
    const f = await forgeToken({ claims: CLAIMS, kid: CLUSTER_KID, shiftSeconds: -7200 });
    const claims = decodeTokenClaims(f.token);
    assert.equal(claims.exp, CLAIMS.exp - 7200);
    assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), CLAIMS.exp - CLAIMS.iat);
    // Published under its own key, the only remaining reason to refuse it is expiry.
    const d = await diagnoseToken({
      token: f.token,
      fetchJson: fetchFor({ keys: [jwkForKey(f.publicKey, CLUSTER_KID)] }),
      identityProvider: IDP,
      now: NOW,
    });
    assert.deepEqual(failed(d), ['not-expired']);
  });

  it('verifies with its own public key (the token is well formed)', async () => {
    const f = await forgeToken({ claims: CLAIMS });
    const d = await diagnoseToken({
      token: f.token,
      fetchJson: fetchFor({ keys: [jwkForKey(f.publicKey, f.kid)] }),
      identityProvider: IDP,
      now: NOW,
    });
    assert.equal(d.ok, true, d.firstFailure);
  });
});
