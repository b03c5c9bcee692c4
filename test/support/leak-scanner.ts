/**
 * The redaction leak scanner (test/unit/redaction-leak.test.ts checks it can fail; the verbose run
 * in test/integration/redaction-leak.test.ts uses it): where a run's secrets, in any form a report
 * may give them, or a secret shape occur.
 */
const JWT = /eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{16,}/;
/** Shapes that are secrets whatever the value. moto's session tokens start with this prefix (moto/sts/utils.py). */
export const SHAPES: { kind: string; re: RegExp }[] = [
  { kind: 'raw JWT (web-identity token)', re: JWT },
  { kind: 'PEM private key', re: /-----BEGIN [A-Z ]*PRIVATE KEY-----/ },
  { kind: 'moto session token', re: /FQoGZXIvYXdzEBYaD[A-Za-z0-9+/=]{16,}/ },
  {
    kind: 'unredacted secret key field',
    re: /(?:SecretAccessKey|secret_access_key|secretAccessKey)["']?\s*[:=>]\s*["']?(?!\[REDACTED)[A-Za-z0-9/+]{40}/,
  },
];

export function kindOf(secret: string): string {
  if (JWT.test(secret)) return 'web-identity token';
  if (secret.startsWith('FQoGZXIvYXdzEBYaD')) return 'session token';
  if (/^[A-Za-z0-9/+]{40}$/.test(secret)) return 'secret access key';
  return 'secret';
}

/** The forms a value can take in a report: as is, JSON-escaped, URL-encoded, with escaped slashes. */
export function forms(secret: string): string[] {
  return [
    ...new Set([secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret), secret.replace(/\//g, '\\/')]),
  ];
}

export interface Finding {
  where: string;
  what: string;
}

/** Where any of `secrets` (or a secret shape) occurs in `texts`; never echoes a value. */
export function findLeaks(texts: Map<string, string>, secrets: string[]): Finding[] {
  const findings: Finding[] = [];
  for (const [where, text] of texts) {
    for (const s of secrets) {
      if (forms(s).some((f) => text.includes(f))) findings.push({ where, what: `${kindOf(s)} ${s.slice(0, 4)}…` });
    }
    for (const shape of SHAPES) if (shape.re.test(text)) findings.push({ where, what: shape.kind });
  }
  return findings;
}
