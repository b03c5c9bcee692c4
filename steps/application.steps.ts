/**
 * Steps of the application team: a tenant's AWS resources and Kubernetes objects, and the checks
 * of its role's policies. Tenants are named by a label in the feature ("sample", "team-a"); the
 * real names carry the run id and the scenario's scope id.
 */
import assert from 'node:assert/strict';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Given, Then } from '@cucumber/cucumber';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import { s3ObjectArn } from '../support/aws/arn.ts';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { OperationTimeout } from '../support/errors.ts';
import { resourceName } from '../support/names.ts';
import { issuerHostPath } from '../support/oidc/discovery.ts';
import { lintPermissionPolicy, lintTrustPolicy } from '../support/policy/lint.ts';
import { simulatePermission } from '../support/policy/simulate.ts';
import {
  createDeployment,
  createNamespace,
  createServiceAccount,
  createTenantAwsResources,
  deploymentManifest,
  permissionPolicyFor,
  serviceAccountManifest,
  tenantNames,
  trustPolicyFor,
} from '../support/provision/application.ts';
import type { ProvisionContext } from '../support/provision/context.ts';
import { createTaggedBucket } from '../support/provision/infrastructure.ts';
import { waitUntilWebhookMutates } from '../support/provision/pods.ts';
import { assertLeastPrivilege } from '../support/scenario/lint.ts';

Given(
  'team {string} has an app bucket, a least-privilege policy and a role trusted by its ServiceAccount {string}',
  async function (this: IrsaWorld, label: string, serviceAccount: string) {
    const infra = await this.infrastructure();
    const tenant = tenantNames(label, this.state.runId, this.scopeId, serviceAccount);
    this.tenants.set(label, tenant);
    await createTenantAwsResources(this.provisionContext(), tenant, infra);
    this.attach(
      `team ${label}: namespace ${tenant.namespace}, ServiceAccount ${tenant.serviceAccount}, bucket ${tenant.appBucket}, role ${tenant.roleArn}`,
      { mediaType: 'text/plain', fileName: `team ${label}.txt` },
    );
  },
);

async function deployTeam(world: IrsaWorld, label: string, annotate: boolean, runAsUser?: number): Promise<void> {
  const tenant = world.tenant(label);
  const ctx = world.provisionContext();
  await createNamespace(ctx, tenant.namespace);
  const sa = serviceAccountManifest(ctx, tenant.namespace, tenant.serviceAccount, tenant.roleArn as string);
  if (!annotate) delete sa.metadata?.annotations?.[`${world.state.target.dialect.annotationPrefix}/role-arn`];
  await createServiceAccount(ctx, sa);
  const deployment = deploymentManifest(ctx, tenant.namespace, tenant.deployment, tenant.serviceAccount);
  const podSpec = deployment.spec?.template.spec;
  if (runAsUser !== undefined && podSpec) {
    // The template's fsGroup stays: upstream's advice for non-root containers (irsa-facts §5.11).
    podSpec.securityContext = { ...podSpec.securityContext, runAsUser };
    // The AWS CLI caches assumed-role credentials under $HOME and fails when it cannot create it
    // (a user without a home, like 65534 in most images): a non-root user gets a writable one.
    for (const c of podSpec.containers)
      if (!(c.env ?? []).some((e) => e.name === 'HOME')) c.env = [...(c.env ?? []), { name: 'HOME', value: '/tmp' }];
  }
  if (annotate) await letWebhookCacheCatchUp(world, ctx, deployment);
  await createDeployment(ctx, deployment);
}

/**
 * The webhook learns ServiceAccounts through a watch: a pod created right after its annotated
 * ServiceAccount may be admitted unmutated (irsa-facts §5.2). Give its cache a moment through
 * dry-run creates, bounded and never fatal: a setup that cannot mutate at all (no webhook
 * registration, no annotation) must reach the check that names that cause.
 */
async function letWebhookCacheCatchUp(
  world: IrsaWorld,
  ctx: ProvisionContext,
  deployment: V1Deployment,
): Promise<void> {
  const template = deployment.spec?.template;
  const pod: V1Pod = {
    metadata: {
      namespace: deployment.metadata?.namespace as string,
      name: `${deployment.metadata?.name}-cache-probe`,
      labels: template?.metadata?.labels ?? {},
    },
    spec: template?.spec as V1Pod['spec'],
  };
  const brief = { ...ctx, config: { ...ctx.config, timeouts: { ...ctx.config.timeouts, applySeconds: 3 } } };
  try {
    await waitUntilWebhookMutates(brief, pod);
  } catch (e) {
    if (!(e instanceof OperationTimeout)) throw e;
    world.log(
      'the webhook did not mutate a dry-run pod within 3 s; creating the Deployment anyway (the mutation checks say why)',
    );
  }
}

