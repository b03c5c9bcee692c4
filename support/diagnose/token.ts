/**
 * Diagnosis of a web-identity token the way STS checks it, from the outside and read-only:
 * discovery document fetched anonymously from the token's issuer, its `issuer` equal to `iss`,
 * the key found by `kid` in `jwks_uri`, the signature, `iss` against the IAM IdP's URL, `aud`
 * against the IdP's client IDs, and the validity period.
 *
 * Every check that runs is reported, with a detail that names the strings compared; checks that
 * depend on a failed one are reported as skipped (never as passed). The token itself never appears
 * in a detail. Network access goes through the injected fetchJson only.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import { discoveryUrl, issuerHostPath } from '../oidc/discovery.ts';
import { decodeTokenClaims, decodeTokenHeader, type TokenClaims, type TokenHeader } from '../oidc/token.ts';

export type FetchJson = (url: string) => Promise<{ status: number; body: unknown }>;

export type TokenCheckName =
  | 'token-format'
  | 'discovery-document'
  | 'discovery-issuer-matches-token'
  | 'jwks'
  | 'key-for-kid'
  | 'signature'
  | 'idp-url-matches-issuer'
  | 'audience-in-idp-client-ids'
  | 'not-before'
  | 'not-expired';

export interface TokenCheck {
  name: TokenCheckName;
  ok: boolean;
  detail: string;
  /** The check could not run because an earlier one failed; `ok` is false. */
  skipped?: boolean;
}

export interface TokenDiagnosis {
  ok: boolean;
  checks: TokenCheck[];
  /** Detail of the first failed check that ran, in the order above. */
  firstFailure?: string;
}

export interface DiagnoseTokenInput {
  token: string;
  fetchJson: FetchJson;
  /** The IAM OIDC provider as GetOpenIDConnectProvider returns it (Url without scheme is fine). */
  identityProvider?: { url: string; clientIds: string[] };
  now?: Date;
}

/** Algorithms STS accepts for OIDC tokens; kube-apiserver signs RS256 (or ES256 with EC keys). */
const STS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function q(s: string): string {
  return JSON.stringify(s);
}

function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

function isoFromEpoch(seconds: number): string {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? String(seconds) : d.toISOString();
}

/** GET a JSON document; never throws: a transport failure becomes a failed check detail. */
async function fetchDocument(
  fetchJson: FetchJson,
  url: string,
  what: string,
): Promise<{ ok: true; body: Record<string, unknown> } | { ok: false; detail: string }> {
  let response: { status: number; body: unknown };
  try {
    response = await fetchJson(url);
  } catch (e) {
    return { ok: false, detail: `GET ${url} (${what}) failed: ${describeError(e)}` };
  }
  if (response.status !== 200) {
    return {
      ok: false,
      detail: `GET ${url} (${what}) returned HTTP ${response.status}; STS fetches it anonymously and needs 200`,
    };
  }
  if (!isRecord(response.body)) {
    return { ok: false, detail: `GET ${url} (${what}) returned something that is not a JSON object` };
  }
  return { ok: true, body: response.body };
}

/** Collects checks in order; a check added after a failure it depends on is marked skipped. */
class CheckList {
  readonly checks: TokenCheck[] = [];
  pass(name: TokenCheckName, detail: string): void {
    this.checks.push({ name, ok: true, detail });
  }
  fail(name: TokenCheckName, detail: string): void {
    this.checks.push({ name, ok: false, detail });
  }
  skip(name: TokenCheckName, because: string): void {
    this.checks.push({ name, ok: false, skipped: true, detail: `not checked: ${because}` });
  }
  result(): TokenDiagnosis {
    const first = this.checks.find((c) => !c.ok && !c.skipped);
    const diagnosis: TokenDiagnosis = { ok: this.checks.every((c) => c.ok), checks: this.checks };
    if (first) diagnosis.firstFailure = first.detail;
    return diagnosis;
  }
}

/** The JWKS entries that could verify a token with this kid (kid absent: entries with an empty kid). */
function candidateKeys(
  jwks: Record<string, unknown>,
  kid: string | undefined,
): { found: { jwk: Record<string, unknown>; index: number }[]; kids: string[] } {
  const entries = Array.isArray(jwks.keys) ? jwks.keys : [];
  const kids: string[] = [];
  const found: { jwk: Record<string, unknown>; index: number }[] = [];
  entries.forEach((entry: unknown, index: number) => {
    if (!isRecord(entry)) return;
    const entryKid = typeof entry.kid === 'string' ? entry.kid : '';
    kids.push(entryKid);
    if (entryKid === (kid ?? '')) found.push({ jwk: entry, index });
  });
  return { found, kids };
}

