/**
 * The embedded target's real node (setting `kubeNode: kubelet`, IRSA_KUBE_NODE=kubelet): containerd
 * 2.x and a kubelet registered as a Node, running pods in real containers (runc) from images built
 * locally by tools/real-node/build.sh and imported into containerd at start. No Docker, no
 * registry. It replaces kwok and the pod runtime companion (pod-runtime.ts): the kubelet projects
 * the webhook's token volume itself, and exec goes API server -> kubelet -> CRI -> runc.
 *
 * The machine's work-arounds, each explicit and confined to the node:
 *   - cgroup v1 hosts: the kubelet runs with failCgroupV1: false (Kubernetes >= 1.35 refuses v1
 *     otherwise; said in the progress log) and cgroupDriver cgroupfs; containerd 2.2 still
 *     supports v1, deprecated.
 *   - cgroups: everything of the node lives under <the harness's own memory cgroup>/irsa-<envId>
 *     (containerd and its shims in runtime/, the kubelet in kubelet/, pods under pods/, the
 *     kubelet's cgroupRoot, where it makes its QoS and pod cgroups; the same path serves in every
 *     hierarchy). Stopping kills exactly the processes of that subtree and removes it.
 *   - oom_score_adj: this machine refuses to lower it even for root; containerd restricts the
 *     scores it asks runc for to its own (restrict_oom_score_adj, as for rootless containerd).
 *   - mounts: containerd and the kubelet share a private mount namespace (tools/real-node/enter.sh),
 *     with fresh tmpfs over /run, /var/lib and /var/log for the paths they hard-code; nothing they
 *     mount is visible outside, and the namespace goes with their last process.
 *   - kernel tunables: the kubelet runs with protectKernelDefaults (it never rewrites the
 *     machine's sysctls) and reads the values it expects through read-only stand-ins in its mount
 *     namespace; the machine's own values are left alone (and logged when they differ).
 *   - addresses: the kubelet serves on 127.0.0.1 only; a Node IP may not be loopback, so the node
 *     is named 127.0.0.1 (the kubelet then reports that as its address, the documented
 *     behaviour of an IP as --hostname-override) and kube-apiserver reaches it there, with the
 *     environment's CA on both sides.
 *   - networking: moto listens on 127.0.0.1 only, so the harness's pods use the host network
 *     (TargetDescriptor.podTemplate); the CNI configuration is loopback-only, enough for the
 *     runtime to report its network ready.
 *   - files: root and state directories of containerd and the kubelet are under the
 *     environment's work directory, which is removed on stop.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CoreV1Api, V1Node } from '@kubernetes/client-node';
import { UsageError } from '../../errors.ts';
import { archiveImageName } from '../../image/oci.ts';
import { repoRoot } from '../../paths.ts';
import type { SupervisedProcess } from '../../process.ts';

/** The Node's name and address (see the header: a node IP may not be loopback, a node name may be an IP). */
export const REAL_NODE_NAME = '127.0.0.1';
/**
 * Inside every pod: the cluster's CA, which also signs the emulator's certificate (the
 * ServiceAccount admission plugin mounts it from the namespace's kube-root-ca.crt ConfigMap).
 */
export const POD_CA_BUNDLE = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';

const BUILD_SCRIPT = join(repoRoot, 'tools/real-node/build.sh');
const ENTER_SCRIPT = join(repoRoot, 'tools/real-node/enter.sh');

/** What tools/real-node/build.sh prints: the cached binaries and image archives. */
export interface RealNodeArtifacts {
  kubelet: string;
  containerd: string;
  shim: string;
  ctr: string;
  runc: string;
  cniBinDir: string;
  pauseImage: { ref: string; tar: string };
  appImage: { ref: string; tar: string };
}

