/**
 * Public keys for IRSA's keys.json: reading them from PEM (every flavour clusters hand out), from
 * a JWKS (the API server's /openid/v1/jwks), from OpenShift's bound-sa-token-signing-certs
 * ConfigMap; computing the `kid` the API server puts in tokens; building the JWKS to publish.
 *
 * Key material here is public. Private key PEMs are accepted only to derive their public half, and
 * no error message ever quotes PEM bodies.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type JsonWebKey,
  type KeyObject,
  X509Certificate,
} from 'node:crypto';
import { UsageError } from '../errors.ts';

/** One key of a JWKS as IRSA publishes it (kube-apiserver and upstream hack/self-hosted use the same fields). */
export interface Jwk {
  kty: string;
  alg: string;
  use: string;
  kid: string;
  n?: string;
  e?: string;
  crv?: string;
  x?: string;
  y?: string;
}

export interface Jwks {
  keys: Jwk[];
}

export interface PemBlock {
  label: string;
  der: Buffer;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n?([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;

/**
 * Splits text into PEM blocks. `source` (a file or ConfigMap entry name) is only used in errors.
 * Encapsulated headers (`Proc-Type:` …) mean an encrypted key, which is refused.
 */
export function parsePemBlocks(text: string, source = 'PEM text'): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const [, label = '', body = '', endLabel = ''] = m;
    const n = blocks.length + 1;
    if (label !== endLabel) {
      throw new UsageError(
        `${source}: PEM block ${n} begins with ${label} but ends with ${endLabel}`,
        'the PEM text is truncated or two blocks are interleaved; copy it again',
      );
    }
    if (/^[A-Za-z-]+:/m.test(body)) {
      throw new UsageError(
        `${source}: PEM block ${n} (${label}) has encapsulated headers (an encrypted key?)`,
        'provide the public key (openssl pkey -pubout) instead',
      );
    }
    const base64 = body.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length === 0) {
      throw new UsageError(
        `${source}: PEM block ${n} (${label}) has a body that is not base64`,
        'the PEM text was altered (quoting, escaped newlines?); copy it again',
      );
    }
    blocks.push({ label, der: Buffer.from(base64, 'base64') });
  }
  return blocks;
}

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Loads one PEM block as a public key. `where` names the block in errors. */
function publicKeyFromBlock(block: PemBlock, where: string): KeyObject {
  const tryLoad = (attempts: Array<[string, () => KeyObject]>): KeyObject => {
    const failures: string[] = [];
    for (const [what, load] of attempts) {
      try {
        return load();
      } catch (e) {
        failures.push(`as ${what}: ${describeError(e)}`);
      }
    }
    throw new UsageError(
      `${where} (${block.label}) is not a readable key (${failures.join('; ')})`,
      'expected a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block with an RSA or EC key',
    );
  };
  const der = block.der;
  switch (block.label) {
    case 'PUBLIC KEY':
      return tryLoad([['SPKI DER', () => createPublicKey({ key: der, format: 'der', type: 'spki' })]]);
    case 'RSA PUBLIC KEY':
      // OpenShift labels SPKI bytes `RSA PUBLIC KEY` (bound-sa-token-signing-certs); openssl's
      // -RSAPublicKey_out writes real PKCS#1 under the same label. Try both.
      return tryLoad([
        ['SPKI DER', () => createPublicKey({ key: der, format: 'der', type: 'spki' })],
        ['PKCS#1 DER', () => createPublicKey({ key: der, format: 'der', type: 'pkcs1' })],
      ]);
    case 'CERTIFICATE':
      return tryLoad([['X.509 certificate', () => new X509Certificate(der).publicKey]]);
    case 'PRIVATE KEY':
      return tryLoad([
        ['PKCS#8 DER', () => createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }))],
      ]);
    case 'RSA PRIVATE KEY':
      return tryLoad([
        ['PKCS#1 DER', () => createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs1' }))],
      ]);
    case 'EC PRIVATE KEY':
      return tryLoad([
        ['SEC1 DER', () => createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'sec1' }))],
      ]);
    default:
      throw new UsageError(
        `${where} is labelled ${block.label}, which holds no public key`,
        'expected a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM block',
      );
  }
}

/**
 * The public key in a PEM text holding exactly one block: `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY`
 * (PKCS#1, or SPKI as OpenShift writes it), `CERTIFICATE`, or a private key (its public half).
 */
