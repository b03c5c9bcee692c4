/**
 * The leak scanner itself: it finds a planted secret in every form and the secret shapes, so the
 * leak check can fail. The full verbose run it scans is test/integration/redaction-leak.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findLeaks } from '../support/leak-scanner.ts';

describe('redaction', () => {
  it('the scanner finds a planted secret in every form and the secret shapes (so the leak check can fail)', () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
    const jwt = `eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL3gifQ.${'a'.repeat(40)}`;
    const texts = new Map([
      ['plain', `key ${secret}`],
      ['json', JSON.stringify({ note: `key ${secret}` }).replace(/\//g, '\\/')],
      ['url', `?k=${encodeURIComponent(secret)}`],
      ['jwt', `token ${jwt}`],
      ['session', 'FQoGZXIvYXdzEBYaDabcdefghijklmnopqrstuvwxyz'],
      ['field', `"SecretAccessKey": "${'b'.repeat(40)}"`],
      ['clean', 'SecretAccessKey: [REDACTED:secret-access-key] and claims {"iss":"https://x"}'],
    ]);
    const found = findLeaks(texts, [secret]);
    const where = [...new Set(found.map((f) => f.where))].sort();
    assert.deepEqual(where, ['field', 'json', 'jwt', 'plain', 'session', 'url']);
    assert.ok(!found.some((f) => f.what.includes(secret)), 'findings never echo the secret');
  });
});