function listKids(kids: string[]): string {
  return kids.length === 0 ? 'none' : kids.map((k) => (k === '' ? '""' : k)).join(', ');
}

async function checkKeysAndSignature(
  list: CheckList,
  input: DiagnoseTokenInput,
  header: TokenHeader,
  discovery: Record<string, unknown> | undefined,
): Promise<void> {
  const jwksUri = discovery?.jwks_uri;
  if (!discovery || typeof jwksUri !== 'string' || jwksUri === '') {
    const because = discovery ? 'the discovery document has no jwks_uri' : 'no discovery document';
    if (discovery) list.fail('jwks', 'the discovery document has no jwks_uri');
    else list.skip('jwks', because);
    list.skip('key-for-kid', because);
    list.skip('signature', because);
    return;
  }
  const jwks = await fetchDocument(input.fetchJson, jwksUri, 'jwks_uri');
  if (!jwks.ok) {
    list.fail('jwks', jwks.detail);
    list.skip('key-for-kid', 'the JWKS could not be fetched');
    list.skip('signature', 'the JWKS could not be fetched');
    return;
  }
  if (!Array.isArray(jwks.body.keys)) {
    list.fail('jwks', `${jwksUri} has no "keys" array`);
    list.skip('key-for-kid', 'the JWKS has no keys');
    list.skip('signature', 'the JWKS has no keys');
    return;
  }
  list.pass('jwks', `${jwksUri} lists ${jwks.body.keys.length} key(s)`);

  const { found, kids } = candidateKeys(jwks.body, header.kid);
  const [match] = found;
  if (!match) {
    const detail =
      header.kid === undefined
        ? `the token has no kid and no key in ${jwksUri} has an empty kid (kids: ${listKids(kids)})`
        : `kid ${header.kid} not found in ${jwksUri} (kids: ${listKids(kids)})`;
    list.fail('key-for-kid', detail);
    list.skip('signature', 'no key for the token');
    return;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: match.jwk as JsonWebKey, format: 'jwk' });
  } catch (e) {
    list.fail('key-for-kid', `the key with kid ${q(header.kid ?? '')} in ${jwksUri} is unusable: ${describeError(e)}`);
    list.skip('signature', 'no usable key for the token');
    return;
  }
  list.pass('key-for-kid', `kid ${header.kid ?? '""'} found in ${jwksUri} (keys[${match.index}])`);

  const alg = header.alg ?? '';
  const keyAlg = typeof match.jwk.alg === 'string' ? match.jwk.alg : undefined;
  if (!STS_ALGORITHMS.includes(alg)) {
    list.fail('signature', `the token's alg ${q(alg)} is not one STS accepts (${STS_ALGORITHMS.join(', ')})`);
    return;
  }
  if (keyAlg !== undefined && keyAlg !== alg) {
    list.fail('signature', `the token is signed ${alg} but the key with kid ${header.kid ?? '""'} is for ${keyAlg}`);
    return;
  }
  try {
    await compactVerify(input.token.trim(), key, { algorithms: [alg] });
    list.pass('signature', `${alg} signature verifies with kid ${header.kid ?? '""'} from ${jwksUri}`);
  } catch (e) {
    const code = isRecord(e) && typeof e.code === 'string' ? e.code : '';
    const why =
      code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
        ? 'the signature does not verify: the token was signed by a different private key than the one published'
        : `verification failed: ${describeError(e)}`;
    list.fail('signature', `kid ${header.kid ?? '""'} in ${jwksUri}: ${why}`);
  }
}