export function publicKeyFromPem(pem: string, source = 'PEM text'): KeyObject {
  const blocks = parsePemBlocks(pem, source);
  const [first] = blocks;
  if (!first) {
    throw new UsageError(`${source}: no PEM block found`, 'expected text starting with -----BEGIN PUBLIC KEY-----');
  }
  if (blocks.length > 1) {
    throw new UsageError(
      `${source}: ${blocks.length} PEM blocks where one key was expected`,
      'use publicKeysFromPemBundle for a file with several keys',
    );
  }
  return publicKeyFromBlock(first, `${source}: PEM block 1`);
}

/** Every public key in a text with several PEM blocks, in order. */
export function publicKeysFromPemBundle(text: string, source = 'PEM bundle'): KeyObject[] {
  const blocks = parsePemBlocks(text, source);
  if (blocks.length === 0) {
    throw new UsageError(`${source}: no PEM block found`, 'expected one or more -----BEGIN PUBLIC KEY----- blocks');
  }
  return blocks.map((b, i) => publicKeyFromBlock(b, `${source}: PEM block ${i + 1}`));
}

/**
 * The `kid` kube-apiserver puts in the tokens this key verifies: base64url without padding of
 * SHA-256 over the DER SubjectPublicKeyInfo (k8s.io/kubernetes pkg/serviceaccount/jwt.go
 * keyIDFromPublicKey; upstream pod-identity-webhook hack/self-hosted does the same).
 * Not the RFC 7638 thumbprint.
 */
export function kidForKey(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64url');
}

function algForKey(key: KeyObject): string {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return 'ES256';
    if (curve === 'secp384r1') return 'ES384';
    if (curve === 'secp521r1') return 'ES512';
  }
  throw new UsageError(
    `service-account signing key of type ${key.asymmetricKeyType ?? 'unknown'} is not supported`,
    'kube-apiserver signs with RSA (RS256) or ECDSA P-256/384/521 keys',
  );
}

/**
 * The JWK for a public key: `{kty, alg, use: 'sig', kid, n, e}` (EC: crv, x, y). `kid` defaults to
 * kidForKey. Uses Node's synchronous JWK export, which yields the same n/e as jose's exportJWK.
 */
export function jwkForKey(key: KeyObject, kid?: string): Jwk {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const alg = algForKey(publicKey);
  const exported: JsonWebKey = publicKey.export({ format: 'jwk' });
  const jwk: Jwk = { kty: String(exported.kty), alg, use: 'sig', kid: kid ?? kidForKey(publicKey) };
  if (exported.kty === 'RSA') {
    jwk.n = exported.n;
    jwk.e = exported.e;
  } else {
    jwk.crv = exported.crv;
    jwk.x = exported.x;
    jwk.y = exported.y;
  }
  return jwk;
}

/**
 * The JWKS to publish as keys.json: one entry per key, kid as the API server computes it.
 * `duplicateWithEmptyKid` appends a copy of every key with `kid: ""`, as the article does for token
 * issuers older than Kubernetes 1.16 that put no kid in tokens. Duplicate keys are published once.
 */
