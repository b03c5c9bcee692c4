/**
 * A setup description is checked in full before anything starts (issue 16, item 5,
 * support/setup/check.ts): each kind of mistake in a template is a UsageError naming the setting,
 * the file and the problem; the default setup and every fault of the catalogue pass; and the
 * placeholders the check renders with are the ones the provisioning code gives (rendered through
 * that code with every one of them, so the two cannot drift apart). Also: an invalid --tags
 * expression is a UsageError naming it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { checkTagOptions } from '../../support/cli/conformance.ts';
import { isUsageError } from '../../support/errors.ts';
import { repoRoot } from '../../support/paths.ts';
import {
  deploymentManifest,
  permissionPolicyFor,
  serviceAccountManifest,
  type Tenant,
  trustPolicyFor,
} from '../../support/provision/application.ts';
import type { ProvisionContext } from '../../support/provision/context.ts';
import { discoveryDocumentFor } from '../../support/provision/infrastructure.ts';
import type { InfrastructureState } from '../../support/run-state.ts';
import { loadFaultCatalogue } from '../../support/selftest/catalogue.ts';
import { checkSetup, SAMPLE_VALUES, TEMPLATES } from '../../support/setup/check.ts';
import { loadSetup } from '../../support/setup/setup.ts';

const DEFAULT = path.join(repoRoot, 'fixtures/setups/default');
const root = mkdtempSync(path.join(tmpdir(), 'irsa-setup-check-'));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A setup extending the default one: setup.yaml lines after `extends`, and files of its own. */
function setupWith(yaml: string, files: Record<string, string> = {}): string {
  const dir = path.join(root, `s${n++}`);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'setup.yaml'), `extends: ${DEFAULT}\n${yaml}`);
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(dir, f), text);
  return dir;
}
const defaultFile = (f: string) => readFileSync(path.join(DEFAULT, f), 'utf8');
const refusedWith = (re: RegExp) => (e: unknown) => isUsageError(e) && re.test(e.message) && !e.message.includes('\n');

describe('setup check', () => {
  it('passes the default setup and every fault of the catalogue', () => {
    checkSetup(loadSetup(DEFAULT));
    assert.ok(loadFaultCatalogue().length > 0, 'the catalogue loads (it checks each fault’s setup)');
  });

  const cases: { name: string; dir: () => string; cause: RegExp }[] = [
    {
      name: 'a template file none of its layers has',
      dir: () => setupWith('application:\n  permissionPolicy: no-such-policy.json\n'),
      cause: /application\.permissionPolicy: setup .* names no-such-policy\.json, which none of its layers has/,
    },
    {
      name: 'a policy that is not JSON',
      dir: () => setupWith('', { 'permission-policy.json': '{ "Version": "2012-10-17", ' }),
      cause: /application\.permissionPolicy: .*permission-policy\.json is not valid JSON after substitution/,
    },
    {
      name: 'an unknown placeholder',
      dir: () =>
        setupWith('', {
          'permission-policy.json': defaultFile('permission-policy.json').replace('{appBucket}', '{appBuckett}'),
        }),
      cause:
        /application\.permissionPolicy: .*permission-policy\.json uses \$\{appBuckett\}, which is not defined here/,
    },
    {
      name: 'a deployment template that is not YAML',
      dir: () => setupWith('', { 'deployment.yaml': 'apiVersion: apps/v1\nkind: [Deployment\n' }),
      cause: /application\.deployment: .*deployment\.yaml is not valid YAML after substitution/,
    },
    {
      name: 'a deployment template of another kind',
      dir: () => setupWith('', { 'deployment.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n' }),
      cause: /application\.deployment: .*deployment\.yaml is not a Deployment \(kind: "Pod"\)/,
    },
    {
      name: 'a permission policy that is JSON but not an IAM policy',
      dir: () =>
        setupWith('', { 'permission-policy.json': defaultFile('permission-policy.json').replace('"Allow"', '"Alow"') }),
      cause:
        /application\.permissionPolicy: .*permission-policy\.json is not a valid IAM identity policy: Statement\[0\]\.Effect: Effect must be present and exactly "Allow" or "Deny"/,
    },
    {
      name: 'a trust policy without a principal',
      dir: () =>
        setupWith('', {
          'trust-policy.json': JSON.stringify({
            Version: '2012-10-17',
            Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRoleWithWebIdentity' }],
          }),
        }),
      cause: /application\.trustPolicy: .*trust-policy\.json is not a valid IAM trust policy/,
    },
    {
      name: 'a bucket policy with an unknown key',
      dir: () =>
        setupWith('', {
          'discovery-bucket-policy.json': defaultFile('discovery-bucket-policy.json').replace('"Sid"', '"Sidd"'),
        }),
      cause: /discovery\.bucketPolicy: .* is not a valid IAM resource policy/,
    },
    {
      name: 'an identity provider URL that is not https',
      dir: () => setupWith('identityProvider:\n  url: http://example.com/x\n'),
      cause: /identityProvider\.url "http:\/\/example\.com\/x" is not an https URL/,
    },
  ];
  for (const c of cases)
    it(`refuses ${c.name}, naming the setting and the file`, () => {
      assert.throws(() => checkSetup(loadSetup(c.dir())), refusedWith(c.cause));
    });

  it('renders with the placeholders the provisioning code gives each template', () => {
    // Templates that use every placeholder the check knows of: the provisioning code must define
    // each (an unknown one is an error), so a placeholder the check has and the code lacks fails here.
    const uses = (names: readonly string[]) => names.map((p) => `\${${p}}`).join(' ');
    const forSetting = (setting: string) => TEMPLATES.find((t) => t.setting === setting)?.placeholders ?? [];
    const dir = setupWith('', {
      'discovery.json': JSON.stringify({ issuer: uses(forSetting('discovery.document')) }),
      'permission-policy.json': JSON.stringify({ x: uses(forSetting('application.permissionPolicy')) }),
      'trust-policy.json': JSON.stringify({ x: uses(forSetting('application.trustPolicy')) }),
      'serviceaccount.yaml': `kind: ServiceAccount\nx: "${uses(forSetting('application.serviceAccount'))}"\n`,
      'deployment.yaml': `kind: Deployment\nx: "${uses(forSetting('application.deployment'))}"\n`,
    });
    const ctx = {
      setup: loadSetup(dir),
      runId: SAMPLE_VALUES.runId,
      target: {
        dialect: { audience: 'sts.amazonaws.com', annotationPrefix: 'eks.amazonaws.com' },
        podAwsEnv: {},
        aws: { region: 'us-east-1' },
      },
    } as unknown as ProvisionContext;
    const tenant = { appBucket: 'b', namespace: 'n', serviceAccount: 's' } as unknown as Tenant;
    const infra = { identityProviderArn: 'arn', issuer: SAMPLE_VALUES.issuer } as unknown as InfrastructureState;
    discoveryDocumentFor(ctx, SAMPLE_VALUES.issuer);
    permissionPolicyFor(ctx, tenant);
    trustPolicyFor(ctx, tenant, infra);
    serviceAccountManifest(ctx, 'n', 'name', 'arn:aws:iam::123456789012:role/r');
    deploymentManifest(ctx, 'n', 'name', 's');
  });

  it('refuses an invalid --tags expression, naming it', () => {
    checkTagOptions(['--tags', '@infrastructure and not @slow', '--name', 'x']);
    assert.throws(() => checkTagOptions(['--tags', '@a and']), refusedWith(/^--tags "@a and" is not a tag expression/));
    assert.throws(() => checkTagOptions(['--tags=(@a']), refusedWith(/^--tags "\(@a" is not a tag expression/));
  });
});
