/**
 * Steps about who may assume a team's role: other ServiceAccounts (another namespace, the same
 * namespace), tokens with the wrong audience, tokens signed by a key the cluster does not publish,
 * expired tokens. Behavioural steps call STS (from a pod, or from the harness with a token) and
 * need a target that validates tokens and evaluates trust policies; diagnostic steps evaluate the
 * role's trust policy as IAM has it and check tokens against the published documents as STS would,
 * on every target. Tokens come from the TokenRequest API; they are secrets and never attached.
 */
import assert from 'node:assert/strict';
import { AssumeRoleWithWebIdentityCommand } from '@aws-sdk/client-sts';
import { Given, Then, When } from '@cucumber/cucumber';
import { isAssumedRoleArn } from '../support/aws/arn.ts';
import { awsErrorName, describeAwsError } from '../support/aws/errors.ts';
import { readTrustPolicy } from '../support/aws/iam.ts';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { diagnoseToken, type TokenDiagnosis } from '../support/diagnose/token.ts';
import { issuerHostPath } from '../support/oidc/discovery.ts';
import { forgeToken, unpublishedKid } from '../support/oidc/forge.ts';
import { decodeTokenClaims, decodeTokenHeader } from '../support/oidc/token.ts';
import { simulateTrust, type TrustSimulation } from '../support/policy/simulate.ts';
import {
  createDeployment,
  createServiceAccount,
  deploymentManifest,
  serviceAccountManifest,
  tenantNames,
} from '../support/provision/application.ts';
import { readIdentityProvider } from '../support/provision/infrastructure.ts';
import { registerSecret } from '../support/redact.ts';

/** When the diagnosis of a team's token looks at it (a moved clock for the expiry case). */
const diagnoseAt = new WeakMap<IrsaWorld, Map<string, Date>>();

async function simulateFor(world: IrsaWorld, owner: string, token: string): Promise<TrustSimulation> {
  const infra = await world.infrastructure();
  const tenant = world.tenant(owner);
  const claims = decodeTokenClaims(token);
  return simulateTrust({
    trustPolicy: await readTrustPolicy(world.clients, tenant.roleName),
    identityProviderArn: infra.identityProviderArn,
    claims: { sub: claims.sub ?? '', aud: claims.aud[0] ?? '' },
    issuerHostPath: issuerHostPath(claims.iss ?? infra.issuer),
    roleArn: tenant.roleArn as string,
  });
}

async function requestToken(world: IrsaWorld, label: string, audience: string, expirationSeconds: number) {
  const tenant = world.tenant(label);
  const tr = await world.clients.core.createNamespacedServiceAccountToken({
    name: tenant.serviceAccount,
    namespace: tenant.namespace,
    body: { spec: { audiences: [audience], expirationSeconds } },
  });
  const token = tr.status?.token;
  assert.ok(token, `TokenRequest for ${tenant.namespace}/${tenant.serviceAccount} returned no token`);
  registerSecret(token);
  return token;
}

function keep(world: IrsaWorld, label: string, token: string): void {
  registerSecret(token);
  world.tokens.set(label, token);
  const c = decodeTokenClaims(token);
  const h = decodeTokenHeader(token);
  world.attach(
    `token of team ${label}: kid ${h.kid}, iss ${c.iss}, sub ${c.sub}, aud ${c.aud.join(',')}, exp ${c.exp ? new Date(c.exp * 1000).toISOString() : 'none'}`,
    { mediaType: 'text/plain', fileName: `token of team ${label}.txt` },
  );
}

function tokenOf(world: IrsaWorld, label: string): string {
  const t = world.tokens.get(label);
  assert.ok(t, `no token of team ${label} in this scenario`);
  return t;
}

// --- ServiceAccounts and workloads of other teams -------------------------------------------------

Given('team {string} has its namespace and its ServiceAccount', async function (this: IrsaWorld, label: string) {
  const tenant = this.tenant(label);
  const ctx = this.provisionContext();
  await this.ensureNamespace(tenant.namespace);
  await createServiceAccount(
    ctx,
    serviceAccountManifest(ctx, tenant.namespace, tenant.serviceAccount, tenant.roleArn as string),
  );
});

