/**
 * The embedded target's pod runtime companion: what a kubelet would do for a pod that kwok "runs",
 * as far as the harness can observe it through exec.
 *
 * kwok marks pods Running and serves the kubelet's exec endpoint, running the command as a local
 * process configured by a kwok `Exec` object (env, working directory). This companion watches the
 * pods bound to the kwok node and, for each one:
 *   1. materialises its projected volumes under a per-pod root directory: every serviceAccountToken
 *      source is minted through the TokenRequest API with the source's exact audience and
 *      expirationSeconds and a binding to the pod (as the kubelet does), configMap/secret/downward
 *      API items as far as they can be resolved; tokens are refreshed at 80 % of their lifetime;
 *   2. builds each container's environment from the pod spec, rewriting values that point into a
 *      materialised mount so that they point under the pod root (the command runs on the host);
 *   3. creates the pod's Exec object (owned by the pod, so the garbage collector removes it);
 *   4. proves kwok serves it (exec `true` through the API server), then sets the readiness
 *      annotation that kwok's pod-ready stage waits for. A pod is therefore never Ready before its
 *      environment exists, and "wait for Ready, then exec" never races.
 *
 * It runs as its own process (pod-runtime-main.ts) so that a warm environment keeps working after
 * the process that started it exits. Token values are written to 0600 files, never logged.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { Writable } from 'node:stream';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  Exec,
  type KubeConfig,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  type V1Container,
  type V1Pod,
  type V1Status,
  type V1Volume,
  type V1VolumeProjection,
  Watch,
} from '@kubernetes/client-node';

export const READY_ANNOTATION = 'embedded.irsa-conformance.io/runtime-ready';
const KWOK_GROUP = 'kwok.x-k8s.io';
const KWOK_VERSION = 'v1alpha1';
/** kubelet's default for a serviceAccountToken source without expirationSeconds. */
const DEFAULT_TOKEN_SECONDS = 3600;
/** setTimeout fires at once for delays above 2^31-1 ms (24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface PodRuntimeOptions {
  kubeConfig: KubeConfig;
  nodeName: string;
  /** Per-pod root, with {namespace} and {pod} placeholders. */
  podRootTemplate: string;
  /** Directories put first on PATH (the venv's bin, so that `aws` is the pinned AWS CLI). */
  pathPrefix: string[];
  /** Extra env for every container (the pod's own env wins). */
  baseEnv: Record<string, string>;
  /** IP reported for status.hostIP/status.podIP field references. */
  nodeIp: string;
  log: (line: string) => void;
}

interface PodState {
  uid: string;
  timers: NodeJS.Timeout[];
  done: boolean;
}

interface Mount {
  volume: string;
  mountPath: string;
}

export function podRootFor(template: string, namespace: string, pod: string): string {
  return template.replaceAll('{namespace}', namespace).replaceAll('{pod}', pod);
}

function errorText(e: unknown): string {
  if (e instanceof ApiException)
    return `HTTP ${e.code}: ${typeof e.body === 'string' ? e.body : JSON.stringify(e.body)}`;
  return e instanceof Error ? e.message : String(e);
}

function isStatus(e: unknown, code: number): boolean {
  return e instanceof ApiException && e.code === code;
}

/** Absolute path inside the pod -> host path under the pod root. */
function underRoot(root: string, podPath: string): string {
  return join(root, normalize(`/${podPath}`));
}