/** The values the kubelet checks (protectKernelDefaults) and would otherwise write. */
const KUBELET_KERNEL_TUNABLES: Record<string, string> = {
  'vm.overcommit_memory': '1',
  'vm.panic_on_oom': '0',
  'kernel.panic': '10',
  'kernel.panic_on_oops': '1',
  'kernel.keys.root_maxkeys': '1000000',
  'kernel.keys.root_maxbytes': '25000000',
};

/** A mounted cgroup hierarchy: where, its root as mounted, and the harness's own cgroup in it. */
interface CgroupMount {
  mountPoint: string;
  root: string;
  /** v1 controllers (and name=…) of the hierarchy; empty for cgroup2. */
  controllers: string[];
  /** This process's cgroup in the hierarchy (/proc/self/cgroup), when it is listed there. */
  own?: string;
}

function cgroupMounts(): CgroupMount[] {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [id, controllers, ...path] = l.split(':');
      return {
        v2: id === '0' && controllers === '',
        controllers: (controllers ?? '').split(','),
        path: path.join(':'),
      };
    });
  const mounts: CgroupMount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    const [fsType, , superOptions] = right?.split(' ') ?? [];
    if (!left || (fsType !== 'cgroup' && fsType !== 'cgroup2')) continue;
    const fields = left.split(' ');
    const options = (superOptions ?? '').split(',');
    const controllers = fsType === 'cgroup2' ? [] : options.filter((o) => o !== 'rw' && o !== 'ro' && o !== 'xattr');
    const mine = own.find((o) =>
      fsType === 'cgroup2' ? o.v2 : !o.v2 && o.controllers.every((c) => controllers.includes(c)),
    );
    mounts.push({
      root: fields[3] as string,
      mountPoint: fields[4] as string,
      controllers,
      ...(mine ? { own: mine.path } : {}),
    });
  }
  return mounts;
}

/** A cgroup path (as in /proc/self/cgroup) inside one mounted hierarchy. */
function inHierarchy(m: CgroupMount, path: string): string | undefined {
  if (m.root === '/') return join(m.mountPoint, path);
  if (path === m.root || path.startsWith(`${m.root}/`)) return join(m.mountPoint, path.slice(m.root.length));
  return undefined;
}

/** The node's cgroups: one path, used in every hierarchy. */
export interface NodeCgroups {
  /** e.g. /process_api/<id>/irsa-<envId>: the kubelet's cgroupRoot is <path>/pods. */
  path: string;
  /** The memory hierarchy's directory of `path` (processes are moved and found there). */
  memoryDir: string;
  /**
   * Directories above `path` that are not the harness's own cgroup or its ancestors in their
   * hierarchy (runc creates them where the harness sits higher up): removed on stop when empty.
   */
  above: string[];
}

function memoryHierarchy(): { mount: CgroupMount; path: string } {
  const mount = cgroupMounts().find((m) => m.controllers.includes('memory'));
  if (!mount?.own) {
    throw new UsageError(
      'the real node needs a cgroup v1 memory hierarchy (this host has none: cgroup v2 only, or no cgroups)',
      'use IRSA_KUBE_NODE=kwok (the default); the real node supports cgroup v1 hosts only so far',
    );
  }
  return { mount, path: mount.own };
}

/** The node's cgroup path under the harness's own memory cgroup, and what lies between in the other hierarchies. */
function nodeCgroups(envId: string): NodeCgroups {
  const { mount, path } = memoryHierarchy();
  const nodePath = `${path === '/' ? '' : path}/irsa-${envId}`;
  const parts = nodePath.split('/').filter(Boolean);
  const above: string[] = [];
  for (const m of cgroupMounts()) {
    for (let i = 1; i < parts.length; i++) {
      const ancestor = `/${parts.slice(0, i).join('/')}`;
      const own = m.own ?? '/';
      if (own === ancestor || own.startsWith(`${ancestor}/`)) continue;
      const dir = inHierarchy(m, ancestor);
      if (dir) above.push(dir);
    }
  }
  return { path: nodePath, memoryDir: inHierarchy(mount, nodePath) as string, above };
}

