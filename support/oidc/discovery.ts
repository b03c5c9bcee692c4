/**
 * The OIDC discovery document IRSA publishes next to keys.json, and the issuer's host-path form.
 *
 * STS fetches `<issuer>/.well-known/openid-configuration` anonymously, requires its `issuer` to equal
 * the token's `iss` exactly, and fetches `jwks_uri`. IAM stores the IdP URL without its scheme, and
 * trust-policy condition keys are `<issuer without scheme>:sub` / `:aud`: issuerHostPath gives that form.
 */

/** Fields of the discovery document as the demo repository and kube-apiserver publish them. */
export interface DiscoveryDocument {
  issuer: string;
  jwks_uri: string;
  authorization_endpoint: string;
  response_types_supported: string[];
  subject_types_supported: string[];
  id_token_signing_alg_values_supported: string[];
  claims_supported: string[];
}

/**
 * Builds the discovery document for `issuer`. The issuer is kept byte for byte (a trailing slash
 * stays, so that a mismatch with the token's `iss` is visible); jwks_uri defaults to
 * `<issuer>/keys.json` without doubling a trailing slash, so a broken issuer does not also break
 * the key fetch and the diagnosis names one cause.
 */
export function buildDiscoveryDocument(issuer: string, opts: { jwksUri?: string } = {}): DiscoveryDocument {
  return {
    issuer,
    jwks_uri: opts.jwksUri ?? `${issuer.replace(/\/+$/, '')}/keys.json`,
    authorization_endpoint: 'urn:kubernetes:programmatic_authorization',
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    claims_supported: ['aud', 'exp', 'sub', 'iat', 'iss'],
  };
}

/**
 * The issuer without its scheme, as IAM stores the IdP URL and as trust-policy condition keys
 * prefix it: `https://host/path` → `host/path`. Nothing else changes (a trailing slash stays).
 * A string without a scheme is returned unchanged, so IAM's stored form maps to itself.
 */
export function issuerHostPath(issuer: string): string {
  return issuer.replace(/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//, '');
}

/**
 * `<issuer>/.well-known/openid-configuration`, with a terminating `/` of the issuer removed first
 * (OpenID Connect Discovery 1.0 §4).
 */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

export interface DiscoveryValidation {
  ok: boolean;
  /** What STS or an OIDC client would reject. */
  problems: string[];
  /** What works with emulators but not with AWS (e.g. an http issuer). */
  warnings: string[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function parseUrl(v: string): URL | undefined {
  try {
    return new URL(v);
  } catch {
    return undefined;
  }
}

/** Checks a fetched discovery document; each problem names the field and the value found. */
export function validateDiscoveryDocument(doc: unknown): DiscoveryValidation {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (!isObject(doc)) {
    return { ok: false, problems: [`the discovery document is not a JSON object (got ${typeOfJson(doc)})`], warnings };
  }
  const issuer = doc.issuer;
  if (typeof issuer !== 'string' || issuer === '') {
    problems.push(`issuer is missing or not a string (got ${JSON.stringify(issuer)})`);
  } else {
    const url = parseUrl(issuer);
    if (!url) problems.push(`issuer ${JSON.stringify(issuer)} is not a URL`);
    else {
      if (url.search !== '' || url.hash !== '') {
        problems.push(`issuer ${JSON.stringify(issuer)} has a query or fragment; OIDC forbids both`);
      }
      if (url.protocol === 'http:') warnings.push(`issuer ${JSON.stringify(issuer)} is http: AWS IAM requires https`);
      else if (url.protocol !== 'https:') problems.push(`issuer ${JSON.stringify(issuer)} is not an https URL`);
    }
  }
  const jwksUri = doc.jwks_uri;
  if (typeof jwksUri !== 'string' || jwksUri === '') {
    problems.push(`jwks_uri is missing or not a string (got ${JSON.stringify(jwksUri)})`);
  } else if (!parseUrl(jwksUri)) {
    problems.push(`jwks_uri ${JSON.stringify(jwksUri)} is not a URL`);
  }
  const requireIncludes = (field: string, value: string) => {
    const v = doc[field];
    if (!isStringArray(v)) problems.push(`${field} is missing or not an array of strings (got ${JSON.stringify(v)})`);
    else if (!v.includes(value))
      problems.push(`${field} ${JSON.stringify(v)} does not include ${JSON.stringify(value)}`);
  };
  requireIncludes('response_types_supported', 'id_token');
  requireIncludes('subject_types_supported', 'public');
  requireIncludes('id_token_signing_alg_values_supported', 'RS256');
  if (doc.claims_supported !== undefined && !isStringArray(doc.claims_supported)) {
    problems.push(`claims_supported is not an array of strings (got ${JSON.stringify(doc.claims_supported)})`);
  }
  return { ok: problems.length === 0, problems, warnings };
}

function typeOfJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}
