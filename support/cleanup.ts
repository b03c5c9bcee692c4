/**
 * Deletes what the ledger recorded, in reverse order (Kubernetes and AWS side by side, each newest
 * first), with bounded retries per resource.
 * A deletion failure is reported (never thrown over the scenario's own failure) and the entry
 * stays in the ledger so the coordinator, and later `npm run sweep`, can try again.
 */
import {
  DeleteAccessKeyCommand,
  DeleteOpenIDConnectProviderCommand,
  DeletePolicyCommand,
  DeletePolicyVersionCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DeleteUserCommand,
  DeleteUserPolicyCommand,
  DetachRolePolicyCommand,
  DetachUserPolicyCommand,
  ListAccessKeysCommand,
  ListAttachedRolePoliciesCommand,
  ListAttachedUserPoliciesCommand,
  ListPolicyVersionsCommand,
  ListRolePoliciesCommand,
  ListUserPoliciesCommand,
} from '@aws-sdk/client-iam';
import { DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { PatchStrategy } from '@kubernetes/client-node';
import { awsErrorName, DELETE_CONFLICT_ERRORS, describeAwsError, isAwsError, isThrottling } from './aws/errors.ts';
import type { Clients } from './clients.ts';
import { isNotFound, isTransientKubeError } from './kube/errors.ts';
import { waitForDeletion } from './kube/ops.ts';
import { describeRef, type Ledger, type LedgerEntry, type ResourceRef } from './ledger.ts';
import { retry } from './retry.ts';

const GONE = ['NoSuchEntity', 'NoSuchBucket', 'NotFound'];

async function ignoreGone(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (isAwsError(e, ...GONE) || isNotFound(e)) return;
    throw e;
  }
}

async function emptyBucket(c: Clients, bucket: string): Promise<void> {
  for (;;) {
    const page = await c.s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
    const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key as string }));
    if (keys.length === 0) return;
    await c.s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
  }
}

export async function deleteResource(c: Clients, ref: ResourceRef): Promise<void> {
  switch (ref.kind) {
    case 's3-bucket':
      await ignoreGone(emptyBucket(c, ref.bucket));
      await ignoreGone(c.s3.send(new DeleteBucketCommand({ Bucket: ref.bucket })));
      return;
    case 'iam-role': {
      const RoleName = ref.roleName;
      try {
        const attached = await c.iam.send(new ListAttachedRolePoliciesCommand({ RoleName }));
        for (const p of attached.AttachedPolicies ?? [])
          await ignoreGone(c.iam.send(new DetachRolePolicyCommand({ RoleName, PolicyArn: p.PolicyArn })));
        const inline = await c.iam.send(new ListRolePoliciesCommand({ RoleName }));
        for (const PolicyName of inline.PolicyNames ?? [])
          await ignoreGone(c.iam.send(new DeleteRolePolicyCommand({ RoleName, PolicyName })));
      } catch (e) {
        if (isAwsError(e, ...GONE)) return;
        throw e;
      }
      await ignoreGone(c.iam.send(new DeleteRoleCommand({ RoleName })));
      return;
    }
    case 'iam-policy': {
      try {
        const versions = await c.iam.send(new ListPolicyVersionsCommand({ PolicyArn: ref.policyArn }));
        for (const v of versions.Versions ?? []) {
          if (!v.IsDefaultVersion)
            await ignoreGone(
              c.iam.send(new DeletePolicyVersionCommand({ PolicyArn: ref.policyArn, VersionId: v.VersionId })),
            );
        }
      } catch (e) {
        if (isAwsError(e, ...GONE)) return;
        throw e;
      }
      await ignoreGone(c.iam.send(new DeletePolicyCommand({ PolicyArn: ref.policyArn })));
      return;
    }
    case 'iam-oidc-provider':
      await ignoreGone(c.iam.send(new DeleteOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: ref.arn })));
      return;
    case 'iam-user': {
      const UserName = ref.userName;
      try {
        for (const k of (await c.iam.send(new ListAccessKeysCommand({ UserName }))).AccessKeyMetadata ?? []) {
          await ignoreGone(c.iam.send(new DeleteAccessKeyCommand({ UserName, AccessKeyId: k.AccessKeyId })));
        }
        for (const PolicyName of (await c.iam.send(new ListUserPoliciesCommand({ UserName }))).PolicyNames ?? []) {
          await ignoreGone(c.iam.send(new DeleteUserPolicyCommand({ UserName, PolicyName })));
        }
        for (const p of (await c.iam.send(new ListAttachedUserPoliciesCommand({ UserName }))).AttachedPolicies ?? []) {
          await ignoreGone(c.iam.send(new DetachUserPolicyCommand({ UserName, PolicyArn: p.PolicyArn })));
        }
      } catch (e) {
        if (isAwsError(e, ...GONE)) return;
        throw e;
      }
      await ignoreGone(c.iam.send(new DeleteUserCommand({ UserName })));
      return;
    }
    case 'k8s-namespace':
      // Deletion is requested here and confirmed once per run (waitForNamespacesGone, or handed to
      // a warm environment): the namespace controller takes seconds per namespace, which must not
      // be paid scenario by scenario. It requeues while pods remain, so the workloads and then the
      // pods (without grace period) are removed here too: measured 10 s -> 5 s until the namespace
      // is gone (5 s is the controller's floor even for an empty namespace). The namespace goes
      // first: once it is terminating, admission refuses new objects in it, so no Deployment or
      // ReplicaSet can bring a pod back while the three collections are deleted at once.
      await ignoreGone(c.core.deleteNamespace({ name: ref.name, propagationPolicy: 'Background' }));
      await Promise.all([
        ignoreGone(
          c.apps.deleteCollectionNamespacedDeployment({ namespace: ref.name, propagationPolicy: 'Background' }),
        ),
        ignoreGone(
          c.apps.deleteCollectionNamespacedReplicaSet({ namespace: ref.name, propagationPolicy: 'Background' }),
        ),
        ignoreGone(c.core.deleteCollectionNamespacedPod({ namespace: ref.name, gracePeriodSeconds: 0 })),
      ]);
      return;
    case 'k8s-cluster-object':
      await ignoreGone(
        c.objects.delete({ apiVersion: ref.apiVersion, kind: ref.k8sKind, metadata: { name: ref.name } }),
      );
      return;
    case 'k8s-namespaced-object':
      await ignoreGone(
        c.objects.delete({
          apiVersion: ref.apiVersion,
          kind: ref.k8sKind,
          metadata: { name: ref.name, namespace: ref.namespace },
        }),
      );
      return;
    case 'k8s-patch-revert':
      await c.objects.patch(
        { apiVersion: ref.apiVersion, kind: ref.k8sKind, metadata: { name: ref.name }, ...(ref.mergePatch as object) },
        undefined,
        undefined,
        undefined,
        undefined,
        PatchStrategy.MergePatch,
      );
      return;
  }
}