function checkIdentityProvider(
  list: CheckList,
  claims: TokenClaims,
  idp: DiagnoseTokenInput['identityProvider'],
): void {
  if (!idp) return;
  const iss = claims.iss;
  if (iss === undefined) {
    list.skip('idp-url-matches-issuer', 'the token has no iss');
  } else {
    // IAM stores the IdP URL without scheme and STS looks the provider up by the token's iss.
    const want = issuerHostPath(iss);
    const have = issuerHostPath(idp.url);
    if (want === have) list.pass('idp-url-matches-issuer', `IdP URL ${q(have)} matches the token's iss ${q(iss)}`);
    else
      list.fail(
        'idp-url-matches-issuer',
        `IdP URL ${q(have)} does not match the token's iss ${q(iss)} (without scheme: ${q(want)}); ` +
          `STS answers "No OpenIDConnect provider found"`,
      );
  }
  const missing = claims.aud.filter((a) => !idp.clientIds.includes(a));
  if (claims.aud.length === 0) {
    list.fail('audience-in-idp-client-ids', 'the token has no aud claim');
  } else if (missing.length > 0) {
    list.fail(
      'audience-in-idp-client-ids',
      `audience ${missing.map(q).join(', ')} is not a client ID of the IdP (client IDs: ${idp.clientIds.map(q).join(', ') || 'none'})`,
    );
  } else {
    list.pass('audience-in-idp-client-ids', `audience ${claims.aud.map(q).join(', ')} is among the IdP's client IDs`);
  }
}

function checkValidity(list: CheckList, claims: TokenClaims, now: Date): void {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  if (claims.nbf !== undefined) {
    if (claims.nbf > nowSeconds) {
      list.fail(
        'not-before',
        `the token is not valid before ${isoFromEpoch(claims.nbf)} (${claims.nbf - nowSeconds} s from now)`,
      );
    } else list.pass('not-before', `valid since ${isoFromEpoch(claims.nbf)}`);
  }
  if (claims.exp === undefined) {
    list.fail('not-expired', 'the token has no exp claim');
  } else if (claims.exp <= nowSeconds) {
    list.fail('not-expired', `the token expired at ${isoFromEpoch(claims.exp)} (${nowSeconds - claims.exp} s ago)`);
  } else {
    list.pass('not-expired', `expires at ${isoFromEpoch(claims.exp)} (in ${claims.exp - nowSeconds} s)`);
  }
}

/** Checks a token as STS would, naming the first mismatch. Never throws for a bad token or server. */
export async function diagnoseToken(input: DiagnoseTokenInput): Promise<TokenDiagnosis> {
  const list = new CheckList();
  let header: TokenHeader;
  let claims: TokenClaims;
  try {
    header = decodeTokenHeader(input.token);
    claims = decodeTokenClaims(input.token);
  } catch (e) {
    list.fail('token-format', `the token cannot be decoded: ${describeError(e)}`);
    return list.result();
  }
  list.pass('token-format', `JWT with alg ${header.alg ?? 'none'}, kid ${header.kid ?? 'none'}`);

  let discovery: Record<string, unknown> | undefined;
  if (claims.iss === undefined) {
    list.fail('discovery-document', 'the token has no iss claim, so there is no issuer to fetch keys from');
    list.skip('discovery-issuer-matches-token', 'the token has no iss');
  } else {
    const url = discoveryUrl(claims.iss);
    const fetched = await fetchDocument(input.fetchJson, url, 'discovery document');
    if (!fetched.ok) {
      list.fail('discovery-document', fetched.detail);
      list.skip('discovery-issuer-matches-token', 'no discovery document');
    } else {
      discovery = fetched.body;
      list.pass('discovery-document', `GET ${url} returned a JSON document`);
      const docIssuer = discovery.issuer;
      if (docIssuer === claims.iss) {
        list.pass('discovery-issuer-matches-token', `issuer ${q(claims.iss)} equals the token's iss`);
      } else {
        list.fail(
          'discovery-issuer-matches-token',
          `the discovery document's issuer is ${typeof docIssuer === 'string' ? q(docIssuer) : 'missing'} ` +
            `but the token's iss is ${q(claims.iss)}; STS requires the exact same string`,
        );
      }
    }
  }
  await checkKeysAndSignature(list, input, header, discovery);
  checkIdentityProvider(list, claims, input.identityProvider);
  checkValidity(list, claims, input.now ?? new Date());
  return list.result();
}

/**
 * A FetchJson over the Fetch API: anonymous GET (no credentials, no Authorization header), JSON
 * when the body parses, the text otherwise. Inject a fetch that trusts the target's CA if needed.
 */
export function anonymousFetchJson(fetchImpl: typeof fetch = fetch): FetchJson {
  return async (url: string) => {
    const response = await fetchImpl(url, { method: 'GET', redirect: 'follow', credentials: 'omit' });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: the caller reports "not a JSON object".
    }
    return { status: response.status, body };
  };
}
