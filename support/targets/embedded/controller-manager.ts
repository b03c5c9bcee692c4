/**
 * kube-controller-manager of the embedded environment (Deployments → ReplicaSets → Pods,
 * ServiceAccounts). Ready when GET /healthz is 200 and the ServiceAccount controller has given
 * the default namespace its `default` ServiceAccount.
 */
import type { CoreV1Api } from '@kubernetes/client-node';
import { type Component, healthz, type Launch, servingFlags } from './component.ts';
import type { Pki } from './pki.ts';

export async function startControllerManager(
  launch: Launch,
  c: { binary: string; port: number; pki: Pki; core: CoreV1Api },
): Promise<Component> {
  const { pki } = c;
  const kubeconfig = pki.kubeconfigs.kubeControllerManager;
  const proc = await launch('kube-controller-manager', c.binary, [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    ...servingFlags(c.port, pki.loopbackTls),
    '--leader-elect=false',
    `--root-ca-file=${pki.caFile}`,
    '--use-service-account-credentials=false',
    '--profiling=false',
  ]);
  return {
    proc,
    ready: (wait) =>
      proc.waitReady(
        async () => {
          if (!(await healthz(c.port, pki.caPem)())) return false;
          // The ServiceAccount controller runs: namespaces get their `default` ServiceAccount.
          await c.core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
          return true;
        },
        { what: 'GET /healthz and the default ServiceAccount', ...wait },
      ),
  };
}
