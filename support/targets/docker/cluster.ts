/**
 * The docker target's K3s cluster, as configuration and the few operations on it:
 *
 * - k3sServerCommand: `k3s server` with the service-account flags IRSA needs. The issuer is the
 *   discovery bucket's URL; the signing key is an RSA-2048 key the harness generates (RS256, as
 *   on EKS and OpenShift) and copies in; kube-controller-manager gets the same private key;
 *   api-audiences keeps K3s's own values (never sts.amazonaws.com: kube-apiserver would then
 *   accept IRSA tokens as credentials for itself). K3s replaces a default flag when the same flag
 *   is given with --kube-apiserver-arg (pkg/util/args.go GetArgs), so these are the only values.
 * - The emulator's network alias made resolvable for pods: Docker's DNS (127.0.0.11) answers only
 *   inside the K3s container's own network namespace, not in pods. K3s's CoreDNS imports
 *   /etc/coredns/custom/*.server from the optional ConfigMap kube-system/coredns-custom, so a
 *   server block for the alias zone answers it with the emulator's address on the Docker network;
 *   a new import is read at CoreDNS start only, so CoreDNS is restarted and its rollout awaited.
 * - Images for pods (the webhook, the sample app) are pulled by the host's engine (its mirrors and
 *   credentials, its cache across runs) and imported into K3s's containerd under the name the
 *   manifests use, so the Deployments pull nothing (imagePullPolicy IfNotPresent).
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Deployment,
} from '@kubernetes/client-node';
import type { ContainerRuntimeClient, StartedTestContainer } from 'testcontainers';
import { isNotFound } from '../../kube/errors.ts';
import { watchUntil } from '../../kube/ops.ts';
import { retry } from '../../retry.ts';
import { normalizeImageRef } from './images.ts';

/** Where the harness's service-account key pair is copied into the K3s container. */
export const SA_KEY_PATH = '/etc/irsa/sa.key';
export const SA_PUB_PATH = '/etc/irsa/sa.pub';
/** The audiences K3s gives kube-apiserver by default (server.go); kept as they are. */
export const K3S_API_AUDIENCES = ['https://kubernetes.default.svc.cluster.local', 'k3s'];
/** Packaged components nothing here uses: fewer images to pull, less CPU. CoreDNS stays. */
export const K3S_DISABLED = ['traefik', 'servicelb', 'metrics-server', 'local-storage'];

export interface K3sCommandOptions {
  issuer: string;
  /** Names the API server certificate must also carry (a remote Docker host's address). */
  tlsSans?: string[];
}

/** The container command: `server` and its flags (K3sContainer appends --tls-san for network aliases). */
export function k3sServerCommand(o: K3sCommandOptions): string[] {
  const api = (flag: string, value: string) => `--kube-apiserver-arg=${flag}=${value}`;
  return [
    'server',
    `--disable=${K3S_DISABLED.join(',')}`,
    api('service-account-issuer', o.issuer),
    // The article publishes the JWKS as keys.json beside the discovery document; kube-apiserver's
    // own discovery document then names the same jwks_uri as the published one.
    api('service-account-jwks-uri', `${o.issuer}/keys.json`),
    api('service-account-key-file', SA_PUB_PATH),
    api('service-account-signing-key-file', SA_KEY_PATH),
    api('api-audiences', K3S_API_AUDIENCES.join(',')),
    `--kube-controller-manager-arg=service-account-private-key-file=${SA_KEY_PATH}`,
    ...(o.tlsSans ?? []).map((s) => `--tls-san=${s}`),
  ];
}

export const CUSTOM_DNS_CONFIGMAP = 'coredns-custom';

/** kube-system/coredns-custom with a server block answering `alias` (and names under it) with `ip`. */
export function corednsAliasConfigMap(alias: string, ip: string): V1ConfigMap {
  const block = [
    `${alias}:53 {`,
    '    errors',
    `    template IN A ${alias} {`,
    `        answer "{{ .Name }} 30 IN A ${ip}"`,
    '    }',
    // No IPv6 address: answer NOERROR without records rather than NXDOMAIN, so that clients keep the A record.
    `    template IN AAAA ${alias} {`,
    '        rcode NOERROR',
    '    }',
    '}',
    '',
  ].join('\n');
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: CUSTOM_DNS_CONFIGMAP,
      namespace: 'kube-system',
      labels: { 'app.kubernetes.io/managed-by': 'irsa-conformance' },
    },
    data: { [`irsa-${alias}.server`]: block },
  };
}

function rolledOut(d: V1Deployment): boolean {
  const want = d.spec?.replicas ?? 1;
  const s = d.status;
  return (
    (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) &&
    (s?.updatedReplicas ?? 0) === want &&
    (s?.availableReplicas ?? 0) === want &&
    (s?.replicas ?? 0) === want
  );
}

function describeDeployment(d: V1Deployment | undefined): string {
  if (!d) return 'the Deployment does not exist yet';
  const s = d.status;
  const cond = (s?.conditions ?? []).map((c) => `${c.type}=${c.status}${c.reason ? `(${c.reason})` : ''}`).join(', ');
  return `replicas ${s?.replicas ?? 0}, updated ${s?.updatedReplicas ?? 0}, available ${s?.availableReplicas ?? 0}${cond ? `; ${cond}` : ''}`;
}