/**
 * Why a real node cannot run here, before anything is created: not root, no overlayfs, no cgroup
 * v1 memory hierarchy the harness may create cgroups in, or the util-linux tools missing.
 * Throws a UsageError (exit code 2) with the cause and a hint.
 */
export function preflightRealNode(): void {
  const hint = 'use IRSA_KUBE_NODE=kwok (the default), which needs none of this';
  if (process.getuid?.() !== 0) {
    throw new UsageError(
      'the real node (IRSA_KUBE_NODE=kubelet) needs root: containerd, runc and the kubelet create namespaces, mounts and cgroups',
      `run as root, or ${hint}`,
    );
  }
  if (!/\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'))) {
    throw new UsageError(
      'the real node needs overlayfs (containers’ root filesystems), and this kernel has none',
      `load it (modprobe overlay), or ${hint}`,
    );
  }
  const { mount, path } = memoryHierarchy();
  const dir = inHierarchy(mount, `${path}/irsa-preflight-${process.pid}`);
  try {
    if (!dir) throw new Error(`the cgroup ${path} is outside the mounted hierarchy ${mount.root}`);
    mkdirSync(dir);
    rmdirSync(dir);
  } catch (e) {
    throw new UsageError(
      `the real node cannot create cgroups under the harness's own (${path}): ${(e as Error).message}`,
      `give the harness a writable cgroup v1 hierarchy, or ${hint}`,
    );
  }
  for (const tool of ['unshare', 'nsenter', 'mount']) {
    const found = (process.env.PATH ?? '/usr/bin:/bin')
      .split(':')
      .concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])
      .some((d) => existsSync(join(d, tool)));
    if (!found)
      throw new UsageError(
        `the real node needs ${tool} (util-linux), which is not installed`,
        `install util-linux and mount, or ${hint}`,
      );
  }
}

/**
 * The OCI archives of the setting nodeImages with the names they carry (support/image/oci.ts
 * archiveImageName); a file that is missing or names no image is bad input, before anything starts.
 */
export function resolveNodeImages(files: readonly string[]): { ref: string; tar: string }[] {
  return files.map((f) => {
    const tar = resolve(repoRoot, f);
    if (!existsSync(tar))
      throw new UsageError(
        `IRSA_NODE_IMAGES (nodeImages): ${tar} does not exist`,
        'name OCI archives (e.g. build/image/irsa-conformance-<version>.oci.tar from `npm run image`)',
      );
    let ref: string | undefined;
    try {
      ref = archiveImageName(tar);
    } catch (e) {
      throw new UsageError(
        `IRSA_NODE_IMAGES (nodeImages): ${tar} is not an OCI archive: ${(e as Error).message}`,
        'name OCI archives (a tar of an OCI image layout with index.json)',
      );
    }
    if (!ref?.includes(':'))
      throw new UsageError(
        `IRSA_NODE_IMAGES (nodeImages): ${tar} names no image (index.json has neither io.containerd.image.name nor a full org.opencontainers.image.ref.name)`,
        'give the image a name:tag when building it (npm run image -- --name)',
      );
    return { ref, tar };
  });
}

export type KubeNode = 'kwok' | 'kubelet';

/**
 * The node a setting asks for: `auto` is the real node where one can run here (preflightRealNode),
 * else kwok, with the reason. `kubelet` stays `kubelet`: its start refuses where it cannot run.
 */
export function chooseKubeNode(setting: 'auto' | KubeNode): { node: KubeNode; why?: string } {
  if (setting !== 'auto') return { node: setting };
  try {
    preflightRealNode();
    return { node: 'kubelet' };
  } catch (e) {
    return { node: 'kwok', why: (e as Error).message };
  }
}

/**
 * Builds or finds everything the node runs (tools/real-node/build.sh: quiet and fast when cached,
 * minutes the first time). Its progress goes to `onProgress`; its last lines name the cause on failure.
 */