/** A team without AWS resources of its own, using another team's role ARN (or none). */
function outsider(world: IrsaWorld, label: string, serviceAccount: string, namespaceOf?: string, roleOf?: string) {
  const tenant = tenantNames(label, world.state.runId, world.scopeId, serviceAccount);
  if (namespaceOf) {
    tenant.namespace = world.tenant(namespaceOf).namespace;
    tenant.deployment = `sample-app-${label}`;
  }
  if (roleOf) {
    const owner = world.tenant(roleOf);
    tenant.roleArn = owner.roleArn as string;
    tenant.roleName = owner.roleName;
    tenant.policyName = owner.policyName;
    tenant.appBucket = owner.appBucket;
  }
  world.tenants.set(label, tenant);
  return tenant;
}

async function createOutsiderServiceAccount(world: IrsaWorld, label: string, roleArn: string | undefined) {
  const tenant = world.tenant(label);
  const ctx = world.provisionContext();
  await world.ensureNamespace(tenant.namespace);
  const sa = serviceAccountManifest(ctx, tenant.namespace, tenant.serviceAccount, roleArn ?? '');
  if (!roleArn) delete sa.metadata?.annotations?.[`${world.state.target.dialect.annotationPrefix}/role-arn`];
  await createServiceAccount(ctx, sa);
}

Given(
  'team {string} has a ServiceAccount {string} in its own namespace',
  async function (this: IrsaWorld, label: string, serviceAccount: string) {
    outsider(this, label, serviceAccount);
    await createOutsiderServiceAccount(this, label, undefined);
  },
);

Given(
  'team {string} has a ServiceAccount {string} in the namespace of team {string}',
  async function (this: IrsaWorld, label: string, serviceAccount: string, other: string) {
    outsider(this, label, serviceAccount, other);
    await createOutsiderServiceAccount(this, label, undefined);
  },
);

async function deployOutsider(world: IrsaWorld, label: string): Promise<void> {
  const tenant = world.tenant(label);
  const ctx = world.provisionContext();
  await createOutsiderServiceAccount(world, label, tenant.roleArn);
  await createDeployment(ctx, deploymentManifest(ctx, tenant.namespace, tenant.deployment, tenant.serviceAccount));
}

Given(
  'team {string} has deployed the sample app in its own namespace with a ServiceAccount {string} annotated with the role ARN of team {string}',
  async function (this: IrsaWorld, label: string, serviceAccount: string, owner: string) {
    outsider(this, label, serviceAccount, undefined, owner);
    await deployOutsider(this, label);
  },
);

Given(
  'team {string} has deployed the sample app in the namespace of team {string} with a ServiceAccount {string} annotated with the role ARN of team {string}',
  async function (this: IrsaWorld, label: string, other: string, serviceAccount: string, owner: string) {
    outsider(this, label, serviceAccount, other, owner);
    await deployOutsider(this, label);
  },
);

// --- Tokens ------------------------------------------------------------------------------------------

When(
  'team {string} gets a genuine token with the audience the webhook puts into tokens',
  async function (this: IrsaWorld, label: string) {
    keep(this, label, await requestToken(this, label, this.state.target.dialect.audience, 3600));
  },
);

When(
  'team {string} gets a token for the audience {string}',
  async function (this: IrsaWorld, label: string, aud: string) {
    keep(this, label, await requestToken(this, label, aud, 3600));
  },
);

async function forged(world: IrsaWorld, label: string, kid: 'cluster' | 'unpublished', shiftSeconds = 0) {
  const genuine = await requestToken(world, label, world.state.target.dialect.audience, 3600);
  const header = decodeTokenHeader(genuine);
  const f = await forgeToken({
    claims: decodeTokenClaims(genuine).all,
    kid: kid === 'cluster' ? header.kid : unpublishedKid(),
    shiftSeconds,
  });
  keep(world, label, f.token);
}

