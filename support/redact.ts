/**
 * Structural redaction: the one place that decides what a secret looks like. Every log line,
 * attachment and report passes through redact() / redactObject() before it leaves the process.
 *
 * Two mechanisms:
 * - exact values the harness learned at run time (a secret access key it created, a session token
 *   it received), registered with registerSecret();
 * - patterns for secrets it never saw: JWTs, PEM private keys, secret keys and session tokens in
 *   key=value / JSON / XML (STS responses) contexts, Authorization headers and Bearer values,
 *   presigned-URL signature and security-token query values.
 * Replacements read `[REDACTED:<kind>]`. Access key ids (AKIA…/ASIA…) and decoded claims stay:
 * they identify without granting.
 *
 * It runs on every log line, so patterns are plain regular expressions, each applied only when a
 * cheap substring test says it could match.
 *
 * TEST-ONLY setting IRSA_TEST_SECRETS_FILE=<file>: every process of a run (coordinator, cucumber
 * workers) appends each registered value to that file, one JSON string per line, so the leak test
 * (test/integration/redaction-leak.test.ts) can search the run's output for them. It writes the very secrets
 * redaction protects: never set it outside that test.
 */
import { appendFileSync } from 'node:fs';

const MIN_SECRET_LENGTH = 8;

const registered = new Set<string>();
const listeners = new Set<(value: string) => void>();

/**
 * Registers an exact value to scrub from everything redact() sees, with its URL-encoded form (it
 * shows up in query strings). Values shorter than 8 characters are refused (returns false): they
 * would scrub ordinary words (an emulator's `test` secret is no secret).
 */
export function registerSecret(value: string): boolean {
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) return false;
  const forms = new Set([value, encodeURIComponent(value)]);
  for (const form of forms) {
    if (registered.has(form)) continue;
    registered.add(form);
    for (const listener of listeners) listener(form);
  }
  return true;
}

/**
 * TEST-ONLY hook: calls `listener` with every registered value (those already registered, then
 * each new one), so a leak test can search reports and logs for them. Returns an unsubscribe
 * function. Production code must not use it: it hands out the secrets redaction protects.
 */
export function onSecretRegistered(listener: (value: string) => void): () => void {
  listeners.add(listener);
  for (const value of registered) listener(value);
  return () => {
    listeners.delete(listener);
  };
}

const testSecretsFile = process.env.IRSA_TEST_SECRETS_FILE;
if (testSecretsFile) {
  onSecretRegistered((value) => appendFileSync(testSecretsFile, `${JSON.stringify(value)}\n`, { mode: 0o600 }));
}

const r = (kind: string) => `[REDACTED:${kind}]`;

// Field names whose value is a secret, in text form (key=value, "key": "value", <Key>value</Key>).
const SECRET_KEY_NAMES = 'SecretAccessKey|secret_access_key|secretKey|secret_key';
const SESSION_TOKEN_NAMES = 'SessionToken|session_token|SecurityToken|security_token';

function fieldPatterns(names: string, kind: string): Array<[RegExp, (m: string, ...g: string[]) => string]> {
  return [
    // XML, as in STS and IAM responses: <SecretAccessKey>…</SecretAccessKey>
    [new RegExp(`<((?:[A-Za-z]+:)?(?:${names}))>[^<]*</\\1>`, 'gi'), (_m, tag = '') => `<${tag}>${r(kind)}</${tag}>`],
    // JSON / YAML / INI / env with a quoted value: "SecretAccessKey": "…", aws_secret_access_key = '…'
    [
      new RegExp(`((?:${names})["']?\\s*[:=]\\s*)(["'])(?:\\\\.|(?!\\2).)*\\2`, 'gi'),
      (_m, head = '', quote = '') => `${head}${quote}${r(kind)}${quote}`,
    ],
    // Unquoted: AWS_SECRET_ACCESS_KEY=…, aws_session_token: …
    [
      new RegExp(`((?:${names})["']?\\s*[:=][ \\t]*)(?!["'\\s]|\\[REDACTED)[^\\s"',;&}<]+`, 'gi'),
      (_m, head = '') => `${head}${r(kind)}`,
    ],
  ];
}

type Rule = { probe: RegExp; patterns: Array<[RegExp, (m: string, ...g: string[]) => string]> };