/** Deletion errors worth another attempt: conflicts, throttling, server errors (also used by sweep). */
export function retryableDelete(e: unknown): boolean {
  const name = awsErrorName(e);
  if (name && (DELETE_CONFLICT_ERRORS.has(name) || isThrottling(e))) return true;
  // Kubernetes: throttled, unavailable, timing out, conflicting, or the connection dropped (support/kube/errors.ts).
  return isTransientKubeError(e, { conflicts: true });
}

/** deleteResource, retried while the error is one worth another attempt (retryableDelete), within the timeout. */
export async function deleteWithRetries(
  c: Clients,
  ref: ResourceRef,
  operation: string,
  timeoutSeconds: number,
): Promise<void> {
  await retry(() => deleteResource(c, ref), {
    operation,
    waitingFor: 'the deletion to be accepted',
    timeoutSeconds,
    retryable: retryableDelete,
  });
}

export interface FlushReport {
  deleted: string[];
  failed: { what: string; error: string }[];
  kept: string[];
}

/**
 * Deletes a scope's outstanding entries (all scopes when scope is undefined), newest first.
 * `keep` leaves them in place and marks them kept (--keep-on-failure).
 */
export async function flushLedger(
  c: Clients,
  ledger: Ledger,
  opts: {
    scope?: string;
    timeoutSeconds: number;
    keep?: boolean;
    keepReason?: string;
    /** Leave entries kept by an earlier flush (--keep-on-failure) alone: the end-of-run flush. */
    skipKept?: boolean;
  },
): Promise<FlushReport> {
  const report: FlushReport = { deleted: [], failed: [], kept: [] };
  const entries: LedgerEntry[] = ledger.outstanding(opts.scope, !opts.keep && !opts.skipKept).reverse();
  if (opts.keep) {
    for (const entry of entries) {
      ledger.markKept(entry.id, opts.keepReason ?? 'kept on request');
      report.kept.push(describeRef(entry.ref));
    }
    return report;
  }
  const deleteInOrder = async (chain: LedgerEntry[]) => {
    for (const entry of chain) {
      const what = describeRef(entry.ref);
      try {
        await deleteWithRetries(c, entry.ref, `cleanup of ${what}`, opts.timeoutSeconds);
        ledger.markDeleted(entry.id);
        report.deleted.push(what);
      } catch (e) {
        report.failed.push({ what, error: describeAwsError(e) });
      }
    }
  };
  // Newest first within each side; the cluster's and the account's resources never depend on each
  // other for their deletion, so the two sides go concurrently (a scenario's cleanup is a round-trip
  // chain on each side: measured ~0.17 s per scenario one after the other).
  await Promise.all([
    deleteInOrder(entries.filter((e) => e.ref.kind.startsWith('k8s-'))),
    deleteInOrder(entries.filter((e) => !e.ref.kind.startsWith('k8s-'))),
  ]);
  return report;
}

/** Waits, watching, until the namespace is gone (its deletion was requested before). */
export async function waitForNamespaceGone(c: Clients, name: string, timeoutSeconds: number): Promise<void> {
  await waitForDeletion(
    c,
    '/api/v1/namespaces',
    name,
    async () => {
      try {
        await c.core.readNamespace({ name });
        return true;
      } catch (e) {
        if (isNotFound(e)) return false;
        throw e;
      }
    },
    timeoutSeconds,
  );
}

/**
 * Waits until no namespace labelled with the run id remains (their deletion was requested by the
 * ledger flushes), watching namespaces. Returns the names still there at the timeout.
 */
export async function waitForNamespacesGone(
  c: Clients,
  labelSelector: string,
  timeoutSeconds: number,
): Promise<string[]> {
  const remaining = async () =>
    (await c.core.listNamespace({ labelSelector })).items.map((n) => n.metadata?.name as string);
  let left = await remaining();
  if (left.length === 0) return [];
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (const name of left) {
    const budget = Math.max(1, Math.round((deadline - Date.now()) / 1000));
    try {
      await waitForNamespaceGone(c, name, budget);
    } catch {
      break;
    }
  }
  left = await remaining();
  return left;
}