/**
 * Waits (watching) until a Deployment's current template is rolled out with every replica
 * available. The timeout error says what the Deployment looked like last.
 */
export async function waitForDeploymentRollout(
  kc: KubeConfig,
  namespace: string,
  name: string,
  timeoutSeconds: number,
): Promise<V1Deployment> {
  const apps = kc.makeApiClient(AppsV1Api);
  const list = await apps.listNamespacedDeployment({ namespace, fieldSelector: `metadata.name=${name}` });
  const last = list.items[0];
  if (last && rolledOut(last)) return last;
  return watchUntil<V1Deployment>(
    kc,
    `/apis/apps/v1/namespaces/${namespace}/deployments`,
    { fieldSelector: `metadata.name=${name}`, resourceVersion: list.metadata?.resourceVersion },
    rolledOut,
    {
      operation: `rolling out Deployment ${namespace}/${name}`,
      describeLast: describeDeployment,
      timeoutSeconds,
      ...(last ? { last } : {}),
    },
  );
}

/**
 * Makes `alias` resolve to `ip` in pods: the coredns-custom ConfigMap, then a CoreDNS restart
 * (a template annotation, as `kubectl rollout restart` does) and its rollout.
 */
export async function publishAliasToPods(
  kc: KubeConfig,
  alias: string,
  ip: string,
  timeoutSeconds: number,
): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const cm = corednsAliasConfigMap(alias, ip);
  try {
    await core.createNamespacedConfigMap({ namespace: 'kube-system', body: cm });
  } catch (e) {
    if ((e as { code?: number }).code !== 409) throw e;
    await core.replaceNamespacedConfigMap({ name: CUSTOM_DNS_CONFIGMAP, namespace: 'kube-system', body: cm });
  }
  // K3s's deploy controller creates CoreDNS from its packaged manifest shortly after the API is up.
  await retry(
    () =>
      apps.patchNamespacedDeployment(
        {
          name: 'coredns',
          namespace: 'kube-system',
          body: {
            spec: {
              template: { metadata: { annotations: { 'irsa-conformance.io/restarted-at': new Date().toISOString() } } },
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    {
      operation: 'restarting CoreDNS with the emulator alias',
      waitingFor: 'K3s to deploy CoreDNS (kube-system/coredns)',
      timeoutSeconds,
      retryable: isNotFound,
    },
  );
  await waitForDeploymentRollout(kc, 'kube-system', 'coredns', timeoutSeconds);
}

export interface ImageToLoad {
  /** What the host's engine pulls (an override, or the name itself). */
  source: string;
  /** The name the manifests use; the image is tagged so in the cluster. */
  as: string;
}

/**
 * Pulls each image on the host when missing and saves it to a tar file in `workDir` (docker save
 * format, which containerd imports). Returns the files, in the order given.
 */
export async function saveImages(
  client: ContainerRuntimeClient,
  images: ImageToLoad[],
  workDir: string,
  progress: (line: string) => void,
): Promise<string[]> {
  const { ImageName } = await import('testcontainers');
  return Promise.all(
    images.map(async (img, i) => {
      const name = ImageName.fromString(img.source);
      if (!(await client.image.exists(name))) {
        progress(`pulling ${img.source}`);
        await client.image.pull(name);
      }
      const file = join(workDir, `image-${i}.tar`);
      const stream = await client.container.dockerode.getImage(img.source).get();
      await pipeline(stream, createWriteStream(file, { mode: 0o600 }));
      return file;
    }),
  );
}

async function execOk(container: StartedTestContainer, command: string[], what: string): Promise<void> {
  const r = await container.exec(command);
  if (r.exitCode !== 0) {
    throw new Error(`${what} failed (exit ${r.exitCode}): ${r.output.trim().split('\n').slice(-3).join(' | ')}`);
  }
}

/** Imports saved images into K3s's containerd (namespace k8s.io, where the kubelet looks) and tags them. */
export async function importImages(
  k3s: StartedTestContainer,
  images: ImageToLoad[],
  files: string[],
  progress: (line: string) => void,
): Promise<void> {
  const targets = files.map((_, i) => `/var/lib/rancher/irsa-images/image-${i}.tar`);
  await k3s.copyFilesToContainer(files.map((source, i) => ({ source, target: targets[i] as string })));
  for (const [i, img] of images.entries()) {
    const target = targets[i] as string;
    await execOk(k3s, ['k3s', 'ctr', '-n', 'k8s.io', 'images', 'import', target], `importing ${img.source} into K3s`);
    const from = normalizeImageRef(img.source);
    const to = normalizeImageRef(img.as);
    if (from !== to) {
      await execOk(
        k3s,
        ['k3s', 'ctr', '-n', 'k8s.io', 'images', 'tag', '--force', from, to],
        `tagging ${from} as ${to}`,
      );
    }
    await execOk(k3s, ['rm', '-f', target], 'removing the image archive');
    progress(`image ${img.as} loaded into K3s${from !== to ? ` (from ${img.source})` : ''}`);
  }
}