export class PodRuntimeCompanion {
  readonly #o: PodRuntimeOptions;
  readonly #core: CoreV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #pods = new Map<string, PodState>();
  #informer: ListWatch<V1Pod> | undefined;
  #restart: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: PodRuntimeOptions) {
    this.#o = options;
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async start(): Promise<void> {
    const fieldSelector = `spec.nodeName=${this.#o.nodeName}`;
    const informer = new ListWatch<V1Pod>(
      '/api/v1/pods',
      new Watch(this.#o.kubeConfig),
      () => this.#core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    informer.on('add', (pod) => this.#onPod(pod));
    informer.on('update', (pod) => this.#onPod(pod));
    informer.on('delete', (pod) => this.#onDelete(pod));
    // The informer stops on an error (@kubernetes/client-node does not restart it): this companion
    // does, after a second, until it is stopped. Without it, the process would be left with nothing
    // to do and exit (code 0) whenever kube-apiserver is briefly unreachable.
    informer.on('error', (err) => {
      if (this.#stopped) return;
      this.#o.log(`pod watch error (restarting the watch in 1 s): ${errorText(err)}`);
      const retry = setTimeout(() => {
        if (!this.#stopped) informer.start().catch(() => undefined);
      }, 1000);
      this.#restart = retry;
    });
    this.#informer = informer;
    await informer.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restart);
    for (const state of this.#pods.values()) for (const t of state.timers) clearTimeout(t);
    await this.#informer?.stop();
  }

  #onPod(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid || pod.metadata?.deletionTimestamp || this.#stopped) return;
    const existing = this.#pods.get(uid);
    if (existing) return;
    if (pod.metadata?.annotations?.[READY_ANNOTATION] === 'true') {
      // Prepared by an earlier companion of this environment (restart): only keep refreshing.
      this.#pods.set(uid, { uid, timers: [], done: true });
      void this.#prepare(pod, this.#pods.get(uid) as PodState, true);
      return;
    }
    const state: PodState = { uid, timers: [], done: false };
    this.#pods.set(uid, state);
    void this.#prepare(pod, state, false);
  }

  #onDelete(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    const ns = pod.metadata?.namespace;
    const name = pod.metadata?.name;
    if (!uid || !ns || !name) return;
    const state = this.#pods.get(uid);
    if (state) for (const t of state.timers) clearTimeout(t);
    this.#pods.delete(uid);
    // Another pod of the same name may already be starting; only remove what belongs to this uid.
    const sameNameAlive = [...(this.#informer?.list(ns) ?? [])].some(
      (p) => p.metadata?.name === name && p.metadata?.uid !== uid,
    );
    if (!sameNameAlive) {
      rmSync(podRootFor(this.#o.podRootTemplate, ns, name), { recursive: true, force: true });
      this.#custom
        .deleteNamespacedCustomObject({
          group: KWOK_GROUP,
          version: KWOK_VERSION,
          namespace: ns,
          plural: 'execs',
          name,
        })
        .catch(() => undefined);
    }
  }

  async #prepare(pod: V1Pod, state: PodState, refreshOnly: boolean): Promise<void> {
    const ns = pod.metadata?.namespace as string;
    const name = pod.metadata?.name as string;
    const ref = `${ns}/${name}`;
    let delay = 100;
    for (let attempt = 1; !this.#stopped && this.#pods.get(state.uid) === state; attempt++) {
      try {
        const root = podRootFor(this.#o.podRootTemplate, ns, name);
        if (!refreshOnly) {
          rmSync(root, { recursive: true, force: true });
          mkdirSync(join(root, 'root'), { recursive: true, mode: 0o700 });
        }
        const t0 = performance.now();
        const phases: string[] = [];
        const phase = (label: string) => phases.push(`${label} ${Math.round(performance.now() - t0)}`);
        await this.#materialiseVolumes(pod, root, state);
        phase('volumes');
        if (refreshOnly) return;
        await this.#createExec(pod, root);
        phase('exec object');
        const tries = await this.#proveExec(pod);
        phase(`exec proven (${tries} tries)`);
        await this.#core.patchNamespacedPod(
          { name, namespace: ns, body: { metadata: { annotations: { [READY_ANNOTATION]: 'true' } } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        phase('annotated');
        state.done = true;
        // Watch events carry the timestamp as a string, listed objects as a Date.
        const created = Date.parse(String(pod.metadata?.creationTimestamp ?? ''));
        const age = Number.isNaN(created) ? 'unknown' : Date.now() - created;
        this.#o.log(`pod ${ref} prepared (attempt ${attempt}; ms: ${phases.join(', ')}; ${age} ms after creation)`);
        return;
      } catch (e) {
        if (isStatus(e, 404)) return; // The pod is gone.
        this.#o.log(`pod ${ref}: preparing failed (attempt ${attempt}, retrying): ${errorText(e)}`);
        // A bounded backoff: the usual cause is a ServiceAccount or ConfigMap that appears moments later.
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 5000);
        if (attempt >= 30) {
          this.#o.log(`pod ${ref}: giving up; the pod stays Pending`);
          return;
        }
      }
    }
  }

  /** Mount points of a volume in one container. */
  static #mounts(container: V1Container): Mount[] {
    return (container.volumeMounts ?? []).map((m) => ({ volume: m.name, mountPath: m.mountPath }));
  }

  static #containers(pod: V1Pod): V1Container[] {
    return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  }

  async #materialiseVolumes(pod: V1Pod, root: string, state: PodState): Promise<void> {
    const volumes = new Map<string, V1Volume>((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
    const mountPaths = new Map<string, Set<string>>();
    for (const c of PodRuntimeCompanion.#containers(pod)) {
      for (const m of PodRuntimeCompanion.#mounts(c)) {
        if (!mountPaths.has(m.volume)) mountPaths.set(m.volume, new Set());
        mountPaths.get(m.volume)?.add(m.mountPath);
      }
    }
    for (const [volumeName, paths] of mountPaths) {
      const volume = volumes.get(volumeName);
      if (!volume) continue;
      const files = await this.#volumeFiles(pod, volume, state);
      for (const mountPath of paths) {
        const dir = underRoot(root, mountPath);
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        for (const [path, content] of files) {
          const file = join(dir, normalize(`/${path}`));
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, content, { mode: 0o600 });
        }
      }
    }
  }

  /** The files of one volume (projected, configMap, secret, downwardAPI); others stay empty dirs. */
  async #volumeFiles(pod: V1Pod, volume: V1Volume, state: PodState): Promise<Map<string, string>> {
    const files = new Map<string, string>();
    const sources: V1VolumeProjection[] = volume.projected?.sources ?? [];
    if (volume.configMap) sources.push({ configMap: volume.configMap });
    if (volume.secret) sources.push({ secret: { name: volume.secret.secretName, items: volume.secret.items } });
    if (volume.downwardAPI) sources.push({ downwardAPI: volume.downwardAPI });
    for (const source of sources) {
      if (source.serviceAccountToken) {
        const { path, audience, expirationSeconds } = source.serviceAccountToken;
        files.set(
          path,
          await this.#mintToken(pod, audience, expirationSeconds ?? DEFAULT_TOKEN_SECONDS, state, volume),
        );
      } else if (source.configMap?.name) {
        const cm = await this.#core
          .readNamespacedConfigMap({ name: source.configMap.name, namespace: pod.metadata?.namespace as string })
          .catch((e) => {
            if (isStatus(e, 404) && source.configMap?.optional) return undefined;
            throw e;
          });
        const data = cm?.data ?? {};
        const items = source.configMap.items ?? Object.keys(data).map((key) => ({ key, path: key }));
        for (const item of items) if (data[item.key] !== undefined) files.set(item.path, data[item.key] as string);
      } else if (source.secret?.name) {
        const secret = await this.#core
          .readNamespacedSecret({ name: source.secret.name, namespace: pod.metadata?.namespace as string })
          .catch((e) => {
            if (isStatus(e, 404) && source.secret?.optional) return undefined;
            throw e;
          });
        const data = secret?.data ?? {};
        const items = source.secret.items ?? Object.keys(data).map((key) => ({ key, path: key }));
        for (const item of items) {
          const value = data[item.key];
          if (value !== undefined) files.set(item.path, Buffer.from(value, 'base64').toString('utf8'));
        }
      } else if (source.downwardAPI) {
        for (const item of source.downwardAPI.items ?? []) {
          const value = item.fieldRef ? this.#fieldRef(pod, item.fieldRef.fieldPath) : undefined;
          if (value !== undefined) files.set(item.path, value);
        }
      }
    }
    return files;
  }

  async #mintToken(
    pod: V1Pod,
    audience: string | undefined,
    expirationSeconds: number,
    state: PodState,
    volume: V1Volume,
  ): Promise<string> {
    const namespace = pod.metadata?.namespace as string;
    const tr = await this.#core.createNamespacedServiceAccountToken({
      name: pod.spec?.serviceAccountName || 'default',
      namespace,
      body: {
        spec: {
          audiences: audience ? [audience] : [],
          expirationSeconds,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid },
        },
      },
    });
    const token = tr.status?.token;
    if (!token) throw new Error('TokenRequest returned no token');
    // The kubelet refreshes a projected token at 80 % of its lifetime; so does this companion.
    const ttlMs = (tr.status?.expirationTimestamp?.getTime() ?? Date.now() + expirationSeconds * 1000) - Date.now();
    if (ttlMs > 0 && !this.#stopped) {
      const timer = setTimeout(
        () => {
          state.timers = state.timers.filter((t) => t !== timer);
          if (this.#pods.get(state.uid) !== state) return;
          const current = this.#informer?.get(pod.metadata?.name as string, namespace) ?? pod;
          const root = podRootFor(this.#o.podRootTemplate, namespace, pod.metadata?.name as string);
          this.#materialiseVolumes(current, root, state).catch((e) =>
            this.#o.log(
              `pod ${namespace}/${pod.metadata?.name}: token refresh of volume ${volume.name} failed: ${errorText(e)}`,
            ),
          );
        },
        Math.min(ttlMs * 0.8, MAX_TIMER_MS),
      );
      timer.unref();
      state.timers.push(timer);
    }
    return token;
  }

  #fieldRef(pod: V1Pod, fieldPath: string): string | undefined {
    const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
    if (m?.[1] && m[2]) {
      const map = m[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations;
      return map?.[m[2]];
    }
    switch (fieldPath) {
      case 'metadata.name':
        return pod.metadata?.name;
      case 'metadata.namespace':
        return pod.metadata?.namespace;
      case 'metadata.uid':
        return pod.metadata?.uid;
      case 'spec.nodeName':
        return pod.spec?.nodeName;
      case 'spec.serviceAccountName':
        return pod.spec?.serviceAccountName;
      case 'status.hostIP':
      case 'status.podIP':
        return this.#o.nodeIp;
      default:
        return undefined;
    }
  }

  async #containerEnv(pod: V1Pod, container: V1Container, root: string): Promise<Record<string, string>> {
    const env: Record<string, string> = {
      ...this.#o.baseEnv,
      PATH: [...this.#o.pathPrefix, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(
        ':',
      ),
      HOME: join(root, 'root'),
      HOSTNAME: pod.metadata?.name ?? '',
      // The host user's AWS configuration must never leak into a pod.
      AWS_CONFIG_FILE: join(root, 'root/.aws/config'),
      AWS_SHARED_CREDENTIALS_FILE: join(root, 'root/.aws/credentials'),
    };
    const mounts = PodRuntimeCompanion.#mounts(container).sort((a, b) => b.mountPath.length - a.mountPath.length);
    const rewrite = (value: string): string => {
      for (const m of mounts) {
        const mp = m.mountPath.replace(/\/+$/, '');
        if (value === mp || value.startsWith(`${mp}/`)) return underRoot(root, value);
      }
      return value;
    };
    // $(VAR) references expand to earlier variables, as in Kubernetes; $$ escapes.
    const expand = (value: string): string =>
      value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) =>
        name === undefined ? '$' : (env[name] ?? whole),
      );
    for (const e of container.env ?? []) {
      let value: string | undefined;
      if (e.value !== undefined) value = expand(e.value);
      else if (e.valueFrom?.fieldRef) value = this.#fieldRef(pod, e.valueFrom.fieldRef.fieldPath);
      else if (e.valueFrom?.configMapKeyRef) {
        const ref = e.valueFrom.configMapKeyRef;
        const cm = await this.#core
          .readNamespacedConfigMap({ name: ref.name as string, namespace: pod.metadata?.namespace as string })
          .catch(() => undefined);
        value = cm?.data?.[ref.key];
      } else if (e.valueFrom?.secretKeyRef) {
        const ref = e.valueFrom.secretKeyRef;
        const secret = await this.#core
          .readNamespacedSecret({ name: ref.name as string, namespace: pod.metadata?.namespace as string })
          .catch(() => undefined);
        const raw = secret?.data?.[ref.key];
        value = raw === undefined ? undefined : Buffer.from(raw, 'base64').toString('utf8');
      } else if (e.value === undefined && !e.valueFrom) value = '';
      if (value !== undefined) env[e.name] = rewrite(value);
    }
    return env;
  }

  async #createExec(pod: V1Pod, root: string): Promise<void> {
    const ns = pod.metadata?.namespace as string;
    const name = pod.metadata?.name as string;
    const execs = [];
    for (const c of PodRuntimeCompanion.#containers(pod)) {
      const env = await this.#containerEnv(pod, c, root);
      const workDir = c.workingDir ? underRoot(root, c.workingDir) : root;
      mkdirSync(workDir, { recursive: true });
      execs.push({
        containers: [c.name],
        local: { workDir, envs: Object.entries(env).map(([n, value]) => ({ name: n, value })) },
      });
    }
    const body = {
      apiVersion: `${KWOK_GROUP}/${KWOK_VERSION}`,
      kind: 'Exec',
      metadata: {
        name,
        namespace: ns,
        ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name, uid: pod.metadata?.uid as string }],
      },
      spec: { execs },
    };
    const target = { group: KWOK_GROUP, version: KWOK_VERSION, namespace: ns, plural: 'execs' };
    try {
      await this.#custom.createNamespacedCustomObject({ ...target, body });
    } catch (e) {
      if (!isStatus(e, 409)) throw e;
      // Left over from an earlier pod of the same name: replace it.
      const old = (await this.#custom.getNamespacedCustomObject({ ...target, name })) as {
        metadata?: { resourceVersion?: string };
      };
      await this.#custom.replaceNamespacedCustomObject({
        ...target,
        name,
        body: { ...body, metadata: { ...body.metadata, resourceVersion: old.metadata?.resourceVersion } },
      });
    }
  }

  /**
   * kwok learns about the Exec object through its own watch; until then an exec fails. Running
   * `true` through the API server proves the whole exec path before the pod is marked ready.
   */
  async #proveExec(pod: V1Pod): Promise<number> {
    const container = pod.spec?.containers[0]?.name as string;
    const deadline = Date.now() + 15_000;
    let delay = 20;
    for (let tries = 1; ; tries++) {
      const result = await execInPod(
        this.#o.kubeConfig,
        pod.metadata?.namespace as string,
        pod.metadata?.name as string,
        container,
        ['true'],
      ).catch((e: unknown) => ({ exitCode: -1, stdout: '', stderr: errorText(e) }));
      if (result.exitCode === 0) return tries;
      if (Date.now() > deadline) throw new Error(`exec into the pod does not work yet: ${result.stderr.slice(0, 300)}`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 500);
    }
  }
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs argv in a container through the API server's exec subresource and collects its output. */
export async function execInPod(
  kubeConfig: KubeConfig,
  namespace: string,
  pod: string,
  container: string,
  argv: string[],
): Promise<ExecResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (chunks: Buffer[]) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(Buffer.from(chunk));
        cb();
      },
    });
  let status: V1Status | undefined;
  const ws = await new Exec(kubeConfig).exec(
    namespace,
    pod,
    container,
    argv,
    sink(out),
    sink(err),
    null,
    false,
    (s) => {
      status = s;
    },
  );
  await new Promise<void>((resolve) => {
    if (ws.readyState === ws.CLOSED) resolve();
    else ws.once('close', () => resolve());
  });
  let exitCode = status?.status === 'Success' ? 0 : 1;
  const cause = status?.details?.causes?.find((c) => c.reason === 'ExitCode');
  if (cause?.message) exitCode = Number(cause.message);
  const stderr =
    Buffer.concat(err).toString('utf8') + (status?.status === 'Failure' && !cause ? (status.message ?? '') : '');
  return { exitCode, stdout: Buffer.concat(out).toString('utf8'), stderr };
}