When(
  "team {string} gets a token forged with a freshly generated key under the cluster's kid",
  async function (this: IrsaWorld, label: string) {
    await forged(this, label, 'cluster');
  },
);

When(
  'team {string} gets a token forged with a freshly generated key under a kid keys.json does not list',
  async function (this: IrsaWorld, label: string) {
    await forged(this, label, 'unpublished');
  },
);

When(
  "team {string} gets a token forged with a freshly generated key under the cluster's kid that expired an hour ago",
  async function (this: IrsaWorld, label: string) {
    // The API server issues nothing shorter than 600 s, so a token expired now can only be forged.
    await forged(this, label, 'cluster', -(3600 + 3600));
  },
);

When(
  'team {string} gets a genuine token of {int} s, diagnosed {int} s after it expired',
  async function (this: IrsaWorld, label: string, lifetime: number, after: number) {
    const token = await requestToken(this, label, this.state.target.dialect.audience, lifetime);
    keep(this, label, token);
    const exp = decodeTokenClaims(token).exp ?? 0;
    const at = diagnoseAt.get(this) ?? new Map<string, Date>();
    at.set(label, new Date((exp + after) * 1000));
    diagnoseAt.set(this, at);
  },
);

// --- Diagnostics (every target) -----------------------------------------------------------------------

async function diagnose(world: IrsaWorld, label: string): Promise<TokenDiagnosis> {
  const infra = await world.infrastructure();
  const idp = await readIdentityProvider(world.clients, infra.identityProviderArn);
  const now = diagnoseAt.get(world)?.get(label);
  const d = await diagnoseToken({
    token: tokenOf(world, label),
    fetchJson: world.clients.anonymousGetJson,
    identityProvider: { url: idp.url, clientIds: idp.clientIds },
    ...(now ? { now } : {}),
  });
  world.attach(
    `${now ? `diagnosed as of ${now.toISOString()}\n` : ''}${d.checks.map((c) => `${c.ok ? 'ok  ' : c.skipped ? 'skip' : 'FAIL'} ${c.name}: ${c.detail}`).join('\n')}`,
    { mediaType: 'text/plain', fileName: 'token diagnosis.txt' },
  );
  return d;
}

Then(
  'the token diagnosis of team {string} fails only at {string}',
  async function (this: IrsaWorld, label: string, check: string) {
    const d = await diagnose(this, label);
    const failed = d.checks.filter((c) => !c.ok && !c.skipped);
    assert.deepEqual(
      failed.map((c) => c.name),
      [check],
      failed.length === 0
        ? `the diagnosis finds nothing wrong with the token of team ${label}, but STS must refuse it at ${check}`
        : `the diagnosis of the token of team ${label} fails at ${failed.map((c) => `${c.name} (${c.detail})`).join('; ')}, expected only ${check}`,
    );
  },
);

Then(
  'the trust policy of team {string} refuses the token of team {string} on its {string} condition',
  async function (this: IrsaWorld, owner: string, label: string, claim: string) {
    const token = tokenOf(this, label);
    const sim = await simulateFor(this, owner, token);
    this.attach(`trust policy simulation: ${sim.decision}: ${sim.explanation}`, {
      mediaType: 'text/plain',
      fileName: 'trust policy simulation.txt',
    });
    const claims = decodeTokenClaims(token);
    assert.notEqual(
      sim.decision,
      'Allowed',
      `the trust policy of role ${this.tenant(owner).roleName} admits the token of team ${label} (sub ${claims.sub}, aud ${claims.aud.join(',')}): ${sim.explanation}`,
    );
    const key = `${issuerHostPath(claims.iss ?? '')}:${claim}`;
    assert.ok(
      sim.explanation.includes(key),
      `the trust policy refuses the token of team ${label}, but not on its ${key} condition: ${sim.explanation}`,
    );
  },
);

// --- Behaviour (targets that validate tokens / evaluate trust policies) ----------------------------

