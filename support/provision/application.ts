/**
 * The application team's half of the article, per tenant: app bucket, least-privilege policy,
 * a role trusted by the tenant's ServiceAccount, the namespace, the annotated ServiceAccount and
 * the sample Deployment. Names carry the run id and the scenario's scope id; everything is tagged
 * or labelled and recorded in the ledger before the next step.
 */
import { AttachRolePolicyCommand, CreatePolicyCommand, CreateRoleCommand, GetRoleCommand } from '@aws-sdk/client-iam';
import type { V1Deployment, V1PodSpec, V1ServiceAccount } from '@kubernetes/client-node';
import { isAwsError } from '../aws/errors.ts';
import { partitionOf } from '../aws/regions.ts';
import { retryKubeCreate } from '../kube/errors.ts';
import { awsTags, kubeLabels, resourceName } from '../names.ts';
import { issuerHostPath } from '../oidc/discovery.ts';
import { retry } from '../retry.ts';
import type { InfrastructureState } from '../run-state.ts';
import { renderJson, renderYaml } from '../setup/setup.ts';
import type { TargetDescriptor } from '../targets/target.ts';
import type { ProvisionContext } from './context.ts';
import { createTaggedBucket } from './infrastructure.ts';

export interface Tenant {
  /** The readable name used in feature files ("team-a"). */
  label: string;
  namespace: string;
  serviceAccount: string;
  appBucket: string;
  policyName: string;
  roleName: string;
  deployment: string;
  roleArn?: string;
  policyArn?: string;
}

/** The article's names (sample-iam-webhook-app, s3-manager, ocp-iam-role-app…) made unique per run and scenario. */
export function tenantNames(label: string, runId: string, scopeId: string, serviceAccount = 's3-manager'): Tenant {
  const suffix = label === 'sample' ? scopeId : `${label}-${scopeId}`;
  return {
    label,
    namespace: resourceName('sample-iam-webhook-app', runId, suffix),
    serviceAccount,
    appBucket: resourceName('ocp-iam-role-app', runId, suffix),
    policyName: resourceName('ocp-iam-app-policy', runId, suffix, 128),
    roleName: resourceName('ocp-iam-role', runId, suffix, 64),
    deployment: 'sample-app',
  };
}

export function trustPolicyFor(
  ctx: ProvisionContext,
  tenant: Tenant,
  infra: InfrastructureState,
  subject?: { namespace: string; serviceAccount: string },
): Record<string, unknown> {
  return renderJson(ctx.setup, ctx.setup.spec.application.trustPolicy, {
    identityProviderArn: infra.identityProviderArn,
    issuerHostPath: issuerHostPath(infra.issuer),
    namespace: subject?.namespace ?? tenant.namespace,
    serviceAccount: subject?.serviceAccount ?? tenant.serviceAccount,
    audience: ctx.target.dialect.audience,
    partition: partitionOf(ctx.target.aws.region),
  });
}

export function permissionPolicyFor(ctx: ProvisionContext, tenant: Tenant): Record<string, unknown> {
  return renderJson(ctx.setup, ctx.setup.spec.application.permissionPolicy, {
    appBucket: tenant.appBucket,
    partition: partitionOf(ctx.target.aws.region),
  });
}

