/**
 * etcd of the embedded environment: TLS with client certificates of the environment's CA on both
 * of its ports, as a real control plane runs it (without one nothing of the cluster's state can
 * be read or written), a throwaway store in the work directory. Ready when GET /health says so.
 */
import { join } from 'node:path';
import { type Component, get, type Launch, LOOPBACK } from './component.ts';
import type { Pki } from './pki.ts';

export interface Etcd extends Component {
  /** The client URL kube-apiserver connects to. */
  url: string;
}

export async function startEtcd(
  launch: Launch,
  c: { binary: string; workDir: string; port: number; peerPort: number; pki: Pki },
): Promise<Etcd> {
  const { pki } = c;
  const etcdData = join(c.workDir, 'etcd');
  const etcdUrl = `https://${LOOPBACK}:${c.port}`;
  const etcdPeerUrl = `https://${LOOPBACK}:${c.peerPort}`;
  const proc = await launch('etcd', c.binary, [
    '--name=irsa',
    `--data-dir=${etcdData}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--cert-file=${pki.loopbackTls.cert}`,
    `--key-file=${pki.loopbackTls.key}`,
    '--client-cert-auth',
    `--trusted-ca-file=${pki.caFile}`,
    `--listen-peer-urls=${etcdPeerUrl}`,
    `--initial-advertise-peer-urls=${etcdPeerUrl}`,
    `--initial-cluster=irsa=${etcdPeerUrl}`,
    `--peer-cert-file=${pki.loopbackTls.cert}`,
    `--peer-key-file=${pki.loopbackTls.key}`,
    '--peer-client-cert-auth',
    `--peer-trusted-ca-file=${pki.caFile}`,
    '--initial-cluster-state=new',
    // A throwaway store: durability costs start-up and request latency for nothing.
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  return {
    proc,
    url: etcdUrl,
    ready: (wait) =>
      proc.waitReady(async () => (await get(`${etcdUrl}/health`, pki.etcdClient)).body.includes('"health":"true"'), {
        what: 'GET /health',
        ...wait,
      }),
  };
}
