/**
 * kube-apiserver of the embedded environment: on 127.0.0.1 with the environment's CA, etcd over
 * mutual TLS, the service-account issuer in moto's bucket (the article's S3-hosted issuer) and its
 * JWKS next to the discovery document, Node and RBAC authorization. Ready when GET /readyz is 200.
 */
import { join } from 'node:path';
import { type Component, get, type Launch, LOOPBACK } from './component.ts';
import type { Pki } from './pki.ts';

export async function startApiserver(
  launch: Launch,
  c: { binary: string; workDir: string; port: number; etcdUrl: string; issuer: string; pki: Pki },
): Promise<Component> {
  const { pki, issuer } = c;
  const proc = await launch('kube-apiserver', c.binary, [
    `--etcd-servers=${c.etcdUrl}`,
    `--etcd-cafile=${pki.caFile}`,
    `--etcd-certfile=${pki.etcdClientTls.cert}`,
    `--etcd-keyfile=${pki.etcdClientTls.key}`,
    `--bind-address=${LOOPBACK}`,
    `--advertise-address=${LOOPBACK}`,
    `--secure-port=${c.port}`,
    `--tls-cert-file=${pki.apiserverTls.cert}`,
    `--tls-private-key-file=${pki.apiserverTls.key}`,
    `--client-ca-file=${pki.caFile}`,
    `--service-account-issuer=${issuer}`,
    `--service-account-key-file=${pki.saPub}`,
    `--service-account-signing-key-file=${pki.saPriv}`,
    // Where the harness publishes the JWKS next to the discovery document (the article's layout),
    // so that kube-apiserver's own discovery document agrees with the published one.
    `--service-account-jwks-uri=${issuer}/keys.json`,
    '--authorization-mode=Node,RBAC',
    '--service-cluster-ip-range=10.96.0.0/16',
    // The Endpoints of the `kubernetes` Service would be 127.0.0.1, which Endpoints validation rejects.
    '--endpoint-reconciler-type=none',
    `--kubelet-client-certificate=${pki.kubeletClientTls.cert}`,
    `--kubelet-client-key=${pki.kubeletClientTls.key}`,
    `--kubelet-certificate-authority=${pki.caFile}`,
    '--kubelet-preferred-address-types=InternalIP,Hostname',
    '--allow-privileged=true',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    `--cert-dir=${join(c.workDir, 'apiserver-certs')}`,
  ]);
  const server = `https://${LOOPBACK}:${c.port}`;
  return {
    proc,
    ready: (wait) =>
      proc.waitReady(async () => (await get(`${server}/readyz`, pki.adminTls)).status === 200, {
        what: 'GET /readyz',
        ...wait,
      }),
  };
}
