/**
 * Steps about the least-privilege lint's two profiles: `strict` (IRSA_LINT_PROFILE=strict or the
 * setup's lint.profile) fails on error and critical findings, `default` fails on critical findings
 * only (a role any ServiceAccount of the cluster can assume) and reports the rest as warnings.
 * They lint deliberately over-broad policies (fixtures/policies/, rendered for a team as the
 * setup's templates are) and say what each profile makes of them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Given, Then } from '@cucumber/cucumber';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { issuerHostPath } from '../support/oidc/discovery.ts';
import { repoRoot } from '../support/paths.ts';
import {
  type LintFinding,
  lintFails,
  lintPermissionPolicy,
  lintTrustPolicy,
  reportedFinding,
} from '../support/policy/lint.ts';
import { tenantNames } from '../support/provision/application.ts';
import { substitute } from '../support/setup/setup.ts';

const linted = new WeakMap<IrsaWorld, { name: string; findings: LintFinding[] }>();

function lintedOf(world: IrsaWorld) {
  const l = linted.get(world);
  assert.ok(l, 'no policy was linted in this scenario');
  return l;
}

Given('team {string} as the setup names it', function (this: IrsaWorld, label: string) {
  this.tenants.set(label, tenantNames(label, this.state.runId, this.scopeId));
});

Given(
  'the {word} policy {string} written for team {string}',
  async function (this: IrsaWorld, kind: string, fixture: string, label: string) {
    assert.ok(kind === 'trust' || kind === 'permission', `no ${kind} policy kind: trust or permission`);
    const infra = await this.infrastructure();
    const tenant = this.tenant(label);
    const file = path.join(repoRoot, 'fixtures', 'policies', `${fixture}.json`);
    const doc: unknown = JSON.parse(
      substitute(
        readFileSync(file, 'utf8'),
        {
          identityProviderArn: infra.identityProviderArn,
          issuerHostPath: issuerHostPath(infra.issuer),
          namespace: tenant.namespace,
          serviceAccount: tenant.serviceAccount,
          audience: this.state.target.dialect.audience,
          appBucket: tenant.appBucket,
          partition: this.partition,
        },
        file,
      ),
    );
    const findings =
      kind === 'trust'
        ? lintTrustPolicy(doc, { issuerHostPath: issuerHostPath(infra.issuer) })
        : lintPermissionPolicy(doc, fixture);
    linted.set(this, { name: `${kind} policy ${fixture}`, findings });
  },
);

Then('the least-privilege lint reports {string} as its only error', function (this: IrsaWorld, rule: string) {
  const { name, findings } = lintedOf(this);
  this.attach(findings.map((f) => reportedFinding(f, true)).join('\n') || 'no findings', {
    mediaType: 'text/plain',
    fileName: 'lint findings.txt',
  });
  const errors = findings.filter((f) => f.severity !== 'warning').map((f) => f.rule);
  assert.deepEqual(
    [...new Set(errors)],
    [rule],
    `the lint of the ${name} reports errors ${JSON.stringify(errors)}, expected ${rule} only: ${findings.map((f) => f.message).join('; ') || 'no findings'}`,
  );
});

Then('under the strict profile the lint fails, naming {string}', function (this: IrsaWorld, rule: string) {
  const { name, findings } = lintedOf(this);
  assert.equal(lintFails(findings, true), true, `the strict profile lets the ${name} pass`);
  const named = findings.filter((f) => f.rule === rule).map((f) => reportedFinding(f, true));
  assert.ok(
    named.length > 0 && named.every((l) => !l.startsWith('warning ')),
    `the strict profile does not report ${rule} as an error for the ${name}`,
  );
});

Then('under the default profile the lint fails too, naming {string}', function (this: IrsaWorld, rule: string) {
  const { name, findings } = lintedOf(this);
  const lines = findings.filter((f) => f.rule === rule).map((f) => reportedFinding(f, false));
  this.attach(lines.join('\n'), { mediaType: 'text/plain', fileName: 'lint findings.txt' });
  assert.equal(lintFails(findings, false), true, `the default profile lets the ${name} pass`);
  assert.ok(
    lines.length > 0 && lines.every((l) => l.startsWith('critical ')),
    `the default profile does not report ${rule} as critical for the ${name}`,
  );
});

Then(
  'under the default profile the lint passes and reports {string} as a warning',
  function (this: IrsaWorld, rule: string) {
    const { name, findings } = lintedOf(this);
    assert.equal(lintFails(findings, false), false, `the default profile fails the ${name}: it must only warn`);
    const lines = findings.filter((f) => f.rule === rule).map((f) => reportedFinding(f, false));
    this.attach(lines.join('\n'), { mediaType: 'text/plain', fileName: 'lint findings.txt' });
    assert.ok(
      lines.length > 0 && lines.every((l) => l.startsWith('warning ')),
      `the default profile does not report ${rule} for the ${name}`,
    );
  },
);
