/**
 * The embedded environment's PKI: one CA per environment (support/tls.ts) signs every serving and
 * client certificate, so the whole chain is https; the service-account signing key (RSA-2048,
 * RS256, as on EKS and OpenShift); and a kubeconfig per client identity (admin, the controllers,
 * kwok, a real node's kubelet, the webhook). Keys are written 0600 under <workDir>/pki.
 */
import { generateKeyPair } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCa, issueClientCert, issueServingCert } from '../../tls.ts';
import { LOOPBACK, type TlsMaterial } from './component.ts';
import { REAL_NODE_NAME } from './real-node.ts';

interface FilePair {
  cert: string;
  key: string;
}

export interface Pki {
  /** The CA certificate (PEM) and its file. */
  caPem: string;
  caFile: string;
  /** kube-apiserver's serving pair (its SANs include the in-cluster service names). */
  apiserverTls: FilePair;
  /** The serving pair of every other component on 127.0.0.1 (etcd, moto, controllers, kwok, webhook). */
  loopbackTls: FilePair;
  kubeletClientTls: FilePair;
  etcdClientTls: FilePair;
  saPub: string;
  saPriv: string;
  kubeconfigs: {
    admin: string;
    kubeControllerManager: string;
    kubeScheduler: string;
    kwok: string;
    kubelet: string;
    webhook: string;
  };
  /** The admin's client material, for the start's own requests (readiness probes). */
  adminTls: TlsMaterial;
  /** kube-apiserver's client material to etcd, for etcd's readiness probe. */
  etcdClient: TlsMaterial;
}

function kubeconfigYaml(server: string, caFile: string, certFile: string, keyFile: string, user: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: irsa-embedded',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${caFile}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate: ${certFile}`,
    `    client-key: ${keyFile}`,
    'contexts:',
    '- name: irsa-embedded',
    '  context:',
    '    cluster: irsa-embedded',
    `    user: ${user}`,
    'current-context: irsa-embedded',
    '',
  ].join('\n');
}

/** Issues the environment's CA, certificates, signing key and kubeconfigs for the API server at `server`. */
export async function createPki(envId: string, pkiDir: string, workDir: string, server: string): Promise<Pki> {
  const ca = await createCa(`irsa-conformance ${envId}`);
  const [
    apiserverCert,
    loopbackCert,
    admin,
    kcm,
    scheduler,
    kwok,
    webhookUser,
    kubeletClient,
    nodeClient,
    etcdClient,
    saKey,
  ] = await Promise.all([
    issueServingCert(ca, {
      ipSans: [LOOPBACK, '10.96.0.1'],
      dnsSans: [
        'localhost',
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        'kubernetes.default.svc.cluster.local',
      ],
    }),
    issueServingCert(ca, { ipSans: [LOOPBACK], dnsSans: ['localhost'] }),
    issueClientCert(ca, { commonName: 'irsa-admin', organizations: ['system:masters'] }),
    issueClientCert(ca, { commonName: 'system:kube-controller-manager', organizations: ['system:masters'] }),
    issueClientCert(ca, { commonName: 'system:kube-scheduler', organizations: ['system:masters'] }),
    issueClientCert(ca, { commonName: 'irsa:kwok', organizations: ['system:masters'] }),
    issueClientCert(ca, { commonName: 'irsa:pod-identity-webhook' }),
    issueClientCert(ca, { commonName: 'kube-apiserver-kubelet-client', organizations: ['system:masters'] }),
    // The real node's kubelet: a Node's identity, which the Node authorizer scopes to its own pods.
    issueClientCert(ca, { commonName: `system:node:${REAL_NODE_NAME}`, organizations: ['system:nodes'] }),
    // kube-apiserver's (and the readiness probe's) to etcd, which serves only clients of the CA.
    issueClientCert(ca, { commonName: 'kube-apiserver-etcd-client' }),
    promisify(generateKeyPair)('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    }),
  ]);
  const file = (name: string, content: string, secret = false) => {
    const path = join(pkiDir, name);
    writeFileSync(path, content, { mode: secret ? 0o600 : 0o644 });
    return path;
  };
  const caFile = file('ca.crt', ca.certPem);
  const pair = (name: string, c: { certPem: string; keyPem: string }) => ({
    cert: file(`${name}.crt`, c.certPem),
    key: file(`${name}.key`, c.keyPem, true),
  });
  const apiserverTls = pair('apiserver', apiserverCert);
  const loopbackTls = pair('loopback', loopbackCert);
  const kubeletClientTls = pair('apiserver-kubelet-client', kubeletClient);
  const etcdClientTls = pair('apiserver-etcd-client', etcdClient);
  const saPub = file('sa.pub', saKey.publicKey);
  const saPriv = file('sa.key', saKey.privateKey, true);
  const kubeconfigFor = (name: string, c: { certPem: string; keyPem: string }, user: string) => {
    const p = pair(`${name}-client`, c);
    const path = join(workDir, `${name}.kubeconfig`);
    writeFileSync(path, kubeconfigYaml(server, caFile, p.cert, p.key, user), { mode: 0o600 });
    return path;
  };
  const adminKubeconfig = kubeconfigFor('admin', admin, 'irsa-admin');
  const kcmKubeconfig = kubeconfigFor('kube-controller-manager', kcm, 'kube-controller-manager');
  const schedulerKubeconfig = kubeconfigFor('kube-scheduler', scheduler, 'kube-scheduler');
  const kwokKubeconfig = kubeconfigFor('kwok', kwok, 'kwok');
  const kubeletKubeconfig = kubeconfigFor('kubelet', nodeClient, `system:node:${REAL_NODE_NAME}`);
  const webhookKubeconfig = kubeconfigFor('pod-identity-webhook', webhookUser, 'pod-identity-webhook');
  return {
    caPem: ca.certPem,
    caFile,
    apiserverTls,
    loopbackTls,
    kubeletClientTls,
    etcdClientTls,
    saPub,
    saPriv,
    kubeconfigs: {
      admin: adminKubeconfig,
      kubeControllerManager: kcmKubeconfig,
      kubeScheduler: schedulerKubeconfig,
      kwok: kwokKubeconfig,
      kubelet: kubeletKubeconfig,
      webhook: webhookKubeconfig,
    },
    adminTls: { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem },
    etcdClient: { ca: ca.certPem, cert: etcdClient.certPem, key: etcdClient.keyPem },
  };
}