export async function setUpRealNode(onProgress: (line: string) => void): Promise<RealNodeArtifacts> {
  const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    for (const line of c.toString().split('\n')) if (line.startsWith('[')) onProgress(line);
  });
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  if (code !== 0) {
    const lines = stderr.trim().split('\n');
    const cause = lines.find((l) => l.startsWith('irsa: '))?.slice(6) ?? `tools/real-node/build.sh exited ${code}`;
    const hint = lines.find((l) => l.startsWith('hint: '))?.slice(6) ?? 'run bash tools/real-node/build.sh to see why';
    throw new UsageError(cause, hint);
  }
  return JSON.parse(stdout) as RealNodeArtifacts;
}

function kubeletTunableDifferences(): string[] {
  const differ: string[] = [];
  for (const [name, want] of Object.entries(KUBELET_KERNEL_TUNABLES)) {
    try {
      const have = readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim();
      if (have !== want) differ.push(`${name}=${have} (kubelet wants ${want})`);
    } catch {
      // Unreadable: the stand-in is all the kubelet sees anyway.
    }
  }
  return differ;
}

/** Every process in the memory subtree `dir`, deepest first. */
export function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) walk(join(d, e));
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.push(Number(p));
    } catch {
      // Removed meanwhile.
    }
  };
  walk(dir);
  return pids;
}

/**
 * Creates a cgroup and its missing ancestors in one v1 hierarchy. A new cpuset cgroup starts with
 * no CPUs and no memory nodes (nothing could run in it): each level gets its parent's.
 */
function makeCgroup(m: CgroupMount, path: string): void {
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const dir = inHierarchy(m, `/${parts.slice(0, i).join('/')}`);
    if (!dir || existsSync(dir)) continue;
    mkdirSync(dir);
    if (!m.controllers.includes('cpuset')) continue;
    const parent = join(dir, '..');
    for (const f of ['cpuset.cpus', 'cpuset.mems'])
      writeFileSync(join(dir, f), readFileSync(join(parent, f), 'utf8').trim() || '\n');
  }
}

/** Removes a cgroup directory tree, deepest first; true when it is gone. */
function removeCgroupTree(dir: string): boolean {
  if (!existsSync(dir)) return true;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  try {
    rmdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Kills every process of the node (kubelet, containerd, shims, containers) and removes its cgroups
 * in every hierarchy, plus the ancestors the node created. Synchronous, so that process 'exit'
 * handlers can use it; bounded by `timeoutMs`. Returns what could not be removed.
 */
export function destroyNodeCgroups(cgroups: NodeCgroups, timeoutMs = 5000): string[] {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = processesUnder(cgroups.memoryDir);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    if (Date.now() > deadline) break;
    sleepSync(20);
  }
  const left: string[] = [];
  for (const m of cgroupMounts()) {
    const dir = inHierarchy(m, cgroups.path);
    if (!dir) continue;
    // A cgroup whose last process just died can refuse removal for a moment.
    while (!removeCgroupTree(dir) && Date.now() < deadline) sleepSync(20);
    if (existsSync(dir)) left.push(dir);
  }
  for (const dir of [...cgroups.above].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(dir);
    } catch {
      // Not empty (another environment of this harness uses it) or never created: left as it is.
    }
  }
  return left;
}

export interface RealNodeOptions {
  envId: string;
  workDir: string;
  artifacts: RealNodeArtifacts;
  /** Starts a supervised component (index.ts's `start`: log file, stop on failure). */
  start: (name: string, command: string, args: string[], env: Record<string, string>) => Promise<SupervisedProcess>;
  progress: (line: string) => void;
  timeoutMs: number;
  /** OCI archives imported besides the node's own images (the setting nodeImages), with the names they carry. */
  extraImages?: { ref: string; tar: string }[];
  /**
   * The harness's pid when the node must not outlive it (not a warm environment): if it is killed
   * before it stops the node, enter.sh's watcher stops the node and removes the work directory.
   */
  ownerPid?: number;
}