/** STS AssumeRoleWithWebIdentity with the token of team `label`; a session's secrets are registered. */
async function assumeRoleWithTokenOf(world: IrsaWorld, label: string, roleArn: string | undefined) {
  const out = await world.clients.sts.send(
    new AssumeRoleWithWebIdentityCommand({
      RoleArn: roleArn,
      RoleSessionName: `irsa-conformance-${world.scopeId}`,
      WebIdentityToken: tokenOf(world, label),
    }),
  );
  for (const s of [out.Credentials?.SecretAccessKey, out.Credentials?.SessionToken]) if (s) registerSecret(s);
  return out;
}

Then(
  'STS accepts the token of team {string} for the role of team {string}',
  async function (this: IrsaWorld, label: string, owner: string) {
    const role = this.tenant(owner);
    try {
      const out = await assumeRoleWithTokenOf(this, label, role.roleArn);
      const arn = out.AssumedRoleUser?.Arn ?? '';
      assert.ok(isAssumedRoleArn(arn, role.roleName), `STS returned a session of ${arn}, not of ${role.roleName}`);
    } catch (e) {
      if (awsErrorName(e) === undefined) throw e;
      const d = await diagnose(this, label);
      const sim = await simulateFor(this, owner, tokenOf(this, label));
      assert.fail(
        `STS refused a genuine token of team ${label} for role ${role.roleName}: ${describeAwsError(e)}; token diagnosis: ${d.firstFailure ?? 'no problem found'}; trust policy: ${sim.decision}: ${sim.explanation}`,
      );
    }
  },
);

Then(
  'STS refuses the token of team {string} for the role of team {string} with {string}',
  async function (this: IrsaWorld, label: string, owner: string, errors: string) {
    const role = this.tenant(owner);
    const expected = errors.split(' or ').map((s) => s.trim());
    let refused: unknown;
    try {
      await assumeRoleWithTokenOf(this, label, role.roleArn);
    } catch (e) {
      refused = e;
    }
    if (refused === undefined) {
      const d = await diagnose(this, label);
      const sim = await simulateFor(this, owner, tokenOf(this, label));
      assert.fail(
        `STS issued credentials of ${role.roleName} for a token it must refuse (the diagnosis: ${d.firstFailure ?? 'nothing wrong'}); the trust policy says ${sim.decision}: ${sim.explanation}`,
      );
    }
    const name = awsErrorName(refused);
    if (name === undefined) throw refused;
    this.attach(`STS refused: ${describeAwsError(refused)}`, { mediaType: 'text/plain', fileName: 'STS refusal.txt' });
    assert.ok(
      expected.includes(name),
      `STS refused with ${describeAwsError(refused)}, expected ${expected.join(' or ')}`,
    );
  },
);

Then(
  'the pod of team {string} cannot assume the role of team {string}',
  async function (this: IrsaWorld, label: string, owner: string) {
    await this.runInPod(label, 'aws sts get-caller-identity --output json');
    const e = this.lastExec;
    assert.ok(e, 'no command ran');
    if (e.exitCode === 0) {
      const arn = (JSON.parse(e.stdout || '{}') as { Arn?: string }).Arn ?? '(no Arn)';
      const tenant = this.tenant(label);
      const infra = await this.infrastructure();
      const sim = await simulateTrust({
        trustPolicy: await readTrustPolicy(this.clients, this.tenant(owner).roleName),
        identityProviderArn: infra.identityProviderArn,
        claims: {
          sub: `system:serviceaccount:${tenant.namespace}:${tenant.serviceAccount}`,
          aud: this.state.target.dialect.audience,
        },
        issuerHostPath: issuerHostPath(infra.issuer),
        roleArn: this.tenant(owner).roleArn as string,
      });
      assert.fail(
        `the pod of team ${label} (${tenant.namespace}/${tenant.serviceAccount}) assumed ${arn}: the trust policy of ${this.tenant(owner).roleName} says ${sim.decision}: ${sim.explanation}`,
      );
    }
    assert.match(
      e.stderr,
      /AccessDenied/,
      `the pod of team ${label} could not assume the role, but not because STS denied it: ${e.stderr.trim().slice(0, 400)}`,
    );
  },
);
