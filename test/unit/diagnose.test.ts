/**
 * Unit tests of support/diagnose/token.ts: every branch of the STS-style token diagnosis, with
 * locally generated keys and a fake fetchJson (no network).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import {
  anonymousFetchJson,
  diagnoseToken,
  type FetchJson,
  type TokenDiagnosis,
} from '../../support/diagnose/token.ts';
import { buildDiscoveryDocument } from '../../support/oidc/discovery.ts';
import { buildJwks, kidForKey } from '../../support/oidc/jwks.ts';

const ISSUER = 'https://oidc.example.test/cluster-a';
const DISCOVERY_URL = `${ISSUER}/.well-known/openid-configuration`;
const JWKS_URL = `${ISSUER}/keys.json`;
const SUB = 'system:serviceaccount:app:s3-manager';
const NOW = new Date('2026-01-01T00:00:00Z');
const NOW_S = Math.floor(NOW.getTime() / 1000);
const IDP = { url: 'oidc.example.test/cluster-a', clientIds: ['sts.amazonaws.com'] };

const signing = generateKeyPairSync('rsa', { modulusLength: 2048 });
const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
const KID = kidForKey(signing.publicKey);
const STRANGER_KID = kidForKey(stranger.publicKey);

interface TokenOptions {
  key?: KeyObject;
  kid?: string | null;
  iss?: string | null;
  aud?: string | string[];
  iat?: number;
  exp?: number;
  nbf?: number;
}

async function mintToken(o: TokenOptions = {}): Promise<string> {
  const header: { alg: string; kid?: string } = { alg: 'RS256' };
  if (o.kid !== null) header.kid = o.kid ?? KID;
  const jwt = new SignJWT({})
    .setProtectedHeader(header)
    .setSubject(SUB)
    .setAudience(o.aud ?? 'sts.amazonaws.com');
  if (o.iss !== null) jwt.setIssuer(o.iss ?? ISSUER);
  jwt.setIssuedAt(o.iat ?? NOW_S - 60).setExpirationTime(o.exp ?? NOW_S + 86400);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return jwt.sign(o.key ?? signing.privateKey);
}

type Routes = Record<string, { status: number; body: unknown } | Error>;

function fakeFetch(routes: Routes): FetchJson & { calls: string[] } {
  const calls: string[] = [];
  const f = async (url: string) => {
    calls.push(url);
    const r = routes[url];
    if (r instanceof Error) throw r;
    return r ?? { status: 404, body: '<Error><Code>NoSuchKey</Code></Error>' };
  };
  return Object.assign(f, { calls });
}

function healthyRoutes(overrides: Routes = {}): Routes {
  return {
    [DISCOVERY_URL]: { status: 200, body: buildDiscoveryDocument(ISSUER) },
    [JWKS_URL]: { status: 200, body: buildJwks([signing.publicKey]) },
    ...overrides,
  };
}

function check(d: TokenDiagnosis, name: string) {
  const c = d.checks.find((x) => x.name === name);
  assert.ok(c, `check ${name} is reported`);
  return c;
}

async function diagnose(token: string, routes: Routes = healthyRoutes(), idp: typeof IDP | null = IDP) {
  const d = await diagnoseToken({
    token,
    fetchJson: fakeFetch(routes),
    now: NOW,
    ...(idp ? { identityProvider: idp } : {}),
  });
  for (const part of token.split('.').filter((p) => p.length > 8)) {
    assert.ok(!JSON.stringify(d).includes(part), 'no part of the token appears in the diagnosis');
  }
  return d;
}

describe('diagnoseToken', () => {
  it('passes a token signed by a published key, for the right IdP and audience', async () => {
    const d = await diagnose(await mintToken());
    assert.equal(d.ok, true, JSON.stringify(d.checks, null, 1));
    assert.equal(d.firstFailure, undefined);
    assert.deepEqual(
      d.checks.map((c) => c.name),
      [
        'token-format',
        'discovery-document',
        'discovery-issuer-matches-token',
        'jwks',
        'key-for-kid',
        'signature',
        'idp-url-matches-issuer',
        'audience-in-idp-client-ids',
        'not-expired',
      ],
    );
  });

  it('fetches the discovery document at the issuer, then jwks_uri from it', async () => {
    const other = 'https://keys.example.test/elsewhere.json';
    const routes = healthyRoutes({
      [DISCOVERY_URL]: { status: 200, body: buildDiscoveryDocument(ISSUER, { jwksUri: other }) },
      [other]: { status: 200, body: buildJwks([signing.publicKey]) },
      [JWKS_URL]: { status: 500, body: null },
    });
    const fetchJson = fakeFetch(routes);
    const d = await diagnoseToken({ token: await mintToken(), fetchJson, now: NOW });
    assert.equal(d.ok, true);
    assert.deepEqual(fetchJson.calls, [DISCOVERY_URL, other]);
  });

  it('reports a token that is not a JWT and runs nothing else', async () => {
    const d = await diagnose('not-a-token');
    assert.equal(d.ok, false);
    assert.deepEqual(
      d.checks.map((c) => c.name),
      ['token-format'],
    );
    assert.match(d.firstFailure ?? '', /cannot be decoded: the token has 1 dot-separated segments/);
  });

  it('reports a token without iss', async () => {
    const d = await diagnose(await mintToken({ iss: null }));
    assert.match(d.firstFailure ?? '', /no iss claim/);
    assert.equal(check(d, 'signature').skipped, true);
    assert.equal(check(d, 'signature').ok, false);
  });

  it('names the URL and status when the discovery document is not public', async () => {
    const d = await diagnose(
      await mintToken(),
      healthyRoutes({ [DISCOVERY_URL]: { status: 403, body: 'AccessDenied' } }),
    );
    assert.equal(
      d.firstFailure,
      `GET ${DISCOVERY_URL} (discovery document) returned HTTP 403; STS fetches it anonymously and needs 200`,
    );
    for (const name of ['discovery-issuer-matches-token', 'jwks', 'key-for-kid', 'signature']) {
      assert.equal(check(d, name).skipped, true, name);
    }
    assert.equal(check(d, 'not-expired').ok, true, 'independent checks still run');
  });

  it('reports a transport failure and a non-JSON discovery document', async () => {
    const refused = await diagnose(
      await mintToken(),
      healthyRoutes({ [DISCOVERY_URL]: new Error('connect ECONNREFUSED') }),
    );
    assert.match(refused.firstFailure ?? '', /failed: connect ECONNREFUSED/);
    const html = await diagnose(await mintToken(), healthyRoutes({ [DISCOVERY_URL]: { status: 200, body: '<html>' } }));
    assert.match(html.firstFailure ?? '', /returned something that is not a JSON object/);
  });

  it('shows both strings when the discovery issuer differs from iss (trailing slash)', async () => {
    const routes = healthyRoutes({ [DISCOVERY_URL]: { status: 200, body: buildDiscoveryDocument(`${ISSUER}/`) } });
    const d = await diagnose(await mintToken(), routes);
    assert.equal(
      d.firstFailure,
      `the discovery document's issuer is "${ISSUER}/" but the token's iss is "${ISSUER}"; STS requires the exact same string`,
    );
    assert.equal(check(d, 'signature').ok, true, 'keys are still checked');
  });

  it('reports a discovery document without jwks_uri, and a JWKS that cannot be fetched or has no keys', async () => {
    const { jwks_uri: _omit, ...noJwks } = buildDiscoveryDocument(ISSUER);
    const a = await diagnose(await mintToken(), healthyRoutes({ [DISCOVERY_URL]: { status: 200, body: noJwks } }));
    assert.equal(a.firstFailure, 'the discovery document has no jwks_uri');
    const b = await diagnose(await mintToken(), healthyRoutes({ [JWKS_URL]: { status: 404, body: '' } }));
    assert.equal(
      b.firstFailure,
      `GET ${JWKS_URL} (jwks_uri) returned HTTP 404; STS fetches it anonymously and needs 200`,
    );
    const c = await diagnose(await mintToken(), healthyRoutes({ [JWKS_URL]: { status: 200, body: { keys: 'x' } } }));
    assert.equal(c.firstFailure, `${JWKS_URL} has no "keys" array`);
  });

  it('names the missing kid and the kids that are published (stale JWKS after rotation)', async () => {
    const d = await diagnose(await mintToken({ key: stranger.privateKey, kid: STRANGER_KID }));
    assert.equal(d.firstFailure, `kid ${STRANGER_KID} not found in ${JWKS_URL} (kids: ${KID})`);
    assert.equal(check(d, 'signature').skipped, true);
  });

  it('lists an empty kid as "" and matches a token without kid to it', async () => {
    const routes = healthyRoutes({
      [JWKS_URL]: { status: 200, body: buildJwks([signing.publicKey], { duplicateWithEmptyKid: true }) },
    });
    const d = await diagnose(await mintToken({ kid: null }), routes);
    assert.equal(d.ok, true, d.firstFailure);
    const noEmpty = await diagnose(await mintToken({ kid: null }));
    assert.equal(
      noEmpty.firstFailure,
      `the token has no kid and no key in ${JWKS_URL} has an empty kid (kids: ${KID})`,
    );
    const missing = await diagnose(await mintToken({ kid: 'zzz' }), routes);
    assert.equal(missing.firstFailure, `kid zzz not found in ${JWKS_URL} (kids: ${KID}, "")`);
  });

  it('reports a token whose kid is published but whose signature is from another key (forged)', async () => {
    const d = await diagnose(await mintToken({ key: stranger.privateKey, kid: KID }));
    assert.equal(
      d.firstFailure,
      `kid ${KID} in ${JWKS_URL}: the signature does not verify: the token was signed by a different private key than the one published`,
    );
    assert.equal(check(d, 'key-for-kid').ok, true);
  });

  it('refuses alg none and an alg that differs from the key', async () => {
    const good = await mintToken();
    const [, payload] = good.split('.');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: KID })).toString('base64url')}.${payload}.`;
    const d = await diagnose(none);
    assert.match(d.firstFailure ?? '', /alg "none" is not one STS accepts/);
    const rs384 = await new SignJWT({ sub: SUB, aud: 'sts.amazonaws.com', iss: ISSUER, exp: NOW_S + 60 })
      .setProtectedHeader({ alg: 'RS384', kid: KID })
      .sign(signing.privateKey);
    const e = await diagnose(rs384);
    assert.equal(e.firstFailure, `the token is signed RS384 but the key with kid ${KID} is for RS256`);
  });

  it('compares iss with the IdP URL without scheme and shows both', async () => {
    const d = await diagnose(await mintToken(), healthyRoutes(), { ...IDP, url: `${IDP.url}/` });
    assert.equal(
      d.firstFailure,
      `IdP URL "${IDP.url}/" does not match the token's iss "${ISSUER}" (without scheme: "${IDP.url}"); STS answers "No OpenIDConnect provider found"`,
    );
    const withScheme = await diagnose(await mintToken(), healthyRoutes(), { ...IDP, url: ISSUER });
    assert.equal(withScheme.ok, true);
  });

  it('names the audience that is not a client ID of the IdP', async () => {
    const d = await diagnose(await mintToken({ aud: ['sts.amazonaws.com', 'vault'] }));
    assert.equal(d.firstFailure, 'audience "vault" is not a client ID of the IdP (client IDs: "sts.amazonaws.com")');
    const empty = await diagnose(await mintToken({ aud: 'x' }), healthyRoutes(), { ...IDP, clientIds: [] });
    assert.equal(empty.firstFailure, 'audience "x" is not a client ID of the IdP (client IDs: none)');
  });

  it('skips the IdP checks when no IdP is given', async () => {
    const d = await diagnose(await mintToken({ aud: 'anything' }), healthyRoutes(), null);
    assert.equal(d.ok, true);
    assert.equal(
      d.checks.find((c) => c.name === 'audience-in-idp-client-ids'),
      undefined,
    );
  });

  it('reports an expired token and one not yet valid, with times', async () => {
    const expired = await diagnose(await mintToken({ iat: NOW_S - 7200, exp: NOW_S - 3600 }));
    assert.equal(
      expired.firstFailure,
      `the token expired at ${new Date((NOW_S - 3600) * 1000).toISOString()} (3600 s ago)`,
    );
    const atExp = await diagnose(await mintToken({ exp: NOW_S }));
    assert.equal(check(atExp, 'not-expired').ok, false, 'exp equal to now is expired');
    const early = await diagnose(await mintToken({ nbf: NOW_S + 120 }));
    assert.match(early.firstFailure ?? '', /not valid before .* \(120 s from now\)/);
  });

  it('names the first failure in STS order when several things are wrong', async () => {
    const token = await mintToken({ key: stranger.privateKey, kid: STRANGER_KID, exp: NOW_S - 1, iat: NOW_S - 100 });
    const d = await diagnose(token);
    assert.match(d.firstFailure ?? '', /^kid .* not found/);
    assert.equal(check(d, 'not-expired').ok, false);
  });
});

describe('anonymousFetchJson', () => {
  it('GETs without credentials and parses JSON, passing other text through', async () => {
    const seen: RequestInit[] = [];
    const fakeFetchImpl = (async (_url: string | URL | Request, init?: RequestInit) => {
      seen.push(init ?? {});
      return new Response(seen.length === 1 ? '{"a":1}' : 'plain', { status: seen.length === 1 ? 200 : 403 });
    }) as typeof fetch;
    const f = anonymousFetchJson(fakeFetchImpl);
    assert.deepEqual(await f('https://x/y'), { status: 200, body: { a: 1 } });
    assert.deepEqual(await f('https://x/z'), { status: 403, body: 'plain' });
    assert.equal(seen[0]?.credentials, 'omit');
    assert.equal(seen[0]?.headers, undefined);
  });
});