const RULES: Rule[] = [
  {
    probe: /PRIVATE KEY-----/,
    patterns: [
      [
        /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/g,
        (_m, label = '') => `-----BEGIN ${label}PRIVATE KEY-----${r('private-key')}-----END ${label}PRIVATE KEY-----`,
      ],
      // A block cut off (log line limit, truncated attachment): redact to the end.
      [/-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----(?![\s\S]*-----END)[\s\S]*$/g, () => r('private-key')],
    ],
  },
  {
    probe: /eyJ/,
    patterns: [[/eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g, () => r('jwt')]],
  },
  {
    probe: /x-amz-(signature|security-token)/i,
    patterns: [
      [/(X-Amz-Signature=)[^&\s"'<>]+/gi, (_m, head = '') => `${head}${r('signature')}`],
      [/(X-Amz-Security-Token=)[^&\s"'<>]+/gi, (_m, head = '') => `${head}${r('session-token')}`],
      // As a header: x-amz-security-token: …
      [/(x-amz-security-token["']?\s*:\s*["']?)[^\s"',}]+/gi, (_m, head = '') => `${head}${r('session-token')}`],
    ],
  },
  {
    probe: /authorization/i,
    patterns: [
      // Quoted value: "authorization": "…", authorization: '…'
      [
        /(authorization["']?\s*[:=]\s*)(["'])(?:\\.|(?!\2).)*\2/gi,
        (_m, head = '', q = '') => `${head}${q}${r('authorization')}${q}`,
      ],
      // Header line: Authorization: <scheme> <credentials>  (to the end of the line)
      [
        /(authorization["']?\s*:[ \t]*)(?!["'\s]|\[REDACTED)[^\r\n]+/gi,
        (_m, head = '') => `${head}${r('authorization')}`,
      ],
    ],
  },
  {
    probe: /bearer/i,
    patterns: [[/\b(Bearer\s+)(?!\[REDACTED)[A-Za-z0-9._~+/-]{16,}=*/gi, (_m, head = '') => `${head}${r('bearer')}`]],
  },
  {
    probe: /secret_?(access_?)?key/i,
    patterns: fieldPatterns(SECRET_KEY_NAMES, 'secret-access-key'),
  },
  {
    probe: /(session|security)_?token/i,
    patterns: fieldPatterns(SESSION_TOKEN_NAMES, 'session-token'),
  },
];

/** Scrubs registered values and secret-shaped text. Safe to call on any string, any size. */
export function redact(text: string): string {
  if (typeof text !== 'string' || text.length === 0) return text;
  let out = text;
  for (const value of registered) {
    if (out.includes(value)) out = out.split(value).join(r('registered'));
  }
  for (const rule of RULES) {
    if (!rule.probe.test(out)) continue;
    for (const [pattern, replace] of rule.patterns) out = out.replace(pattern, replace as (m: string) => string);
  }
  return out;
}

/** Field names (compared case-insensitively, `-`/`_` ignored) whose values are replaced whole. */
const SECRET_FIELDS = new Set(
  [
    'secretAccessKey',
    'aws_secret_access_key',
    'secretKey',
    'sessionToken',
    'aws_session_token',
    'securityToken',
    'token',
    'idToken',
    'accessToken',
    'refreshToken',
    'webIdentityToken',
    'privateKey',
    'private_key',
    'privateKeyPem',
    'client-key-data',
    'clientKey',
    'keyPem',
    'password',
    'authorization',
  ].map(normalizeField),
);

function normalizeField(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '');
}

function redactValue(value: unknown, seen: WeakMap<object, unknown>): unknown {
  if (typeof value === 'string') return redact(value);
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[Circular]';
  if (value instanceof Date) return new Date(value.getTime());
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[binary ${value.byteLength} bytes]`;
  if (Array.isArray(value)) {
    const arr: unknown[] = [];
    seen.set(value, arr);
    for (const v of value) arr.push(redactValue(v, seen));
    return arr;
  }
  const out: Record<string, unknown> = {};
  seen.set(value, out);
  if (value instanceof Error) {
    // name and message are not enumerable: keep them, redacted.
    out.name = value.name;
    out.message = redact(value.message);
  }
  if (value instanceof Map) {
    for (const [k, v] of value) out[String(k)] = redactField(String(k), v, seen);
    return out;
  }
  for (const [k, v] of Object.entries(value)) out[k] = redactField(k, v, seen);
  return out;
}

function redactField(key: string, value: unknown, seen: WeakMap<object, unknown>): unknown {
  if (SECRET_FIELDS.has(normalizeField(key)) && value !== undefined && value !== null && value !== '') {
    return r(key);
  }
  return redactValue(value, seen);
}

/**
 * A deep copy with every string redacted and known secret fields (secretAccessKey, sessionToken,
 * token, private keys, passwords, client-key-data, authorization) replaced whole. Errors keep name
 * and message; Maps become plain objects; binary data becomes a size note.
 */
export function redactObject<T>(value: T): T {
  return redactValue(value, new WeakMap()) as T;
}