export interface KubeletOptions {
  kubeconfig: string;
  caFile: string;
  servingCert: string;
  servingKey: string;
  port: number;
  healthzPort: number;
}

/** The node's parts, started in two waves by index.ts: the runtime with the control plane, the kubelet after it. */
export class RealNode {
  readonly cgroups: NodeCgroups;
  /** argv[0] each process runs under once enter.sh has exec'd it (a state file's pid guard). */
  readonly commands: Record<string, string>;
  readonly #o: RealNodeOptions;
  readonly #dir: string;
  readonly #socket: string;
  #containerd: SupervisedProcess | undefined;
  #answers: Promise<void> | undefined;

  constructor(options: RealNodeOptions) {
    this.#o = options;
    this.#dir = join(options.workDir, 'node');
    // A Unix socket path holds at most 107 bytes: the work dir is short (mkdtemp in tmpdir).
    this.#socket = join(options.workDir, 'containerd.sock');
    this.commands = { containerd: options.artifacts.containerd, kubelet: options.artifacts.kubelet };
    this.cgroups = nodeCgroups(options.envId);
    for (const sub of ['runtime', 'kubelet']) mkdirSync(join(this.cgroups.memoryDir, sub), { recursive: true });
    // The kubelet's cgroupRoot must exist in every v1 hierarchy; it creates its QoS cgroups below.
    for (const m of cgroupMounts()) if (m.controllers.length) makeCgroup(m, `${this.cgroups.path}/pods`);
  }