export function buildJwks(keys: KeyObject[], opts: { duplicateWithEmptyKid?: boolean } = {}): Jwks {
  const seen = new Set<string>();
  const jwks: Jwk[] = [];
  for (const key of keys) {
    const jwk = jwkForKey(key);
    if (seen.has(jwk.kid)) continue;
    seen.add(jwk.kid);
    jwks.push(jwk);
  }
  if (opts.duplicateWithEmptyKid) {
    for (const jwk of [...jwks]) jwks.push({ ...jwk, kid: '' });
  }
  return { keys: jwks };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The keys of a JWKS document (e.g. the API server's /openid/v1/jwks, or a published keys.json).
 * A key without `kid` gets `''`. Throws UsageError naming the entry that is not a public key.
 */
export function keysFromJwks(jwks: unknown, source = 'JWKS'): { kid: string; key: KeyObject }[] {
  if (!isRecord(jwks) || !Array.isArray(jwks.keys)) {
    throw new UsageError(
      `${source} has no "keys" array`,
      'expected {"keys": [{"kty": "RSA", "kid": ..., "n": ..., "e": ...}]}',
    );
  }
  return jwks.keys.map((entry: unknown, i: number) => {
    if (!isRecord(entry)) {
      throw new UsageError(`${source}: keys[${i}] is not an object`, 'every entry of "keys" must be a JWK object');
    }
    if ('d' in entry) {
      // A JWK with `d` is a private key: publishing it lets anyone mint tokens STS accepts.
      throw new UsageError(
        `${source}: keys[${i}] contains a private key (field "d")`,
        'publish only public keys; regenerate keys.json from the public key',
      );
    }
    const kid = typeof entry.kid === 'string' ? entry.kid : '';
    try {
      const key = createPublicKey({ key: entry as JsonWebKey, format: 'jwk' });
      return { kid, key };
    } catch (e) {
      throw new UsageError(
        `${source}: keys[${i}] (kid ${JSON.stringify(kid)}) is not a usable public key: ${describeError(e)}`,
        'each key needs kty and its parameters (RSA: n, e; EC: crv, x, y)',
      );
    }
  });
}

/** ConfigMap entries OpenShift keeps the signing keys in: service-account-001.pub, -002.pub, … */
export const OPENSHIFT_SIGNING_KEY_ENTRY = /^service-account-.*\.pub$/;

/**
 * Every `service-account-*.pub` key of OpenShift's `bound-sa-token-signing-certs` ConfigMap
 * (namespace openshift-kube-apiserver), sorted by entry name. After a rotation tokens may be signed
 * by any of them, so all belong in keys.json. Errors name the entry.
 */
export function keysFromOpenShiftConfigMap(data: Record<string, string>): KeyObject[] {
  return namedKeysFromOpenShiftConfigMap(data).map((k) => k.key);
}

/** As keysFromOpenShiftConfigMap, with the entry name of each key (for reports). */
export function namedKeysFromOpenShiftConfigMap(data: Record<string, string>): { name: string; key: KeyObject }[] {
  const names = Object.keys(data)
    .filter((n) => OPENSHIFT_SIGNING_KEY_ENTRY.test(n))
    .sort();
  if (names.length === 0) {
    throw new UsageError(
      `the ConfigMap has no service-account-*.pub entry (entries: ${Object.keys(data).join(', ') || 'none'})`,
      'read ConfigMap bound-sa-token-signing-certs in namespace openshift-kube-apiserver',
    );
  }
  return names.map((name) => ({ name, key: publicKeyFromPem(data[name] ?? '', name) }));
}

/**
 * The RFC 7638 JWK thumbprint (SHA-256, base64url): a key's fingerprint independent of its `kid`
 * and of the fields around it, the same for a JWK and for the key it was made from.
 */
export function jwkThumbprint(key: KeyObject): string {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  // The required members of the key type, in lexicographic order, no whitespace (RFC 7638 §3.2).
  const members =
    jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** An entry of a published JWKS that is not one of the keys it should hold. */
export interface ForeignKey {
  /** Position in the JWKS's "keys" array. */
  index: number;
  kid: string;
  /** RFC 7638 thumbprint; undefined when the entry is not a usable public key. */
  thumbprint?: string;
  /** Why the entry is there at all when it is not a key: "not a usable public key: …", "a private key". */
  problem?: string;
}

/**
 * The entries of `jwks` (e.g. a published keys.json) whose key is none of `keys` (the cluster's):
 * compared by key material, so a copy of a cluster key under another kid (the article's kid "")
 * is not foreign, and a foreign key under the cluster's kid is.
 */
export function foreignKeys(jwks: unknown, keys: KeyObject[]): ForeignKey[] {
  const own = new Set(keys.map((k) => kidForKey(k)));
  const entries = isRecord(jwks) && Array.isArray(jwks.keys) ? (jwks.keys as unknown[]) : [];
  const out: ForeignKey[] = [];
  entries.forEach((entry, index) => {
    const kid = isRecord(entry) && typeof entry.kid === 'string' ? entry.kid : '';
    if (isRecord(entry) && 'd' in entry) {
      out.push({ index, kid, problem: 'a private key (field "d"): anyone who reads keys.json can sign tokens' });
      return;
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: entry as JsonWebKey, format: 'jwk' });
    } catch (e) {
      out.push({ index, kid, problem: `not a usable public key: ${describeError(e)}` });
      return;
    }
    if (!own.has(kidForKey(key))) out.push({ index, kid, thumbprint: jwkThumbprint(key) });
  });
  return out;
}
