/** kube-scheduler of the embedded environment (binds pods to the node). Ready when GET /healthz is 200. */
import { type Component, healthz, type Launch, servingFlags } from './component.ts';
import type { Pki } from './pki.ts';

export async function startScheduler(
  launch: Launch,
  c: { binary: string; port: number; pki: Pki },
): Promise<Component> {
  const kubeconfig = c.pki.kubeconfigs.kubeScheduler;
  const proc = await launch('kube-scheduler', c.binary, [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    ...servingFlags(c.port, c.pki.loopbackTls),
    '--leader-elect=false',
    '--profiling=false',
  ]);
  return {
    proc,
    ready: (wait) => proc.waitReady(healthz(c.port, c.pki.caPem), { what: 'GET /healthz', ...wait }),
  };
}