Given(
  'team {string} has deployed the sample app with its ServiceAccount annotated with the role ARN',
  async function (this: IrsaWorld, label: string) {
    await deployTeam(this, label, true);
  },
);

Given(
  'team {string} has deployed the sample app running as user {int}, with its ServiceAccount annotated with the role ARN',
  async function (this: IrsaWorld, label: string, uid: number) {
    await deployTeam(this, label, true, uid);
  },
);

Given(
  'team {string} has deployed the sample app with a ServiceAccount that has no role annotation',
  async function (this: IrsaWorld, label: string) {
    await deployTeam(this, label, false);
  },
);

Given(
  'another bucket {string} that team {string} has no permission for',
  async function (this: IrsaWorld, name: string, label: string) {
    this.tenant(label);
    const bucket = resourceName(`ocp-iam-other-${name}`, this.state.runId, this.scopeId);
    await createTaggedBucket(this.provisionContext(), bucket);
    this.buckets.set(name, bucket);
  },
);

Then("the role's trust policy admits the token of team {string}", async function (this: IrsaWorld, label: string) {
  const tenant = this.tenant(label);
  const infra = await this.infrastructure();
  const token = this.tokens.get(label);
  assert.ok(token, `no token of team ${label} was read in this scenario`);
  const { decodeTokenClaims } = await import('../support/oidc/token.ts');
  const claims = decodeTokenClaims(token);
  const { simulateTrust } = await import('../support/policy/simulate.ts');
  const sim = await simulateTrust({
    trustPolicy: trustPolicyFor(this.provisionContext(), tenant, infra),
    identityProviderArn: infra.identityProviderArn,
    claims: { sub: claims.sub ?? '', aud: claims.aud[0] ?? '' },
    issuerHostPath: issuerHostPath(claims.iss ?? ''),
    roleArn: tenant.roleArn as string,
  });
  this.attach(`trust policy simulation: ${sim.decision}: ${sim.explanation}`, {
    mediaType: 'text/plain',
    fileName: 'trust policy simulation.txt',
  });
  assert.equal(
    sim.decision,
    'Allowed',
    `the trust policy of role ${tenant.roleName} does not admit the pod's token: ${sim.explanation}`,
  );
});

Then(
  'the permission policy of team {string} explains the denial of s3:PutObject on the bucket {string}',
  async function (this: IrsaWorld, label: string, name: string) {
    const tenant = this.tenant(label);
    const bucket = this.bucket(name);
    const sim = await simulatePermission({
      policies: [{ name: tenant.policyName, document: permissionPolicyFor(this.provisionContext(), tenant) }],
      principalArn: tenant.roleArn as string,
      action: 's3:PutObject',
      resource: s3ObjectArn(bucket, 'ocp-validation.txt', this.partition),
    });
    this.attach(`policy simulation of s3:PutObject on ${bucket}: ${sim.decision}: ${sim.explanation}`, {
      mediaType: 'text/plain',
      fileName: 'policy simulation.txt',
    });
    assert.notEqual(
      sim.decision,
      'Allowed',
      `the permission policy allows s3:PutObject on ${bucket}: ${sim.allowingStatements.join(', ')}`,
    );
  },
);

Then(
  'the trust policy of team {string} admits only its own ServiceAccount',
  async function (this: IrsaWorld, label: string) {
    const tenant = this.tenant(label);
    const infra = await this.infrastructure();
    const doc = trustPolicyFor(this.provisionContext(), tenant, infra);
    const findings = lintTrustPolicy(doc, { issuerHostPath: issuerHostPath(infra.issuer) });
    assertLeastPrivilege(this, `the trust policy of role ${tenant.roleName}`, findings);
  },
);

Then(
  'the permission policy of team {string} grants object access only inside its app bucket',
  async function (this: IrsaWorld, label: string) {
    const tenant = this.tenant(label);
    const findings = lintPermissionPolicy(permissionPolicyFor(this.provisionContext(), tenant), tenant.policyName);
    assertLeastPrivilege(this, `the permission policy ${tenant.policyName}`, findings);
  },
);

Then(
  '{string} in the app bucket of team {string} holds what the pod wrote',
  async function (this: IrsaWorld, key: string, label: string) {
    const tenant = this.tenant(label);
    const obj = await this.clients.s3.send(new GetObjectCommand({ Bucket: tenant.appBucket, Key: key }));
    const body = await (obj.Body as { transformToString(): Promise<string> }).transformToString();
    assert.equal(
      body.trim(),
      this.uploadBody(),
      `s3://${tenant.appBucket}/${key} holds ${JSON.stringify(body.slice(0, 100))}, not what the pod wrote`,
    );
  },
);