/** App bucket, policy, role (trust from the setup's template), policy attached. */
export async function createTenantAwsResources(
  ctx: ProvisionContext,
  tenant: Tenant,
  infra: InfrastructureState,
): Promise<void> {
  const iam = ctx.clients.iam;
  // Bucket, policy and role do not depend on each other: created concurrently (each is a chain of
  // round trips), recorded policy before role so that the role (detached first) is deleted first.
  const [bucket, policy, role] = await Promise.allSettled([
    createTaggedBucket(ctx, tenant.appBucket),
    iam.send(
      new CreatePolicyCommand({
        PolicyName: tenant.policyName,
        PolicyDocument: JSON.stringify(permissionPolicyFor(ctx, tenant)),
        Tags: awsTags(ctx.runId),
      }),
    ),
    iam.send(
      new CreateRoleCommand({
        RoleName: tenant.roleName,
        AssumeRolePolicyDocument: JSON.stringify(trustPolicyFor(ctx, tenant, infra)),
        Description: `irsa-conformance run ${ctx.runId}: role of ${tenant.namespace}/${tenant.serviceAccount}`,
        Tags: awsTags(ctx.runId),
      }),
    ),
  ]);
  if (policy.status === 'fulfilled') {
    tenant.policyArn = policy.value.Policy?.Arn as string;
    ctx.ledger.record(ctx.scope, { kind: 'iam-policy', policyArn: tenant.policyArn });
  }
  if (role.status === 'fulfilled') {
    tenant.roleArn = role.value.Role?.Arn as string;
    ctx.ledger.record(ctx.scope, { kind: 'iam-role', roleName: tenant.roleName });
  }
  for (const r of [bucket, policy, role]) if (r.status === 'rejected') throw r.reason;
  await iam.send(new AttachRolePolicyCommand({ RoleName: tenant.roleName, PolicyArn: tenant.policyArn }));
  // IAM is eventually consistent on real AWS: wait until the role reads back before it is used.
  const waited = await retry(() => iam.send(new GetRoleCommand({ RoleName: tenant.roleName })), {
    operation: `reading back role ${tenant.roleName}`,
    waitingFor: 'IAM to propagate the new role',
    timeoutSeconds: ctx.config.timeouts.applySeconds,
    retryable: (e) => isAwsError(e, 'NoSuchEntity'),
  });
  if (waited.attempts > 1) ctx.log(`IAM propagation: role ${tenant.roleName} readable after ${waited.waitedMs} ms`);
}

export async function createNamespace(ctx: ProvisionContext, name: string): Promise<void> {
  await retryKubeCreate(
    () => ctx.clients.core.createNamespace({ body: { metadata: { name, labels: kubeLabels(ctx.runId) } } }),
    { operation: `creating namespace ${name}`, timeoutSeconds: ctx.config.timeouts.applySeconds },
  );
  ctx.ledger.record(ctx.scope, { kind: 'k8s-namespace', name });
}

export function serviceAccountManifest(
  ctx: ProvisionContext,
  namespace: string,
  name: string,
  roleArn: string,
): V1ServiceAccount {
  return renderYaml<V1ServiceAccount>(ctx.setup, ctx.setup.spec.application.serviceAccount, {
    namespace,
    name,
    roleArn,
    annotationPrefix: ctx.target.dialect.annotationPrefix,
    runId: ctx.runId,
  });
}

export async function createServiceAccount(ctx: ProvisionContext, sa: V1ServiceAccount): Promise<void> {
  const namespace = sa.metadata?.namespace as string;
  await retryKubeCreate(() => ctx.clients.core.createNamespacedServiceAccount({ namespace, body: sa }), {
    operation: `creating ServiceAccount ${namespace}/${sa.metadata?.name}`,
    timeoutSeconds: ctx.config.timeouts.applySeconds,
  });
}

/** The image of the harness's pods: the target's own where it has one (TargetDescriptor.podTemplate). */
export function podImage(ctx: Pick<ProvisionContext, 'target' | 'setup'>): string {
  return ctx.target.podTemplate?.image ?? ctx.setup.spec.application.image;
}

/**
 * What every pod the harness creates needs from its target: the env to reach AWS (the pod's own
 * env first) and the target's pod template settings (the real node's host network).
 */
export function forTarget(target: TargetDescriptor, spec: V1PodSpec | undefined): void {
  if (!spec) return;
  const extra = Object.entries(target.podAwsEnv).map(([name, value]) => ({ name, value }));
  for (const c of [...(spec.initContainers ?? []), ...spec.containers])
    c.env = [...(c.env ?? []), ...extra.filter((e) => !(c.env ?? []).some((x) => x.name === e.name))];
  if (target.podTemplate?.hostNetwork) spec.hostNetwork = true;
}

/** The sample Deployment from the setup's template, made for the target (forTarget). */
export function deploymentManifest(
  ctx: ProvisionContext,
  namespace: string,
  name: string,
  serviceAccount: string,
): V1Deployment {
  const d = renderYaml<V1Deployment>(ctx.setup, ctx.setup.spec.application.deployment, {
    namespace,
    name,
    serviceAccount,
    image: podImage(ctx),
    runId: ctx.runId,
  });
  forTarget(ctx.target, d.spec?.template.spec);
  return d;
}

export async function createDeployment(ctx: ProvisionContext, d: V1Deployment): Promise<void> {
  const namespace = d.metadata?.namespace as string;
  await retryKubeCreate(() => ctx.clients.apps.createNamespacedDeployment({ namespace, body: d }), {
    operation: `creating Deployment ${namespace}/${d.metadata?.name}`,
    timeoutSeconds: ctx.config.timeouts.applySeconds,
  });
}
