/**
 * The pod identity webhook deployed inside a cluster, as upstream's deploy/ does it but without
 * cert-manager: the harness makes its own CA and serving certificate (support/tls.ts), puts them in
 * a TLS Secret and hands the CA to the MutatingWebhookConfiguration as its caBundle.
 *
 * Shared by the targets that run the webhook in-cluster (docker, and live on clusters that bring
 * none). The MutatingWebhookConfiguration itself is not made here: registerWebhook renders the
 * setup's template with the clientConfig returned by webhookClientConfig.
 *
 * The manifests hold the serving key (in the Secret): never log or attach them.
 */
import type {
  KubernetesObject,
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1Deployment,
  V1Namespace,
  V1Secret,
  V1Service,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import type { Clients } from './clients.ts';
import { UsageError } from './errors.ts';
import { isConflict } from './kube/errors.ts';
import { waitForReadyPod } from './kube/ops.ts';
import type { ResourceRef } from './ledger.ts';
import { WEBHOOK_LOG_FLAGS } from './targets/dialect.ts';
import { createCa, issueServingCert } from './tls.ts';

export interface WebhookDeploymentSpec {
  /** Namespace the webhook runs in (created by applyWebhookDeployment). */
  namespace: string;
  /** Name of the ServiceAccount, Deployment, Service and the prefix of the other objects. */
  name: string;
  image: string;
  /** Webhook flags without the leading dashes, e.g. {'annotation-prefix': 'eks.amazonaws.com'}. */
  flags: Record<string, string>;
  /** Labels for every object (run id, managed-by). */
  labels: Record<string, string>;
  /** The image's entrypoint; upstream's image has the binary at /webhook. */
  command?: string[];
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
}

export interface WebhookTls {
  caPem: string;
  certPem: string;
  /** Secret: goes into the TLS Secret only. */
  keyPem: string;
}

/** The container listens here (unprivileged); the Service maps 443 to it. */
export const WEBHOOK_CONTAINER_PORT = 9443;
export const WEBHOOK_PATH = '/mutate';
const CERT_DIR = '/etc/webhook/certs';

/** The DNS names kube-apiserver uses for the Service: the certificate must carry them as SANs. */
export function webhookServiceDnsNames(namespace: string, name: string): string[] {
  return [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`];
}

/** A fresh CA and a serving certificate for the webhook's Service. */
export async function issueWebhookTls(namespace: string, name: string): Promise<WebhookTls> {
  const ca = await createCa(`irsa-conformance ${name} webhook CA`);
  const serving = await issueServingCert(ca, { dnsSans: webhookServiceDnsNames(namespace, name) });
  return { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem };
}

/** Cluster-scoped objects are per namespace, so two deployments never share them. */
export function webhookClusterRoleName(spec: Pick<WebhookDeploymentSpec, 'namespace' | 'name'>): string {
  return `${spec.name}-${spec.namespace}`;
}

/** The clientConfig for the MutatingWebhookConfiguration (the setup's template takes it as JSON). */
export function webhookClientConfig(
  spec: Pick<WebhookDeploymentSpec, 'namespace' | 'name'>,
  caPem: string,
): { service: { namespace: string; name: string; path: string; port: number }; caBundle: string } {
  return {
    service: { namespace: spec.namespace, name: spec.name, path: WEBHOOK_PATH, port: 443 },
    caBundle: Buffer.from(caPem).toString('base64'),
  };
}

/**
 * Every object of the deployment, in creation order: Namespace, ServiceAccount, ClusterRole and
 * binding (the webhook lists and watches ServiceAccounts cluster-wide), the TLS Secret, the
 * Deployment (out-of-cluster mode reading the certificate from the Secret, so no CSR approval is
 * needed) and the Service.
 */
export function webhookManifests(spec: WebhookDeploymentSpec, tls: WebhookTls): KubernetesObject[] {
  const { namespace, name, labels } = spec;
  const meta = (n: string) => ({ name: n, namespace, labels: { ...labels } });
  const podLabels = { ...labels, app: name };
  const secretName = `${name}-tls`;
  const clusterName = webhookClusterRoleName(spec);
  const ns: V1Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { ...labels } } };
  const sa: V1ServiceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name) };
  const role: V1ClusterRole = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: clusterName, labels: { ...labels } },
    rules: [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list', 'watch'] }],
  };
  const binding: V1ClusterRoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: clusterName, labels: { ...labels } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterName },
    subjects: [{ kind: 'ServiceAccount', name, namespace }],
  };
  const secret: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(secretName),
    type: 'kubernetes.io/tls',
    stringData: { 'tls.crt': tls.certPem, 'tls.key': tls.keyPem },
  };
  const args = [
    '--in-cluster=false',
    `--namespace=${namespace}`,
    `--service-name=${name}`,
    `--port=${WEBHOOK_CONTAINER_PORT}`,
    `--tls-cert=${CERT_DIR}/tls.crt`,
    `--tls-key=${CERT_DIR}/tls.key`,
    ...Object.entries({ ...WEBHOOK_LOG_FLAGS, ...spec.flags }).map(([k, v]) => `--${k}=${v}`),
  ];
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name),
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: podLabels },
        spec: {
          serviceAccountName: name,
          containers: [
            {
              name,
              image: spec.image,
              imagePullPolicy: spec.imagePullPolicy ?? 'IfNotPresent',
              command: spec.command ?? ['/webhook'],
              args,
              ports: [{ name: 'https', containerPort: WEBHOOK_CONTAINER_PORT }],
              readinessProbe: {
                httpGet: { path: '/healthz', port: WEBHOOK_CONTAINER_PORT, scheme: 'HTTPS' },
                periodSeconds: 2,
              },
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'cert', mountPath: CERT_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: 'cert', secret: { secretName } }],
        },
      },
    },
  };
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(name),
    spec: {
      selector: { app: name },
      ports: [{ name: 'https', port: 443, targetPort: WEBHOOK_CONTAINER_PORT }],
    },
  };
  return [ns, sa, role, binding, secret, deployment, service] as KubernetesObject[];
}

function refFor(obj: KubernetesObject): ResourceRef | undefined {
  const name = obj.metadata?.name as string;
  if (obj.kind === 'Namespace') return { kind: 'k8s-namespace', name };
  if (obj.kind === 'ClusterRole' || obj.kind === 'ClusterRoleBinding')
    return { kind: 'k8s-cluster-object', apiVersion: obj.apiVersion as string, k8sKind: obj.kind, name };
  return undefined;
}

/**
 * Creates the objects in order, calling `onCreated` with the ledger reference of each object that
 * needs its own deletion (the namespace, the cluster-scoped RBAC), right after it exists. Then waits
 * until the webhook's pod is Ready (its readiness probe is the webhook's /healthz over TLS).
 * A namespace that already exists is refused: it belongs to another run or to the cluster.
 */
export async function applyWebhookDeployment(
  clients: Clients,
  spec: WebhookDeploymentSpec,
  tls: WebhookTls,
  opts: { timeoutSeconds: number; onCreated?: (ref: ResourceRef) => void },
): Promise<void> {
  for (const obj of webhookManifests(spec, tls)) {
    try {
      await clients.objects.create(obj);
    } catch (e) {
      if (isConflict(e)) {
        throw new UsageError(
          `${obj.kind} ${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata?.name} already exists`,
          'an earlier run left it (run `npm run sweep`) or the cluster already has a pod identity webhook there (name it with IRSA_WEBHOOK_CONFIGURATION)',
        );
      }
      throw e;
    }
    const ref = refFor(obj);
    if (ref) opts.onCreated?.(ref);
  }
  await waitForReadyPod(clients, spec.namespace, `app=${spec.name}`, opts.timeoutSeconds);
}
