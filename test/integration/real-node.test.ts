/**
 * The embedded target's real node (issue 14, IRSA_KUBE_NODE=kubelet): containerd and a kubelet
 * registered as a Node run a pod from the locally built image, exec reaches it through the API
 * server and the kubelet, and whatever way the environment ends (stop, a component dying, SIGTERM
 * during start, SIGINT in a scenario, the harness killed outright) the machine is as before: the same mounts
 * (/proc/self/mountinfo; the node mounts only in its private namespace, so not even while it
 * runs), no cgroup of the node in any hierarchy, none of the paths containerd and the kubelet
 * hard-code (/run/containerd, /var/lib/kubelet, /var/log/containers, ...), no process, port or
 * directory. Without root the harness refuses with exit 2 before creating anything.
 *
 * Needs root, a cgroup v1 memory hierarchy and overlayfs (preflightRealNode) and the component
 * binaries; the real node's own set-up (tools/real-node/build.sh) runs when it is not cached.
 * Skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createClients } from '../../support/clients.ts';
import { isUsageError } from '../../support/errors.ts';
import { execInPod, waitForReadyPod } from '../../support/kube/ops.ts';
import { repoRoot } from '../../support/paths.ts';
import {
  type EmbeddedTarget,
  type EnvState,
  startEmbeddedTarget,
  stopEnvironmentFromState,
} from '../../support/targets/embedded/index.ts';
import { preflightRealNode, processesUnder, REAL_NODE_NAME } from '../../support/targets/embedded/real-node.ts';
import { binariesMissing } from '../support/binaries.ts';
import { openToStrangers, probeWithoutCredentials } from '../support/closed-to-others.ts';
import { embeddedTestOptions } from '../support/embedded-options.ts';
import { disposeRuns, type IrsaRun, leftoversOf, startIrsa } from '../support/reliability-support.ts';

function realNodeMissing(): string | undefined {
  const missing = binariesMissing();
  if (missing) return `component binaries missing: ${missing}`;
  try {
    preflightRealNode();
    return undefined;
  } catch (e) {
    return isUsageError(e) ? `${e.message} (${e.hint})` : String(e);
  }
}

/** Paths containerd, runc and the kubelet write whatever their settings say (unless confined). */
const HARD_CODED = [
  '/run/containerd',
  '/run/netns',
  '/run/nri',
  '/run/runc',
  '/run/mount/utab',
  '/var/lib/kubelet',
  '/var/lib/containerd',
  '/var/lib/cni',
  '/var/log/containers',
  '/var/log/pods',
  '/opt/containerd',
  '/opt/cni',
  '/etc/cni',
];

interface HostState {
  mounts: string[];
  cgroups: string[];
  paths: string[];
}

/** This process's memory cgroup: the nodes of its runs live right below it (the same path in every hierarchy). */
const OWN_CGROUP =
  readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1] === 'memory')
    ?.split(':')[2] ?? '/';

/**
 * Every directory of a cgroup hierarchy whose name is a node's of this process's runs
 * (irsa-<envId> right below its own cgroup) or containerd's default (k8s.io, anywhere). Nodes of
 * other users of the machine (their own cgroups) come and go meanwhile: they are not this test's.
 */
function nodeCgroups(): string[] {
  const found: string[] = [];
  const walk = (root: string, dir: string, depth: number) => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) {
      const ours = /^irsa-(env|emb)/.test(e) && path.join('/', path.relative(root, dir)) === path.join('/', OWN_CGROUP);
      if (ours || e === 'k8s.io') found.push(path.join(dir, e));
      else if (depth < 4) walk(root, path.join(dir, e), depth + 1);
    }
  };
  for (const h of readdirSync('/sys/fs/cgroup'))
    walk(path.join('/sys/fs/cgroup', h), path.join('/sys/fs/cgroup', h), 0);
  return found.sort();
}

