/**
 * worldParameters as settings, in process: their place between the config file and the
 * environment, an unknown key refused. The runs given --world-parameters are
 * test/integration/world-parameters.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../support/config.ts';
import { isUsageError } from '../../support/errors.ts';

describe('worldParameters as settings', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-world-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('are honoured, above the config file and below the environment', () => {
    const file = path.join(dir, 'irsa.yaml');
    writeFileSync(file, 'region: eu-central-1\ntenants: 5\nlive:\n  mode: verify-only\n');
    const world = { region: 'eu-west-1', tenants: 2, live: { namespace: 'payments' } };
    const c = loadConfig({ IRSA_CONFIG: file }, {}, world);
    assert.equal(c.region, 'eu-west-1', 'worldParameters over the file');
    assert.equal(c.tenants, 2);
    assert.equal(c.live.mode, 'verify-only', 'nested keys merge with the file');
    assert.equal(c.live.namespace, 'payments');
    const e = loadConfig({ IRSA_CONFIG: file, IRSA_TENANTS: '4' }, {}, world);
    assert.equal(e.tenants, 4, 'the environment over worldParameters');
    assert.equal(loadConfig({}, {}, { target: 'docker' }).target, 'docker', "a profile's target");
  });

  it('an unknown or invalid key is refused, naming worldParameters', () => {
    assert.throws(
      () => loadConfig({}, {}, { target: 'embedded', regoin: 'eu-west-1' }),
      (e: unknown) =>
        isUsageError(e) && /^invalid setting .*\(from --world-parameters or the profile\): .*"regoin"/.test(e.message),
    );
    assert.throws(
      () => loadConfig({}, {}, { tenants: 'many' }),
      (e: unknown) =>
        isUsageError(e) && /^invalid setting tenants \(from --world-parameters or the profile\)/.test(e.message),
    );
  });
});
