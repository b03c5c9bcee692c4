/**
 * The sweep's Kubernetes finder: namespaces, cluster-scoped objects (webhook configurations,
 * cluster roles and bindings) and a few namespaced kinds outside those namespaces that carry
 * LABEL_RUN_ID (narrowed to one run's label value with --run-id). Objects in a marked namespace
 * go with it.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Clients } from '../clients.ts';
import type { ResourceRef } from '../ledger.ts';
import { LABEL_RUN_ID } from '../names.ts';
import { type Candidate, type FindResult, optional, type SweepFilter } from './candidate.ts';

interface KubeList {
  items: KubernetesObject[];
}

/** A kind of object the harness labels, and how to list those carrying a label. */
interface KubeKind {
  apiVersion: string;
  kind: string;
  list: (c: Clients, labelSelector: string) => Promise<KubeList>;
}

/** Cluster-scoped kinds the harness (or a fault of the self-test) may create. */
const CLUSTER_KINDS: KubeKind[] = [
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    list: (c, labelSelector) => c.admission.listMutatingWebhookConfiguration({ labelSelector }),
  },
  {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    list: (c, labelSelector) => c.admission.listValidatingWebhookConfiguration({ labelSelector }),
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    list: (c, labelSelector) => c.rbac.listClusterRoleBinding({ labelSelector }),
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    list: (c, labelSelector) => c.rbac.listClusterRole({ labelSelector }),
  },
];

/** Namespaced kinds looked for outside the marked namespaces (e.g. a webhook deployed into kube-system). */
const NAMESPACED_KINDS: KubeKind[] = [
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    list: (c, s) => c.apps.listDeploymentForAllNamespaces({ labelSelector: s }),
  },
  { apiVersion: 'v1', kind: 'Pod', list: (c, s) => c.core.listPodForAllNamespaces({ labelSelector: s }) },
  { apiVersion: 'v1', kind: 'Service', list: (c, s) => c.core.listServiceForAllNamespaces({ labelSelector: s }) },
  {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    list: (c, s) => c.core.listServiceAccountForAllNamespaces({ labelSelector: s }),
  },
  { apiVersion: 'v1', kind: 'ConfigMap', list: (c, s) => c.core.listConfigMapForAllNamespaces({ labelSelector: s }) },
  { apiVersion: 'v1', kind: 'Secret', list: (c, s) => c.core.listSecretForAllNamespaces({ labelSelector: s }) },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    list: (c, s) => c.rbac.listRoleBindingForAllNamespaces({ labelSelector: s }),
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    list: (c, s) => c.rbac.listRoleForAllNamespaces({ labelSelector: s }),
  },
];

function describeKubeError(e: unknown): string {
  const body = (e as { body?: unknown }).body;
  const code = (e as { code?: unknown }).code;
  if (typeof body === 'string') {
    try {
      const status = JSON.parse(body) as { message?: string };
      if (status.message) return `${status.message}${code ? ` (HTTP ${code})` : ''}`;
    } catch {
      // not a Status object
    }
  }
  return (e as Error)?.message?.split('\n')[0] ?? String(e);
}

export async function kubeCandidates(c: Clients, filter: SweepFilter, result: FindResult): Promise<Candidate[]> {
  const labelSelector = filter.runId ? `${LABEL_RUN_ID}=${filter.runId}` : LABEL_RUN_ID;
  const out: Candidate[] = [];
  const candidate = (o: KubernetesObject, ref: ResourceRef): Candidate => ({
    ref,
    runId: o.metadata?.labels?.[LABEL_RUN_ID] as string,
    ...optional('fallbackCreated', o.metadata?.creationTimestamp),
  });
  const namespaces = new Set<string>();
  try {
    for (const ns of (await c.core.listNamespace({ labelSelector })).items) {
      const name = ns.metadata?.name as string;
      namespaces.add(name);
      // Also when already terminating (a run asked for its deletion): the sweep confirms it is gone.
      out.push(candidate(ns, { kind: 'k8s-namespace', name }));
    }
  } catch (e) {
    result.problems.push(`listing namespaces: ${describeKubeError(e)}`);
  }
  await Promise.all([
    ...CLUSTER_KINDS.map(async (k) => {
      try {
        for (const o of (await k.list(c, labelSelector)).items)
          out.push(
            candidate(o, {
              kind: 'k8s-cluster-object',
              apiVersion: k.apiVersion,
              k8sKind: k.kind,
              name: o.metadata?.name as string,
            }),
          );
      } catch (e) {
        result.problems.push(`listing ${k.kind}s: ${describeKubeError(e)}`);
      }
    }),
    ...NAMESPACED_KINDS.map(async (k) => {
      try {
        for (const o of (await k.list(c, labelSelector)).items) {
          const namespace = o.metadata?.namespace as string;
          // Objects in a marked namespace go with it.
          if (namespaces.has(namespace)) continue;
          out.push(
            candidate(o, {
              kind: 'k8s-namespaced-object',
              apiVersion: k.apiVersion,
              k8sKind: k.kind,
              namespace,
              name: o.metadata?.name as string,
            }),
          );
        }
      } catch (e) {
        result.problems.push(`listing ${k.kind}s: ${describeKubeError(e)}`);
      }
    }),
  ]);
  return out;
}