function hostState(): HostState {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [left, right] = l.split(' - ');
      return `${left?.split(' ')[4]} ${right?.split(' ')[0]}`;
    })
    .sort();
  return { mounts, cgroups: nodeCgroups(), paths: HARD_CODED.filter((p) => existsSync(p)) };
}

const alive = (pid: number) => existsSync(`/proc/${pid}`);

/** Processes with this command line in any real node's pod cgroups (under this process's memory cgroup). */
function containersRunning(cmdline: string): number[] {
  const own = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1] === 'memory')
    ?.split(':')[2];
  const base = path.join('/sys/fs/cgroup/memory', own ?? '/');
  const pids: number[] = [];
  for (const d of readdirSync(base).filter((n) => n.startsWith('irsa-'))) {
    pids.push(...processesUnder(path.join(base, d, 'pods')));
  }
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim() === cmdline;
    } catch {
      return false;
    }
  });
}

async function startNode(name: string, onExit?: (component: string) => void): Promise<EmbeddedTarget> {
  return startEmbeddedTarget(
    embeddedTestOptions(path.join(repoRoot, 'reports'), {
      logsDir: path.join(repoRoot, 'reports/logs', `test-real-node-${name}`),
      settings: { kubeNode: 'kubelet' },
      startTimeoutMs: 120_000,
      onProgress: (line) => process.stderr.write(`${line}\n`),
      ...(onExit ? { onUnexpectedExit: onExit } : {}),
    }),
  );
}

const missing = realNodeMissing();