  /** The runtime: containerd in the node's new mount namespace; then both images imported. */
  async startRuntime(): Promise<SupervisedProcess> {
    const a = this.#o.artifacts;
    const standins = join(this.#dir, 'kernel-tunables');
    for (const d of ['containerd', 'cni', 'image-verifiers', 'runc', 'tmp'])
      mkdirSync(join(this.#dir, d), { recursive: true });
    mkdirSync(standins, { recursive: true });
    for (const [name, value] of Object.entries(KUBELET_KERNEL_TUNABLES))
      writeFileSync(join(standins, name), `${value}\n`);
    const differ = kubeletTunableDifferences();
    if (differ.length)
      this.#o.progress(
        `real node: the kubelet reads stand-ins for kernel tunables that differ on this machine, which stay as they are: ${differ.join(', ')}`,
      );
    writeFileSync(
      join(this.#dir, 'cni', '10-loopback.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: 'irsa-loopback', plugins: [{ type: 'loopback' }] }),
    );
    const config = join(this.#dir, 'containerd.toml');
    writeFileSync(config, this.#containerdConfig());
    const watcher: Record<string, string> = this.#o.ownerPid
      ? {
          IRSA_NODE_OWNER: String(this.#o.ownerPid),
          IRSA_NODE_WORK_DIR: this.#o.workDir,
          IRSA_NODE_CGROUPS_ABOVE: [...this.cgroups.above].sort((x, y) => y.length - x.length).join(' '),
        }
      : {};
    this.#containerd = await this.#o.start(
      'containerd',
      '/bin/sh',
      [
        ENTER_SCRIPT,
        join(this.cgroups.memoryDir, 'runtime'),
        'new',
        standins,
        '--',
        a.containerd,
        `--config=${config}`,
      ],
      { ...this.#env(), ...watcher },
    );
    return this.#containerd;
  }

  /** Resolves when containerd answers on its socket. */
  async runtimeAnswers(): Promise<void> {
    this.#answers ??= (this.#containerd as SupervisedProcess).waitReady(
      async () => (await this.#ctr(['version'])).code === 0,
      { what: 'ctr version over its socket', timeoutMs: this.#o.timeoutMs },
    );
    await this.#answers;
  }

  /** Resolves when containerd answers and its images are imported (ctr images import): pause, app, and any extra ones. */
  async runtimeReady(): Promise<void> {
    await this.runtimeAnswers();
    const a = this.#o.artifacts;
    const results = await Promise.all(
      [a.pauseImage, a.appImage, ...(this.#o.extraImages ?? [])].map((image) =>
        this.#ctr(['images', 'import', '--base-name', image.ref.slice(0, image.ref.lastIndexOf(':')), image.tar]),
      ),
    );
    const failed = results.find((r) => r.code !== 0);
    if (failed)
      throw (this.#containerd as SupervisedProcess).startError(
        `ctr images import failed: ${failed.output.trim().slice(-500)}`,
      );
  }

  /** The kubelet, in the node's mount namespace, registering itself as Node REAL_NODE_NAME. */
  async startKubelet(k: KubeletOptions): Promise<SupervisedProcess> {
    const a = this.#o.artifacts;
    const containerd = this.#containerd as SupervisedProcess;
    const root = join(this.#dir, 'kubelet');
    mkdirSync(join(root, 'pki'), { recursive: true });
    mkdirSync(join(this.#dir, 'pod-logs'), { recursive: true });
    const config = join(this.#dir, 'kubelet.yaml');
    writeFileSync(config, JSON.stringify(this.#kubeletConfig(k), null, 2));
    this.#o.progress(
      'real node: cgroup v1 host: the kubelet runs with failCgroupV1: false (Kubernetes >= 1.35 refuses cgroup v1 otherwise) and cgroupDriver cgroupfs',
    );
    return this.#o.start(
      'kubelet',
      '/bin/sh',
      [
        ENTER_SCRIPT,
        join(this.cgroups.memoryDir, 'kubelet'),
        'join',
        String(containerd.pid),
        '--',
        a.kubelet,
        `--config=${config}`,
        `--kubeconfig=${k.kubeconfig}`,
        `--root-dir=${root}`,
        `--cert-dir=${join(root, 'pki')}`,
        `--hostname-override=${REAL_NODE_NAME}`,
        '--v=2',
      ],
      this.#env(),
    );
  }

  /** The Node is Ready and schedulable (the node lifecycle controller removed its not-ready taint). */
  static nodeReady(node: V1Node): boolean {
    const ready = (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    return ready && !(node.spec?.taints ?? []).some((t) => t.effect === 'NoSchedule');
  }

  static async readNode(core: CoreV1Api): Promise<V1Node> {
    return core.readNode({ name: REAL_NODE_NAME });
  }

  /** Kills the node's processes and removes its cgroups (the work directory goes with the environment). */
  stop(): string[] {
    return destroyNodeCgroups(this.cgroups);
  }

  #env(): Record<string, string> {
    const a = this.#o.artifacts;
    const dirs = [a.containerd, a.runc].map((f) => f.slice(0, f.lastIndexOf('/')));
    return {
      PATH: [...dirs, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'].join(':'),
      LANG: 'C.UTF-8',
      HOME: this.#o.workDir,
      TMPDIR: join(this.#dir, 'tmp'),
    };
  }

  #ctr(args: string[]): Promise<{ code: number; output: string }> {
    return new Promise((resolve) => {
      const child = spawn(this.#o.artifacts.ctr, ['--address', this.#socket, '--namespace', 'k8s.io', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: this.#env(),
      });
      let output = '';
      child.stdout.on('data', (c: Buffer) => {
        output += c.toString();
      });
      child.stderr.on('data', (c: Buffer) => {
        output += c.toString();
      });
      child.on('error', (e) => resolve({ code: 1, output: e.message }));
      child.on('close', (code) => resolve({ code: code ?? 1, output }));
    });
  }

  #containerdConfig(): string {
    const a = this.#o.artifacts;
    const d = this.#dir;
    const q = (s: string) => `'${s}'`;
    return [
      'version = 3',
      `root = ${q(join(d, 'containerd/root'))}`,
      `state = ${q(join(d, 'containerd/state'))}`,
      `temp = ${q(join(d, 'tmp'))}`,
      // Nothing of the machine's containerd configuration, if it has one.
      'imports = []',
      // Plugins that would reach outside the node's directories (NRI's socket, /opt/containerd) or
      // that the node does not use.
      `disabled_plugins = [${[
        'io.containerd.nri.v1.nri',
        'io.containerd.internal.v1.opt',
        'io.containerd.snapshotter.v1.blockfile',
        'io.containerd.snapshotter.v1.devmapper',
        'io.containerd.snapshotter.v1.erofs',
        'io.containerd.snapshotter.v1.zfs',
        'io.containerd.differ.v1.erofs',
        'io.containerd.mount-handler.v1.erofs',
        'io.containerd.tracing.processor.v1.otlp',
        'io.containerd.internal.v1.tracing',
      ]
        .map(q)
        .join(', ')}]`,
      '[grpc]',
      `  address = ${q(this.#socket)}`,
      '[plugins]',
      "  [plugins.'io.containerd.cri.v1.images']",
      "    snapshotter = 'overlayfs'",
      "    [plugins.'io.containerd.cri.v1.images'.pinned_images]",
      `      sandbox = ${q(a.pauseImage.ref)}`,
      "  [plugins.'io.containerd.cri.v1.runtime']",
      '    enable_cdi = false',
      '    netns_mounts_under_state_dir = true',
      // This machine refuses to lower a process's oom_score_adj, even for root, and the kubelet asks
      // -998 for sandboxes: containerd keeps scores at or above its own, as it does rootless.
      '    restrict_oom_score_adj = true',
      "    [plugins.'io.containerd.cri.v1.runtime'.containerd]",
      "      default_runtime_name = 'runc'",
      "      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
      "        runtime_type = 'io.containerd.runc.v2'",
      "        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
      `          BinaryName = ${q(a.runc)}`,
      `          Root = ${q(join(d, 'runc'))}`,
      '          SystemdCgroup = false',
      "    [plugins.'io.containerd.cri.v1.runtime'.cni]",
      `      bin_dirs = [${q(a.cniBinDir)}]`,
      `      conf_dir = ${q(join(d, 'cni'))}`,
      "  [plugins.'io.containerd.grpc.v1.cri']",
      // Exec and logs streams: the kubelet proxies them from here.
      "    stream_server_address = '127.0.0.1'",
      "    stream_server_port = '0'",
      "  [plugins.'io.containerd.image-verifier.v1.bindir']",
      `    bin_dir = ${q(join(d, 'image-verifiers'))}`,
      '',
    ].join('\n');
  }

  #kubeletConfig(k: KubeletOptions): Record<string, unknown> {
    return {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: '127.0.0.1',
      port: k.port,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: k.healthzPort,
      tlsCertFile: k.servingCert,
      tlsPrivateKeyFile: k.servingKey,
      // kube-apiserver authenticates with its kubelet client certificate (the environment's CA);
      // what it may do is asked of the API server (as kubeadm sets it up).
      authentication: { x509: { clientCAFile: k.caFile }, webhook: { enabled: true }, anonymous: { enabled: false } },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: `unix://${this.#socket}`,
      imageServiceEndpoint: `unix://${this.#socket}`,
      // The machine's work-arounds (see the header).
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      // With the QoS cgroups the kubelet gives each pod its cgroup under cgroupRoot (without, it
      // leaves the parent to containerd, which puts containers at the hierarchies' root).
      cgroupsPerQOS: true,
      cgroupRoot: `${this.cgroups.path}/pods`,
      protectKernelDefaults: true,
      makeIPTablesUtilChains: false,
      failSwapOn: false,
      podLogsDirectory: join(this.#dir, 'pod-logs'),
      // A throwaway node: no eviction, no image garbage collection (the images are imported once).
      evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      registerNode: true,
      clusterDomain: 'cluster.local',
      resolvConf: '/etc/resolv.conf',
      serializeImagePulls: false,
      shutdownGracePeriod: '0s',
    };
  }
}
