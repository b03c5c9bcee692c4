/**
 * The cluster objects the components after kube-apiserver rely on, created before wave 2: the
 * webhook's RBAC (what upstream's deploy/auth.yaml grants it) and, for kwok, its Exec CRD
 * (established before kwok starts watching Execs) and its Node. A real node registers itself.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiextensionsV1Api,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../../paths.ts';
import { NODE_NAME } from './kwok.ts';

/** Objects every component after kube-apiserver needs; idempotent. A real node registers itself. */
export async function bootstrapObjects(kc: KubeConfig, kubeNode: 'kwok' | 'kubelet'): Promise<void> {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const createIfMissing = async (obj: KubernetesObject) => {
    try {
      await objects.create(obj);
    } catch (e) {
      if ((e as { code?: number }).code !== 409) throw e;
    }
  };
  const crd = parseYaml(
    readFileSync(join(repoRoot, 'support/targets/embedded/assets/kwok-exec-crd.yaml'), 'utf8'),
  ) as V1CustomResourceDefinition;
  const kwokObjects: KubernetesObject[] = [
    crd,
    {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: NODE_NAME,
        annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'kwok.x-k8s.io/node': 'fake' },
        labels: {
          'kubernetes.io/hostname': NODE_NAME,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          type: 'kwok',
        },
      },
    } as KubernetesObject,
  ];
  await Promise.all([
    ...(kubeNode === 'kwok' ? kwokObjects.map(createIfMissing) : []),
    // What upstream's deploy/auth.yaml grants the webhook (it watches ServiceAccounts; ConfigMaps
    // with --watch-config-map).
    createIfMissing({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'irsa:pod-identity-webhook' },
      rules: [{ apiGroups: [''], resources: ['serviceaccounts', 'configmaps'], verbs: ['get', 'watch', 'list'] }],
    } as KubernetesObject),
    createIfMissing({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'irsa:pod-identity-webhook' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'irsa:pod-identity-webhook' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'irsa:pod-identity-webhook' }],
    } as KubernetesObject),
  ]);
  if (kubeNode !== 'kwok') return;
  // kwok starts watching Execs right away: wait until the API serves them.
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  let delay = 20;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const current = await ext.readCustomResourceDefinition({ name: crd.metadata?.name as string });
    if ((current.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True')) break;
    if (Date.now() > deadline) throw new Error('the kwok Exec CRD was not established within 30 s');
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 250);
  }
  // Note: kube-apiserver delays every create of a custom resource by 2 s while its CRD was
  // Established less than 2 s ago (apiextensions-apiserver customresource_handler.go, for HA
  // servers). So a pod created within about 2 s of start becomes Ready about 2 s later; nothing
  // here waits for that window, which provisioning usually covers.
}
