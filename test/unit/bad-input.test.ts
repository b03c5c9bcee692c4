/**
 * Bad settings are refused in process, before anything starts: loadConfig throws a UsageError
 * whose message names what is wrong, for the settings cases of test/integration/bad-input.test.ts
 * (which runs each through `bash tools/irsa conformance` and checks exit 2, the one-line cause
 * and hint, and that nothing was created).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../support/config.ts';
import { isUsageError } from '../../support/errors.ts';
import { badSettings } from '../support/bad-settings.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'irsa-bad-settings-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('bad settings: a UsageError naming the cause', () => {
  const cases = badSettings(file);
  for (const c of cases) {
    it(c.name, () => {
      assert.throws(
        () => loadConfig(c.env()),
        (e: unknown) => isUsageError(e) && c.cause.test(e.message),
      );
    });
  }
});
