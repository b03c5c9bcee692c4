/**
 * An OIDC issuer that signs its own tokens: an RSA key generated here, its JWKS and discovery
 * document (for the caller to publish where `issuer` points), and RS256 tokens with any claims.
 * The capability probes use it as a positive control (a correctly signed token must be accepted
 * before a refusal means anything), and tests use it to drive STS without a cluster.
 * The private key never leaves this object; tokens are registered as secrets by their users.
 */
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { buildDiscoveryDocument, type DiscoveryDocument } from './discovery.ts';
import { buildJwks, type Jwks, kidForKey } from './jwks.ts';

const generate = promisify(generateKeyPair);

export interface SigningIssuer {
  issuer: string;
  kid: string;
  discovery: DiscoveryDocument;
  jwks: Jwks;
  /**
   * A token for `sub` and `aud` (iat now, exp in an hour unless given), signed by this issuer's key,
   * or by `foreignKey` under the same kid.
   */
  sign(
    claims: { sub: string; aud: string | string[] } & Record<string, unknown>,
    foreignKey?: KeyObject,
  ): Promise<string>;
}

export async function createSigningIssuer(issuer: string): Promise<SigningIssuer> {
  const { privateKey, publicKey } = await generate('rsa', { modulusLength: 2048 });
  const kid = kidForKey(publicKey);
  return {
    issuer,
    kid,
    discovery: buildDiscoveryDocument(issuer),
    jwks: buildJwks([publicKey]),
    sign: async (claims, foreignKey) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: issuer, iat: now, exp: now + 3600, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
        .sign(foreignKey ?? privateKey);
    },
  };
}

/** A private key of nobody's issuer: a token it signs under a published kid must fail the signature check. */
export async function foreignSigningKey(): Promise<KeyObject> {
  return (await generate('rsa', { modulusLength: 2048 })).privateKey;
}
