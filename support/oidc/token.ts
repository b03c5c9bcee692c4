/**
 * Reading a service-account token without verifying it: header, claims, and a summary that is safe
 * to print. A token is a bearer credential: nothing here returns or quotes it, nor its signature,
 * and errors describe the shape of a bad token, never its content.
 */

export interface TokenHeader {
  alg?: string;
  kid?: string;
  typ?: string;
}

/** The Kubernetes-specific claim `kubernetes.io` of a service-account token, flattened. */
export interface KubernetesClaims {
  namespace?: string;
  serviceAccount?: string;
  serviceAccountUid?: string;
  pod?: string;
  podUid?: string;
  node?: string;
}

export interface TokenClaims {
  iss?: string;
  sub?: string;
  /** Always an array: the JWT `aud` may be a string or an array. */
  aud: string[];
  exp?: number;
  iat?: number;
  nbf?: number;
  kubernetes?: KubernetesClaims;
  /** The whole payload as decoded (claims are not secret). */
  all: Record<string, unknown>;
}

/** The token is not a compact JWS/JWT. The message describes the shape only. */
export class TokenFormatError extends Error {
  override readonly name = 'TokenFormatError';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function segments(token: string): [string, string, string] {
  const parts = token.trim().split('.');
  if (parts.length !== 3) {
    throw new TokenFormatError(`the token has ${parts.length} dot-separated segments; a JWT has 3`);
  }
  const [h = '', p = '', s = ''] = parts;
  return [h, p, s];
}

function decodeSegment(segment: string, what: 'header' | 'payload'): Record<string, unknown> {
  if (!/^[A-Za-z0-9_-]+$/.test(segment)) {
    throw new TokenFormatError(`the token's ${what} is empty or not base64url`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new TokenFormatError(`the token's ${what} is not JSON`);
  }
  if (!isRecord(parsed)) throw new TokenFormatError(`the token's ${what} is not a JSON object`);
  return parsed;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The JOSE header (alg, kid, typ). */
export function decodeTokenHeader(token: string): TokenHeader {
  const [h] = segments(token);
  const header = decodeSegment(h, 'header');
  const out: TokenHeader = {};
  const alg = str(header.alg);
  const kid = str(header.kid);
  const typ = str(header.typ);
  if (alg !== undefined) out.alg = alg;
  if (kid !== undefined) out.kid = kid;
  if (typ !== undefined) out.typ = typ;
  return out;
}

/** The payload's claims, unverified. */
export function decodeTokenClaims(token: string): TokenClaims {
  const [, p] = segments(token);
  const payload = decodeSegment(p, 'payload');
  const aud = payload.aud;
  const claims: TokenClaims = {
    aud: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === 'string') : [],
    all: payload,
  };
  const iss = str(payload.iss);
  const sub = str(payload.sub);
  const exp = num(payload.exp);
  const iat = num(payload.iat);
  const nbf = num(payload.nbf);
  if (iss !== undefined) claims.iss = iss;
  if (sub !== undefined) claims.sub = sub;
  if (exp !== undefined) claims.exp = exp;
  if (iat !== undefined) claims.iat = iat;
  if (nbf !== undefined) claims.nbf = nbf;
  const k8s = payload['kubernetes.io'];
  if (isRecord(k8s)) {
    const kc: KubernetesClaims = {};
    const set = (field: keyof KubernetesClaims, v: unknown) => {
      const s = str(v);
      if (s !== undefined) kc[field] = s;
    };
    set('namespace', k8s.namespace);
    const sa = k8s.serviceaccount;
    if (isRecord(sa)) {
      set('serviceAccount', sa.name);
      set('serviceAccountUid', sa.uid);
    }
    const pod = k8s.pod;
    if (isRecord(pod)) {
      set('pod', pod.name);
      set('podUid', pod.uid);
    }
    const node = k8s.node;
    if (isRecord(node)) set('node', node.name);
    claims.kubernetes = kc;
  }
  return claims;
}

export interface TokenDescription {
  header?: TokenHeader;
  claims?: Record<string, unknown>;
  /** exp - iat, when both are present. */
  lifetimeSeconds?: number;
  issuedAt?: string;
  expiresAt?: string;
  /** Why the token could not be decoded (shape only). */
  malformed?: string;
}

function isoFromEpoch(seconds: number | undefined): string | undefined {
  if (seconds === undefined) return undefined;
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/**
 * A summary safe for reports and logs: header, claims, lifetime, times. Never the raw token or its
 * signature. Never throws: a malformed token yields `{malformed: <why>}`.
 */
export function describeToken(token: string): TokenDescription {
  try {
    const header = decodeTokenHeader(token);
    const claims = decodeTokenClaims(token);
    const out: TokenDescription = { header, claims: claims.all };
    if (claims.exp !== undefined && claims.iat !== undefined) out.lifetimeSeconds = claims.exp - claims.iat;
    const issuedAt = isoFromEpoch(claims.iat);
    const expiresAt = isoFromEpoch(claims.exp);
    if (issuedAt) out.issuedAt = issuedAt;
    if (expiresAt) out.expiresAt = expiresAt;
    return out;
  } catch (e) {
    return { malformed: e instanceof TokenFormatError ? e.message : 'the token could not be decoded' };
  }
}
