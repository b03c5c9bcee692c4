/**
 * Tokens the cluster did not sign, for the negative trust cases: the claims of a genuine token
 * re-signed with a key generated here (under the cluster's kid, or under a kid nobody publishes),
 * optionally moved in time so that it has expired. The private key lives only inside forgeToken;
 * the token is a bearer credential for nothing real, but it is still handled like a secret.
 */
import { generateKeyPair, type KeyObject, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';

const generate = promisify(generateKeyPair);

export interface ForgeOptions {
  /** The payload to sign (e.g. the decoded claims of a genuine token). */
  claims: Record<string, unknown>;
  /** kid of the header; default a random kid that no JWKS lists. */
  kid?: string;
  /** Shift iat, nbf and exp by this many seconds (negative: into the past). */
  shiftSeconds?: number;
}

export interface ForgedToken {
  token: string;
  kid: string;
  /** The public half, for tests that verify what was signed. */
  publicKey: KeyObject;
}

export function unpublishedKid(): string {
  return `irsa-conformance-forged-${randomBytes(6).toString('hex')}`;
}

/** Signs `claims` RS256 with a freshly generated RSA-2048 key. */
export async function forgeToken(opts: ForgeOptions): Promise<ForgedToken> {
  const { privateKey, publicKey } = await generate('rsa', { modulusLength: 2048 });
  const kid = opts.kid ?? unpublishedKid();
  const payload: Record<string, unknown> = { ...opts.claims };
  const shift = opts.shiftSeconds ?? 0;
  for (const claim of ['iat', 'nbf', 'exp']) {
    const v = payload[claim];
    if (typeof v === 'number') payload[claim] = v + shift;
  }
  const token = await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(privateKey);
  return { token, kid, publicKey };
}