describe('real node (IRSA_KUBE_NODE=kubelet)', {
  skip: missing ? `no real node here: ${missing}` : false,
  timeout: 900_000,
}, () => {
  const runs: IrsaRun[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'irsa-real-node-test-'));
  after(async () => {
    await disposeRuns(runs, undefined, dir);
  });

  it('registers a Node, runs a pod in a container, execs into it through the kubelet, and leaves the machine as it was', async () => {
    const before = hostState();
    const target = await startNode('lifecycle');
    const memoryDir = target.state.realNode?.memoryDir as string;
    const pids = new Set<number>();
    try {
      assert.ok(target.state.realNode, 'the state records the node’s cgroups');
      assert.deepEqual(hostState().mounts, before.mounts, 'the node mounts nothing in the machine’s mount namespace');
      const c = createClients(target.descriptor);
      try {
        const node = await c.core.readNode({ name: REAL_NODE_NAME });
        assert.equal(node.status?.nodeInfo?.kubeletVersion, 'v1.36.3');
        assert.ok(
          (node.status?.addresses ?? []).some((a) => a.type === 'InternalIP' && a.address === '127.0.0.1'),
          `the kubelet is reached on 127.0.0.1: ${JSON.stringify(node.status?.addresses)}`,
        );
        const ns = 'irsa-real-node-test';
        await c.core.createNamespace({ body: { metadata: { name: ns } } });
        for (let i = 0; i < 100; i++) {
          try {
            await c.core.readNamespacedServiceAccount({ name: 'default', namespace: ns });
            break;
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        await c.core.createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name: 'app', labels: { app: 'app' } },
            spec: {
              hostNetwork: target.descriptor.podTemplate?.hostNetwork ?? false,
              securityContext: { runAsUser: 65534, fsGroup: 65534 },
              containers: [
                {
                  name: 'app',
                  image: target.descriptor.podTemplate?.image as string,
                  command: ['sleep'],
                  args: ['infinity'],
                  volumeMounts: [{ name: 'token', mountPath: '/var/run/secrets/test', readOnly: true }],
                },
              ],
              volumes: [
                {
                  name: 'token',
                  projected: { sources: [{ serviceAccountToken: { audience: 'sts.amazonaws.com', path: 'token' } }] },
                },
              ],
            },
          },
        });
        await waitForReadyPod(c, ns, 'app=app', 60);
        const r = await execInPod(
          c,
          ns,
          'app',
          'app',
          [
            'sh',
            '-c',
            "id -u; readlink /var/run/secrets/test/token; tr '\\0' ' ' </proc/1/cmdline; echo; cat /proc/self/cgroup",
          ],
          30,
        );
        assert.equal(r.exitCode, 0, r.stderr);
        const [uid, link, pid1, ...cgroups] = r.stdout.trim().split('\n');
        assert.equal(uid, '65534');
        assert.equal(link, '..data/token', 'the kubelet projected the token (atomic writer symlink)');
        assert.equal(pid1?.trim(), 'sleep infinity', 'exec ran inside the container’s pid namespace');
        const envId = target.descriptor.envId;
        assert.ok(
          cgroups.some((l) => l.includes(`/irsa-${envId}/pods/`)),
          `the container’s cgroups are under the node’s: ${cgroups.join(' | ')}`,
        );
        for (const p of processesUnder(memoryDir)) pids.add(p);
        // Closed to other users: containerd's and the kubelet's ports as the control plane's.
        const verdicts = await probeWithoutCredentials(
          target.state.processes,
          readFileSync(target.descriptor.aws.caBundlePath as string, 'utf8'),
        );
        assert.deepEqual(
          verdicts.filter((v) => v.address !== '127.0.0.1' && v.address !== '::1'),
          [],
          'every port listens on loopback only',
        );
        assert.deepEqual(openToStrangers(verdicts), [], 'a client without credentials is refused everywhere');
        assert.match(
          verdicts.find((v) => v.component === 'kubelet' && v.port === target.state.ports.kubelet)?.got ?? '',
          /^TLS 401/,
          `the kubelet refuses anonymous requests: ${JSON.stringify(verdicts)}`,
        );
        assert.ok(
          pids.size >= 4,
          `kubelet, containerd, a shim and the container run in the node’s cgroup (${pids.size})`,
        );
      } finally {
        c.destroy();
      }
    } finally {
      await target.stop();
    }
    assert.deepEqual([...pids].filter(alive), [], 'no process of the node is left');
    assert.deepEqual(hostState(), before, 'mounts, cgroups and hard-coded paths are as before');
    assert.equal(existsSync(target.state.workDir), false, 'the work directory is removed');
  });

  it('a node component that dies takes the environment down and leaves nothing', async () => {
    const before = hostState();
    let died: (component: string) => void = () => undefined;
    const dying = new Promise<string>((resolve) => {
      died = resolve;
    });
    const target = await startNode('dies', (component) => died(component));
    const kubelet = target.state.processes.find((p) => p.name === 'kubelet');
    assert.ok(kubelet, 'the kubelet is a recorded process');
    process.kill(kubelet.pid, 'SIGKILL');
    assert.equal(await dying, 'kubelet', 'the environment noticed the kubelet’s exit');
    // The environment stops itself; stop() joins that stop.
    await target.stop();
    assert.deepEqual(hostState(), before, 'mounts, cgroups and hard-coded paths are as before');
    assert.equal(existsSync(target.state.workDir), false, 'the work directory is removed');
  });

  it('a harness killed with SIGKILL (no exit handler runs): the node stops itself and leaves nothing', async () => {
    const before = hostState();
    const stateFile = path.join(dir, 'killed.json');
    const options = {
      logsDir: path.join(repoRoot, 'reports/logs/test-real-node-killed'),
      discoveryBucket: 'irsa-test-real-node-killed',
      webhookFlags: {},
      settings: { kubeNode: 'kubelet' },
      stateFile,
      startTimeoutMs: 120_000,
    };
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '--eval',
        `const { startEmbeddedTarget } = await import(${JSON.stringify(path.join(repoRoot, 'support/targets/embedded/index.ts'))});
         await startEmbeddedTarget(${JSON.stringify(options)});
         process.stdout.write('started\\n');
         setInterval(() => undefined, 1000);`,
      ],
      // Not a test process itself (NODE_TEST_CONTEXT would make it one).
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_TEST_CONTEXT: '' } },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('started') && resolve());
      child.on('exit', (code) => reject(new Error(`the harness exited (${code}) before its environment started`)));
    });
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as EnvState;
    const nodePids = processesUnder(state.realNode?.memoryDir as string);
    child.kill('SIGKILL');
    try {
      // The watcher notices within a second or two.
      const deadline = Date.now() + 15_000;
      while ((nodePids.some(alive) || existsSync(state.workDir)) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(nodePids.filter(alive), [], 'the node’s processes are gone');
      assert.equal(existsSync(state.workDir), false, 'the work directory is removed');
      assert.deepEqual(hostState(), before, 'mounts, cgroups and hard-coded paths are as before');
    } finally {
      // The control plane's components are not the node's: stopped here, as a later `env down` would.
      await stopEnvironmentFromState(stateFile);
    }
  });

  for (const c of [
    { signal: 'SIGTERM' as const, code: 143, when: 'while the kubelet starts', at: /embedded: containerd ready/ },
    { signal: 'SIGINT' as const, code: 130, when: 'in a scenario with a running pod', at: /embedded: total ready/ },
  ]) {
    it(`${c.signal} ${c.when}: exit ${c.code}, nothing left`, async () => {
      const before = hostState();
      const run = startIrsa(
        ['conformance', 'features/08-real-node.feature', '--name', 'exec reaches'],
        { IRSA_KUBE_NODE: 'kubelet', IRSA_VERBOSE: 'true' },
        dir,
      );
      runs.push(run);
      await run.waitForOutput(c.at);
      if (c.signal === 'SIGINT') {
        // The scenario's namespace exists, then its pod's container runs (a new `sleep infinity`
        // in the node's cgroups: the probe pod's may still be there).
        await run.waitForLedger((e) => e.ref.kind === 'k8s-namespace' && e.scope !== 'probe' && e.scope !== 'run');
        const earlier = new Set(containersRunning('sleep infinity'));
        const deadline = Date.now() + 60_000;
        while (!containersRunning('sleep infinity').some((p) => !earlier.has(p)) && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 50));
      }
      run.signal(c.signal);
      const result = await run.exited;
      assert.equal(result.code, c.code, `exit code after ${c.signal}\n${result.stderr.slice(-2000)}`);
      assert.deepEqual(
        await leftoversOf(run),
        { processes: [], ports: [], tempDirs: [] },
        'nothing of the run is left',
      );
      assert.deepEqual(hostState(), before, 'mounts, cgroups and hard-coded paths are as before');
    });
  }

  it('refuses without root: exit 2, one line of cause and one of hint, nothing created', {
    skip: existsSync('/usr/bin/setpriv') ? false : 'no setpriv to run as another user',
  }, () => {
    // Outside the suite's directory (mode 0700): another user must be able to enter it.
    const home = mkdtempSync(path.join(tmpdir(), 'irsa-real-node-nobody-'));
    chmodSync(home, 0o777);
    // The cached Node runtime lives under /root, which another user cannot enter.
    const node = path.join(home, 'node');
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o755);
    const r = spawnSync(
      '/usr/bin/setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        node,
        '--import',
        'tsx',
        'support/cli/main.ts',
        'conformance',
      ],
      {
        cwd: repoRoot,
        encoding: 'utf8',
        env: {
          PATH: '/usr/bin:/bin',
          HOME: home,
          TMPDIR: home,
          IRSA_REPORTS_DIR: path.join(home, 'reports'),
          IRSA_KUBE_NODE: 'kubelet',
        },
      },
    );
    const created = readdirSync(home).filter((d) => /^irsa-(env|emb)|^irsa-conformance$/.test(d));
    rmSync(home, { recursive: true, force: true });
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(
      lines.map((l) => l.split(':')[0]),
      ['irsa', 'hint'],
      `one cause line and one hint line: ${r.stderr}`,
    );
    assert.match(lines[0] as string, /needs root/);
    assert.deepEqual(created, [], 'no environment or run directory was created');
  });
});
