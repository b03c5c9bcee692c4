/**
 * In a pod, the cluster is the one the pod runs in: KUBERNETES_SERVICE_HOST and _PORT (set by the
 * kubelet) name the API server, and the ServiceAccount's projected token and the cluster's CA are
 * mounted at /var/run/secrets/kubernetes.io/serviceaccount. When no kubeconfig is set and none is
 * at ~/.kube/config, the live target uses that (as kubectl and client-go do), through a kubeconfig
 * file that names the token file, never the token: the client reads it again every minute, so the
 * kubelet's rotation of the token is followed in a long run.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { decodeJwt } from 'jose';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
export const IN_CLUSTER_CONTEXT = 'in-cluster';

export interface InClusterConfig {
  server: string;
  tokenFile: string;
  caFile: string;
  /** The pod's namespace (the mounted namespace file). */
  namespace?: string;
  /** The ServiceAccount the token is for, "namespace/name", read from its `sub` claim. */
  serviceAccount?: string;
}

/** The in-cluster configuration when this process runs in a pod with a ServiceAccount token, else undefined. */
export function detectInCluster(
  env: NodeJS.ProcessEnv = process.env,
  dir = SERVICE_ACCOUNT_DIR,
): InClusterConfig | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  const tokenFile = path.join(dir, 'token');
  if (!host || !port || !existsSync(tokenFile)) return undefined;
  const namespaceFile = path.join(dir, 'namespace');
  let serviceAccount: string | undefined;
  try {
    const sub = decodeJwt(readFileSync(tokenFile, 'utf8').trim()).sub ?? '';
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(sub);
    if (m) serviceAccount = `${m[1]}/${m[2]}`;
  } catch {
    // Not a JWT (or unreadable now): the API server will say so at the first request.
  }
  return {
    server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    tokenFile,
    caFile: path.join(dir, 'ca.crt'),
    ...(existsSync(namespaceFile) ? { namespace: readFileSync(namespaceFile, 'utf8').trim() } : {}),
    ...(serviceAccount ? { serviceAccount } : {}),
  };
}

/** A kubeconfig for the in-cluster configuration, written 0600 into a temporary directory. */
export function writeInClusterKubeconfig(c: InClusterConfig): { file: string; cleanup: () => void } {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: IN_CLUSTER_CONTEXT, server: c.server, caFile: c.caFile, skipTLSVerify: false }],
    users: [{ name: IN_CLUSTER_CONTEXT, authProvider: { name: 'tokenFile', config: { tokenFile: c.tokenFile } } }],
    contexts: [
      {
        name: IN_CLUSTER_CONTEXT,
        cluster: IN_CLUSTER_CONTEXT,
        user: IN_CLUSTER_CONTEXT,
        ...(c.namespace ? { namespace: c.namespace } : {}),
      },
    ],
    currentContext: IN_CLUSTER_CONTEXT,
  });
  return writeKubeconfigFile(kc, 'irsa-in-cluster-');
}

/** A kubeconfig written 0600 into a new temporary directory, removed by cleanup() or at process exit. */
export function writeKubeconfigFile(kc: KubeConfig, prefix: string): { file: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const file = path.join(dir, 'kubeconfig');
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', cleanup);
  return { file, cleanup };
}
