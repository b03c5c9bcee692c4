/**
 * The tenants of the isolation matrix: tenant <i> of a run has its own namespace, ServiceAccount,
 * role, policy, bucket and one pod. They are run-scoped and shared: tenant <i>'s scenarios use its
 * pod, and every tenant's scenario needs the buckets of all the others. So each tenant's AWS part
 * and its Kubernetes part are created once per run (support/provision/once.ts), by whichever
 * scenario of whichever worker thread asks first, and recorded in the ledger under the scope
 * `tenant-matrix-t<i>`, which the tenant-matrix plugin deletes, all tenants concurrently, when the
 * suite has finished (support/plugins/tenant-matrix.ts).
 *
 * Names are derived from the run id and the tenant's number only, so that any worker computes
 * the same names and nothing collides between parallel workers. The AWS and Kubernetes parts are
 * independent (the role ARN is known from the names) and are created concurrently.
 */
import { parseArn, roleArn } from '../aws/arn.ts';
import { OperationTimeout } from '../errors.ts';
import { waitForReadyPod } from '../kube/ops.ts';
import { resourceName } from '../names.ts';
import type { InfrastructureState } from '../run-state.ts';
import {
  createNamespace,
  createServiceAccount,
  createTenantAwsResources,
  serviceAccountManifest,
  type Tenant,
} from './application.ts';
import type { ProvisionContext } from './context.ts';
import { runOnce } from './once.ts';
import { createPod, isMutated, samplePodManifest, waitUntilWebhookMutates } from './pods.ts';

export const TENANT_SCOPE_PREFIX = 'tenant-matrix-t';

export function tenantScope(n: number): string {
  return `${TENANT_SCOPE_PREFIX}${n}`;
}

/** Tenant <n> of the matrix: the names every worker computes alike. */
export function matrixTenant(runId: string, n: number, accountId: string, partition = 'aws'): Tenant {
  const suffix = `t${n}`;
  const roleName = resourceName('irsa-tenant-role', runId, suffix, 64);
  return {
    label: `tenant ${n}`,
    namespace: resourceName('irsa-tenant', runId, suffix),
    serviceAccount: 'tenant-app',
    appBucket: resourceName('irsa-tenant-bucket', runId, suffix),
    policyName: resourceName('irsa-tenant-policy', runId, suffix, 128),
    roleName,
    deployment: 'tenant-app',
    roleArn: roleArn(accountId, roleName, '/', partition),
  };
}

export function matrixTenants(runId: string, count: number, accountId: string, infra: InfrastructureState): Tenant[] {
  const partition = parseArn(infra.identityProviderArn).partition;
  return Array.from({ length: count }, (_, i) => matrixTenant(runId, i + 1, accountId, partition));
}

function tenantNumber(t: Tenant): number {
  return Number(t.label.replace(/^tenant /, ''));
}

/** Bucket, policy and role of a tenant, once per run. Resolves with the role ARN IAM returned. */
export function ensureTenantAws(
  ctx: ProvisionContext,
  runDir: string,
  tenant: Tenant,
  infra: InfrastructureState,
): Promise<{ roleArn: string; policyArn: string }> {
  const n = tenantNumber(tenant);
  return runOnce(runDir, `tenant-t${n}-aws`, ctx.config.timeouts.startSeconds, async () => {
    const own = { ...tenant };
    await createTenantAwsResources({ ...ctx, scope: tenantScope(n) }, own, infra);
    return { roleArn: own.roleArn as string, policyArn: own.policyArn as string };
  });
}

export interface TenantPod {
  namespace: string;
  name: string;
  container: string;
  /** Whether the webhook mutated it at admission (if not, the scenarios say why). */
  mutated: boolean;
  /** How long the Kubernetes part took, for the report. */
  ms: number;
}

/**
 * Namespace, ServiceAccount annotated with the tenant's role ARN, and the sample app's pod, once
 * per run, Ready. The pod is created only after a dry-run create shows that the webhook's cache
 * knows the ServiceAccount (a pod created too early is admitted unmutated).
 */
export function ensureTenantPod(ctx: ProvisionContext, runDir: string, tenant: Tenant): Promise<TenantPod> {
  const n = tenantNumber(tenant);
  return runOnce(runDir, `tenant-t${n}-pod`, ctx.config.timeouts.startSeconds, async () => {
    const started = performance.now();
    const scoped = { ...ctx, scope: tenantScope(n) };
    await createNamespace(scoped, tenant.namespace);
    await createServiceAccount(
      scoped,
      serviceAccountManifest(scoped, tenant.namespace, tenant.serviceAccount, tenant.roleArn as string),
    );
    const pod = samplePodManifest(scoped, tenant.namespace, tenant.deployment, tenant.serviceAccount);
    // Bounded and never fatal: on a setup that cannot mutate, the scenarios' checks name the cause.
    const brief = { ...scoped, config: { ...scoped.config, timeouts: { ...scoped.config.timeouts, applySeconds: 3 } } };
    await waitUntilWebhookMutates(brief, pod).catch((e: unknown) => {
      if (!(e instanceof OperationTimeout)) throw e;
    });
    const admitted = await createPod(scoped, pod);
    const ready = await waitForReadyPod(
      ctx.clients,
      tenant.namespace,
      `app=${tenant.deployment}`,
      ctx.config.timeouts.assertSeconds,
    );
    return {
      namespace: tenant.namespace,
      name: ready.metadata?.name as string,
      container: ready.spec?.containers[0]?.name as string,
      mutated: isMutated(admitted, ctx.target.dialect),
      ms: Math.round(performance.now() - started),
    };
  });
}
