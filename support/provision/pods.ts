/**
 * Pods created directly (not through the sample Deployment) for the scenarios about what the
 * webhook does at admission: the sample app's pod template or a pod fixture (fixtures/pods/),
 * created and returned as the API server stored it, i.e. after every mutating webhook. Also the
 * waits around admission: until the webhook's ServiceAccount cache knows an annotation (proved with
 * dry-run creates, which call webhooks without persisting anything), until a pod of a selector
 * exists, and the restart of a Deployment (what `kubectl rollout restart` does).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PatchStrategy, setHeaderOptions, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import type { Clients } from '../clients.ts';
import { kubeStatus } from '../kube/errors.ts';
import { repoRoot } from '../paths.ts';
import { retry } from '../retry.ts';
import { substitute } from '../setup/setup.ts';
import type { WebhookDialect } from '../targets/target.ts';
import { deploymentManifest, podImage } from './application.ts';
import type { ProvisionContext } from './context.ts';

export const POD_FIXTURES_DIR = path.join(repoRoot, 'fixtures', 'pods');

export function allContainers(pod: V1Pod): V1Container[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
}

export function envValue(c: V1Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value;
}

/** Adds the env a target needs pods to have to reach AWS (emulator endpoint, CA), the pod's own env first. */
function withTargetEnv(ctx: ProvisionContext, pod: V1Pod): V1Pod {
  const extra = Object.entries(ctx.target.podAwsEnv).map(([name, value]) => ({ name, value }));
  for (const c of allContainers(pod)) {
    c.env = [...(c.env ?? []), ...extra.filter((e) => !(c.env ?? []).some((x) => x.name === e.name))];
  }
  return pod;
}

/** The sample app's pod (the setup's Deployment template) as a bare pod named `name`. */
export function samplePodManifest(
  ctx: ProvisionContext,
  namespace: string,
  name: string,
  serviceAccount: string,
): V1Pod {
  const d = deploymentManifest(ctx, namespace, name, serviceAccount);
  const template = d.spec?.template;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...template?.metadata, name, namespace, labels: { ...template?.metadata?.labels, app: name } },
    spec: template?.spec as NonNullable<V1Pod['spec']>,
  };
}

/**
 * A pod from fixtures/pods/<fixture>.yaml. Placeholders: ${namespace} ${name} ${serviceAccount}
 * ${image} ${runId} ${annotationPrefix}; the label app=<name> is added so the pod can be found.
 */
export function fixturePodManifest(
  ctx: ProvisionContext,
  fixture: string,
  namespace: string,
  name: string,
  serviceAccount: string,
): V1Pod {
  const file = path.join(POD_FIXTURES_DIR, `${fixture}.yaml`);
  const text = substitute(
    readFileSync(file, 'utf8'),
    {
      namespace,
      name,
      serviceAccount,
      image: podImage(ctx),
      runId: ctx.runId,
      annotationPrefix: ctx.target.dialect.annotationPrefix,
    },
    file,
  );
  const pod = parseYaml(text) as V1Pod;
  pod.metadata = { ...pod.metadata, labels: { ...pod.metadata?.labels, app: name } };
  return withTargetEnv(ctx, pod);
}

/** Creates the pod and returns it as admitted (after every mutating webhook). */
export async function createPod(ctx: ProvisionContext, pod: V1Pod): Promise<V1Pod> {
  return await ctx.clients.core.createNamespacedPod({ namespace: pod.metadata?.namespace as string, body: pod });
}

/**
 * Did the pod identity webhook mutate this pod? A container mounts its token directory, or has its
 * token file variable. (Not AWS_ROLE_ARN: a container may set that itself, and then the webhook
 * adds only the mount.)
 */
export function isMutated(pod: V1Pod, dialect: WebhookDialect): boolean {
  return allContainers(pod).some(
    (c) =>
      envValue(c, 'AWS_WEB_IDENTITY_TOKEN_FILE') !== undefined ||
      (c.volumeMounts ?? []).some((m) => m.mountPath.replace(/\/+$/, '') === dialect.mountPath),
  );
}

class NotMutatedYet extends Error {}

/**
 * Waits until the webhook mutates a dry-run create of `pod`: its ServiceAccount cache has caught up
 * with the ServiceAccount's annotation (the webhook learns ServiceAccounts through a watch, so a pod
 * created right after its ServiceAccount can be admitted unmutated, irsa-facts §5.2). Dry-run
 * requests call webhooks that declare sideEffects None and persist nothing.
 * Returns the number of dry-run creates it took.
 */
export async function waitUntilWebhookMutates(ctx: ProvisionContext, pod: V1Pod): Promise<number> {
  const namespace = pod.metadata?.namespace as string;
  const body: V1Pod = { ...pod, metadata: { ...pod.metadata, name: `${pod.metadata?.name}-dry-run` } };
  const sa = `${namespace}/${pod.spec?.serviceAccountName ?? 'default'}`;
  try {
    const { attempts } = await retry(
      async () => {
        const admitted = await ctx.clients.core.createNamespacedPod({ namespace, body, dryRun: 'All' });
        if (!isMutated(admitted, ctx.target.dialect)) throw new NotMutatedYet();
      },
      {
        operation: `waiting for the pod identity webhook to mutate pods of ServiceAccount ${sa}`,
        waitingFor: `a dry-run pod of ${sa} to come back with the webhook's mount and env (its ServiceAccount cache to see the role annotation)`,
        timeoutSeconds: ctx.config.timeouts.applySeconds,
        retryable: (e) => e instanceof NotMutatedYet,
        initialDelayMs: 50,
        maxDelayMs: 1000,
      },
    );
    return attempts;
  } catch (e) {
    if (kubeStatus(e) === 400 && /dry.?run/i.test(String((e as { body?: unknown }).body ?? (e as Error).message))) {
      // A webhook with side effects refuses dry-run requests: nothing to wait on through this door.
      ctx.log(`dry-run creates are refused (${(e as Error).message.slice(0, 200)}); not waiting for the webhook cache`);
      return 0;
    }
    throw e;
  }
}

/** What `kubectl rollout restart` does: a new pod-template annotation, so the Deployment replaces its pods. */
export async function restartDeployment(clients: Clients, namespace: string, name: string): Promise<void> {
  await clients.apps.patchNamespacedDeployment(
    {
      namespace,
      name,
      body: {
        spec: {
          template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } },
        },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** Merges annotations into a ServiceAccount (what `kubectl annotate sa` does). */
export async function annotateServiceAccount(
  clients: Clients,
  namespace: string,
  name: string,
  annotations: Record<string, string>,
): Promise<void> {
  await clients.core.patchNamespacedServiceAccount(
    { namespace, name, body: { metadata: { annotations } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}
