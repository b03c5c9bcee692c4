/**
 * The embedded target: a complete IRSA environment as local processes on 127.0.0.1, no Docker.
 *
 *   etcd ─ kube-apiserver ─┬─ kube-controller-manager   (Deployments → ReplicaSets → Pods, ServiceAccounts)
 *                          ├─ kube-scheduler            (binds pods to the node)
 *                          ├─ kwok                      (the node; marks pods Running, serves exec)
 *                          ├─ pod runtime companion     (tokens via TokenRequest, kwok Exec objects; pod-runtime.ts)
 *                          └─ amazon-eks-pod-identity-webhook (real binary, out of cluster, admission over TLS)
 *   moto (IAM, S3, STS) behind tools/moto/launcher.py (IAM enforced per request), https
 *
 * With the setting kubeNode kubelet (IRSA_KUBE_NODE=kubelet; `auto`, the default, where a real node
 * can run), a real node replaces kwok and the companion: containerd and a kubelet registered as
 * Node 127.0.0.1, pods in real containers from locally built images (real-node.ts says how, and
 * which work-arounds this machine kind needs).
 *
 * One CA per environment (support/tls.ts) signs every serving and client certificate, so the whole
 * chain is https: the service-account issuer is https://127.0.0.1:<moto>/<discoveryBucket> (the
 * article's S3-hosted issuer, with the bucket in moto), and kube-apiserver serves its JWKS.
 * The service-account signing key is RSA-2048 (RS256, as on EKS and OpenShift).
 *
 * Why not `kwokctl --runtime binary` (evaluated, sigs.k8s.io/kwok v0.8.0): it would bring up the
 * same processes, but (1) its start waits for the cluster by running `kubectl` from PATH, else it
 * downloads one (no network here; without kubectl the wait silently runs into its 2-minute
 * timeout); (2) it runs every binary with --version before starting anything; (3) it generates its
 * own PKI and sets --service-account-issuer/key flags that would all need overriding patches;
 * (4) its processes are setsid daemons known only by pid files in its workdir, stopped by another
 * kwokctl invocation; (5) by default it binds every component to 0.0.0.0 (measured: etcd,
 * kube-apiserver, controller-manager, scheduler and kwok listening on *:3276x). Measured here with
 * the same binaries: `kwokctl create cluster` returns after 1.3 s, but only once /version answers
 * (not /readyz, not the controllers); `delete` SIGKILLs everything in 0.1 s. What we need beyond it (our CA, the moto issuer, the webhook, a gated
 * pod-ready stage, log files under reports/, a state file for `env down`, start errors carrying
 * log tails) is most of the work, so this module starts the binaries itself. kwok itself (the
 * controller) is used as is, with kwok's own stages (assets/kwok-stages.yaml).
 *
 * Options:
 *   logsDir          component logs, kept after stop (the coordinator passes reports/logs/<envId>)
 *   discoveryBucket  the issuer's bucket name (created and published by the harness, not here)
 *   webhookFlags     extra webhook flags, e.g. {'token-audience': 'sts.amazonaws.com'}; they also
 *                    decide the dialect (annotation-prefix, token-audience, token-mount-path, token-expiration)
 *   region           default us-east-1
 *   envId            default a random id
 *   stateFile        where the env state (pids, ports, dirs, descriptor) is written; default <workDir>/env-state.json
 *   keepAliveAfterExit  false (default): if this process exits without stop(), an exit handler kills
 *                    every component, and if it is killed outright (SIGKILL: no handler runs) the
 *                    kernel does, by the parent-death signal every component is started with (the
 *                    real node's watcher removes its cgroups and the work directory; `npm run sweep`
 *                    the rest, support/local-leftovers.ts); true for a warm environment
 *                    (`irsa env up`) stopped later with stopEnvironmentFromState.
 *   handleSignals    default !keepAliveAfterExit: on SIGINT/SIGTERM stop the environment, then
 *                    re-raise the signal unless another listener (the coordinator's) handles it.
 *                    Needed because components run in their own process groups: a terminal's
 *                    Ctrl-C reaches only the harness.
 *   startTimeoutMs   per component readiness timeout, default 60 s (busy 2-core machines)
 *
 * Closed to other users of the machine (issue 16): every component listens on 127.0.0.1 only
 * (amazon-eks-pod-identity-webhook v0.6.17 listens on ":<port>" with no flag to change it: the set-up
 * builds it with 127.0.0.1 as its listen address, tools/build-go-components.sh); etcd serves TLS
 * and requires client certificates of the environment's CA on its client and peer ports; kwok's
 * kubelet endpoint (exec, logs) requires one too (a build-time addition to kwok, plain HTTP on its
 * port refused); kube-apiserver, the controllers, the scheduler and a real node's kubelet
 * authenticate as in a real cluster; moto refuses unsigned requests except anonymous reads that a
 * bucket policy allows; Unix sockets (containerd, the AWS CLI fork server) are in the 0700 work
 * directory. The start checks the listeners and kwok's endpoint (checkClosedToOthers). What stays
 * open on loopback is what a cluster's own is open to: the webhook answers admission reviews and
 * serves Prometheus metrics without a client certificate (kube-apiserver presents none to it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPair } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import type { HarnessConfig } from '../../config.ts';
import { StartError, UsageError } from '../../errors.ts';
import { newEnvId } from '../../names.ts';
import { writeOwner } from '../../owner.ts';
import { checkOwnFile, repoRoot } from '../../paths.ts';
import {
  type ExitInfo,
  freeLoopbackPort,
  portListening,
  processCommand,
  readLogTail,
  SupervisedProcess,
  stopProcessGroup,
  tcpListeners,
} from '../../process.ts';
import { registerSecret } from '../../redact.ts';
import { createCa, issueClientCert, issueServingCert } from '../../tls.ts';
import { readVersions } from '../../versions.ts';
import { dialectFromFlags, WEBHOOK_LOG_FLAGS } from '../dialect.ts';
import type { StartedTarget, TargetDescriptor } from '../target.ts';
import { clearPendingDeletions } from '../warm-deletions.ts';
import { resolveBinaries } from './binaries.ts';
import { READY_ANNOTATION } from './pod-runtime.ts';
import type { PodRuntimeConfig } from './pod-runtime-main.ts';
import {
  chooseKubeNode,
  destroyNodeCgroups,
  type NodeCgroups,
  POD_CA_BUNDLE,
  preflightRealNode,
  REAL_NODE_NAME,
  RealNode,
  type RealNodeArtifacts,
  resolveNodeImages,
  setUpRealNode,
} from './real-node.ts';

export interface EmbeddedOptions {
  logsDir: string;
  discoveryBucket: string;
  webhookFlags?: Record<string, string>;
  region?: string;
  envId?: string;
  stateFile?: string;
  keepAliveAfterExit?: boolean;
  /** Stop on SIGINT/SIGTERM (then re-raise the signal if nobody else listens). Default: !keepAliveAfterExit. */
  handleSignals?: boolean;
  startTimeoutMs?: number;
  onProgress?: (line: string) => void;
  /** Called once if a component exits after start (the environment is then stopped). */
  onUnexpectedExit?: (component: string, logTail: string, exit: ExitInfo & { logFile: string }) => void;
  /**
   * support/config.ts's `embedded` settings (from IRSA_CONFIG or the environment). Without them,
   * as in tests, the environment variables decide alone.
   */
  settings?: Partial<HarnessConfig['embedded']>;
}

export interface EmbeddedTarget extends StartedTarget {
  /** The env state file (see stopEnvironmentFromState). */
  statePath: string;
  /** Milliseconds from the start of startEmbeddedTarget until each component was ready, plus 'total'. */
  timings: Record<string, number>;
  /** False when moto runs without the launcher (IRSA_MOTO_MODE=plain): no IAM enforcement. */
  enforcesIam: boolean;
  /** Process ids (= process group ids), ports and the temporary directory, for checks after stop. */
  state: EnvState;
}

/** What a later process needs to stop an environment it did not start. */
export interface EnvState {
  envId: string;
  ownerPid: number;
  startedAt: string;
  workDir: string;
  logsDir: string;
  /** Process group leaders; `command` guards against signalling a reused pid. */
  processes: { name: string; pid: number; command: string }[];
  ports: Record<string, number>;
  /** The webhook flags this environment runs with (an attaching run checks them against its setup). */
  webhookFlags: Record<string, string>;
  descriptor: TargetDescriptor;
  /** The real node's cgroups (kubeNode kubelet): stopping kills their processes and removes them. */
  realNode?: NodeCgroups;
}

const NODE_NAME = 'kwok-node';
const LOOPBACK = '127.0.0.1';
/** moto's default account; the launcher reports the real one in its credentials file. */
const MOTO_DEFAULT_ACCOUNT = '123456789012';
const STOP_GRACE_MS = 1000;
/**
 * etcd and kube-apiserver drain connections for seconds on SIGTERM; their state is thrown away
 * with the environment, so they get a short grace before SIGKILL (as does the AWS CLI fork
 * server, whose running commands belong to pods that go with the environment).
 */
const STATELESS_STOP = new Set(['etcd', 'kube-apiserver', 'aws-cli-forkserver']);
const STATELESS_STOP_GRACE_MS = 300;
/** How long the first unexpected exit waits for others before one of them is named the cause. */
const DEATH_SETTLE_MS = 300;

interface HttpResult {
  status: number;
  body: string;
}

interface TlsMaterial {
  ca: string;
  cert?: string;
  key?: string;
}

/** One GET with a 2 s timeout; https when `tls` is given (trusting only the env's CA). */
function get(url: string, tls?: TlsMaterial): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const options = { method: 'GET', timeout: 2000, ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}) };
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
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

/** A minimal environment for components: nothing of the harness user's environment (AWS_*, KUBECONFIG) leaks in. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C.UTF-8',
    ...(process.env.TZ ? { TZ: process.env.TZ } : {}),
    ...extra,
  };
}

interface MotoCommand {
  command: string;
  args: (port: number, tls: { cert: string; key: string; ca: string }, region: string, credsFile: string) => string[];
  /** True when IAM is enforced (the launcher); false for plain moto (development fallback). */
  enforcesIam: boolean;
  venvBin: string;
}

/**
 * The venv (tools/python-env.sh) provides moto and the AWS CLI. The launcher is used when present;
 * IRSA_MOTO_MODE=plain forces plain `moto.server` (no IAM enforcement), for development only.
 */
function resolveMoto(): MotoCommand {
  let venv = process.env.IRSA_VENV;
  if (!venv) {
    try {
      venv = execFileSync('bash', [join(repoRoot, 'tools/python-env.sh')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    } catch (e) {
      const stderr = (e as { stderr?: string }).stderr ?? '';
      const lines = stderr.trim().split('\n');
      const cause = lines.find((l) => l.startsWith('irsa: '))?.slice(6) ?? 'tools/python-env.sh failed';
      const hint = lines.find((l) => l.startsWith('hint: '))?.slice(6) ?? 'run bash tools/python-env.sh to see why';
      throw new UsageError(cause, hint);
    }
  }
  const python = join(venv, 'bin/python');
  if (!existsSync(python))
    throw new UsageError(`no Python in ${venv}`, 'unset IRSA_VENV, or run bash tools/python-env.sh');
  const launcher = join(repoRoot, 'tools/moto/launcher.py');
  if (existsSync(launcher) && process.env.IRSA_MOTO_MODE !== 'plain') {
    return {
      command: python,
      args: (port, tls, region, creds) => [
        launcher,
        '--host',
        LOOPBACK,
        '--port',
        String(port),
        '--tls-cert',
        tls.cert,
        '--tls-key',
        tls.key,
        // Issuers' keys are fetched over https; the environment's issuer is served under its CA.
        '--trust-ca',
        tls.ca,
        '--region',
        region,
        '--admin-credentials-out',
        creds,
      ],
      enforcesIam: true,
      venvBin: join(venv, 'bin'),
    };
  }
  return {
    command: python,
    args: (port, tls) => ['-m', 'moto.server', '-H', LOOPBACK, '-p', String(port), '-c', tls.cert, '-k', tls.key],
    enforcesIam: false,
    venvBin: join(venv, 'bin'),
  };
}

const AWS_CLI_FORKSERVER = join(repoRoot, 'tools/aws-cli-forkserver.py');

interface AwsCliShim {
  /** Holds `aws`, the fork server's client: first on the pods' PATH. */
  binDir: string;
  socket: string;
  readyFile: string;
}

/**
 * Writes the pods' `aws` (a client of tools/aws-cli-forkserver.py, which falls back to running
 * the CLI itself when the server is not there). Undefined when the socket's path would exceed the
 * 107 bytes a Unix socket address holds (a deep TMPDIR): pods then run the venv's `aws` directly.
 */
function awsCliShim(moto: MotoCommand, workDir: string): AwsCliShim | undefined {
  if (!existsSync(AWS_CLI_FORKSERVER)) return undefined;
  const socket = join(workDir, 'aws-cli.sock');
  if (Buffer.byteLength(socket) > 107) return undefined;
  const binDir = join(workDir, 'aws-cli', 'bin');
  mkdirSync(binDir, { recursive: true });
  const q = (v: string) => `'${v.replaceAll("'", `'\\''`)}'`;
  writeFileSync(
    join(binDir, 'aws'),
    `#!/bin/sh\nexec ${q(moto.command)} -I -S ${q(AWS_CLI_FORKSERVER)} client --socket ${q(socket)} --python ${q(moto.command)} -- "$@"\n`,
    { mode: 0o755 },
  );
  return { binDir, socket, readyFile: join(workDir, 'aws-cli.ready') };
}

function nodeForCompanion(): string {
  return process.env.IRSA_NODE || process.execPath;
}

/**
 * Starts an embedded environment. On any failure everything already started is stopped, the
 * temporary directory removed, and a UsageError (StartError for a component) thrown.
 */
export async function startEmbeddedTarget(options: EmbeddedOptions): Promise<EmbeddedTarget> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const mark = (name: string) => {
    timings[name] = Math.round(performance.now() - t0);
    options.onProgress?.(`embedded: ${name} ready after ${timings[name]} ms`);
  };
  const progress = (line: string) => options.onProgress?.(`embedded: ${line}`);
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const region = options.region ?? 'us-east-1';
  const webhookFlags = options.webhookFlags ?? {};
  const dialect = dialectFromFlags(webhookFlags);
  const envId = options.envId ?? newEnvId();

  // Input and environment problems first, before anything runs.
  const settings = options.settings ?? {};
  // Without settings (tests) the environment variable decides, and kwok is the node without it.
  const fromEnv = process.env.IRSA_KUBE_NODE;
  const requested = settings.kubeNode ?? (fromEnv === 'kubelet' || fromEnv === 'auto' ? fromEnv : 'kwok');
  const choice = chooseKubeNode(requested);
  let kubeNode = choice.node;
  if (choice.why) progress(`no real node here (${choice.why}): kwok is the node`);
  let realNodeArtifacts: RealNodeArtifacts | undefined;
  if (kubeNode === 'kubelet') {
    preflightRealNode();
    try {
      realNodeArtifacts = await setUpRealNode(progress);
    } catch (e) {
      // Asked for explicitly, a real node that cannot be set up is an error; by `auto`, kwok's turn.
      if (requested === 'kubelet' || !(e instanceof UsageError)) throw e;
      progress(`the real node could not be set up (${e.message}): kwok is the node`);
      kubeNode = 'kwok';
    }
  }
  // Images the real node imports besides its own (support/config.ts nodeImages): named and checked now.
  const extraImages = resolveNodeImages(settings.nodeImages ?? []);
  if (extraImages.length && kubeNode !== 'kubelet')
    progress(
      `IRSA_NODE_IMAGES is not used: the node is kwok, which runs no containers (${extraImages.map((i) => i.ref).join(', ')})`,
    );
  const bins = resolveBinaries({
    ...process.env,
    ...(settings.kubeBinDir ? { IRSA_KUBE_BIN_DIR: settings.kubeBinDir } : {}),
    ...(settings.etcdBinary ? { IRSA_ETCD_BIN: settings.etcdBinary } : {}),
  });
  checkWebhookFlags(bins.webhook, webhookFlags);
  const moto = resolveMoto();
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.discoveryBucket))
    throw new UsageError(
      `"${options.discoveryBucket}" is not a valid S3 bucket name`,
      'use 3-63 lowercase letters, digits, dots or hyphens',
    );

  mkdirSync(options.logsDir, { recursive: true });
  const workDir = mkdtempSync(join(tmpdir(), `irsa-${envId}-`));
  // Whose it is: if this process is killed outright, `npm run sweep` finds what it left.
  writeOwner(workDir, { kind: 'environment', id: envId, ...(options.keepAliveAfterExit ? { keepAlive: true } : {}) });
  const pki = join(workDir, 'pki');
  mkdirSync(pki, { mode: 0o700 });
  const started: SupervisedProcess[] = [];
  const logs: Record<string, string> = {};
  // A component that exits while the others start fails the start at once (not at their timeouts).
  const startAbort = new AbortController();
  let startedAll = false;
  let stopped: Promise<void> | undefined;
  let realNode: RealNode | undefined;
  // The real node, once created, goes first on every way out (stopAll, the exit handler).
  const stopRealNode = () => {
    const left = realNode?.stop() ?? [];
    if (left.length) progress(`warning: real node cgroups left behind: ${left.join(', ')}`);
  };

  const stopAll = (): Promise<void> => {
    stopped ??= (async () => {
      const t = performance.now();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      // The node's processes (kubelet, containerd, shims, containers) all at once, by cgroup.
      stopRealNode();
      const each = await Promise.all(
        started.map(async (p) => {
          await p.stop(STATELESS_STOP.has(p.name) ? STATELESS_STOP_GRACE_MS : STOP_GRACE_MS);
          return `${p.name} ${Math.round(performance.now() - t)} ms${p.exitInfo?.signal === 'SIGKILL' ? ' (killed)' : ''}`;
        }),
      );
      // Only now: a process.exit() while the stops are under way (a second Ctrl-C) still kills them.
      process.off('exit', killOnExit);
      rmSync(workDir, { recursive: true, force: true });
      if (options.stateFile) {
        rmSync(options.stateFile, { force: true });
        // A run's lock on it (support/targets/warm-lock.ts) goes with it.
        rmSync(`${options.stateFile}.lock`, { force: true });
        // Namespace deletions handed over by runs (support/targets/warm-deletions.ts) went with the cluster.
        clearPendingDeletions(options.stateFile);
      }
      progress(`stopped in ${Math.round(performance.now() - t)} ms (${each.join(', ')})`);
    })();
    return stopped;
  };
  const killOnExit = () => {
    stopRealNode();
    for (const p of started) p.killSync();
    rmSync(workDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: stopping`);
    void stopAll().finally(() => {
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  };
  if (!options.keepAliveAfterExit) process.on('exit', killOnExit);
  if (options.handleSignals ?? !options.keepAliveAfterExit) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  try {
    // Ports, keys and certificates, all at once.
    const portNames = [
      'etcd',
      'etcdPeer',
      'apiserver',
      'moto',
      'webhook',
      'webhookMetrics',
      'kcm',
      'scheduler',
      ...(realNodeArtifacts ? ['kubelet', 'kubeletHealthz'] : ['kwok']),
    ];
    const portList = await Promise.all(portNames.map(() => freeLoopbackPort()));
    const ports = Object.fromEntries(portNames.map((n, i) => [n, portList[i] as number])) as Record<string, number>;
    const port = (n: string) => ports[n] as number;
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
      const path = join(pki, name);
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
    const server = `https://${LOOPBACK}:${port('apiserver')}`;
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
    const issuer = `https://${LOOPBACK}:${port('moto')}/${options.discoveryBucket}`;
    const motoCredsFile = join(workDir, 'moto-admin-credentials.json');
    const adminTls: TlsMaterial = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    const etcdClientMaterial: TlsMaterial = { ca: ca.certPem, cert: etcdClient.certPem, key: etcdClient.keyPem };

    const start = async (name: string, command: string, args: string[], env = cleanEnv(), cwd = workDir) => {
      const logFile = join(options.logsDir, `${name}.log`);
      rmSync(logFile, { force: true });
      logs[name] = logFile;
      // A run's own environment dies with this process, however it ends (a warm one outlives it).
      const dieWithParent = !options.keepAliveAfterExit;
      const p = await SupervisedProcess.start({ name, command, args, env, cwd, logFile, dieWithParent });
      started.push(p);
      void p.exited.then((exit) => {
        if (stopped || startedAll || startAbort.signal.aborted) return;
        startAbort.abort(
          p.startError(
            `exited during start (code ${exit.code ?? 'none'}, signal ${exit.signal ?? 'none'}), while the others were starting`,
          ),
        );
      });
      // Stopped (a signal) while this one was being spawned: stopAll did not see it.
      if (stopped) {
        await p.stop(STOP_GRACE_MS);
        throw new Error(`the environment was stopped while ${name} was starting`);
      }
      return p;
    };

    // Wave 1: etcd, moto and kube-apiserver together (kube-apiserver retries etcd until it answers).
    const etcdData = join(workDir, 'etcd');
    // TLS with client certificates of the environment's CA on both of etcd's ports, as a real
    // control plane runs it: without one nothing of the cluster's state can be read or written.
    const etcdUrl = `https://${LOOPBACK}:${port('etcd')}`;
    const etcdPeerUrl = `https://${LOOPBACK}:${port('etcdPeer')}`;
    const etcd = await start('etcd', bins.etcd, [
      '--name=irsa',
      `--data-dir=${etcdData}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--cert-file=${loopbackTls.cert}`,
      `--key-file=${loopbackTls.key}`,
      '--client-cert-auth',
      `--trusted-ca-file=${caFile}`,
      `--listen-peer-urls=${etcdPeerUrl}`,
      `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=irsa=${etcdPeerUrl}`,
      `--peer-cert-file=${loopbackTls.cert}`,
      `--peer-key-file=${loopbackTls.key}`,
      '--peer-client-cert-auth',
      `--peer-trusted-ca-file=${caFile}`,
      '--initial-cluster-state=new',
      // A throwaway store: durability costs start-up and request latency for nothing.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    const motoProc = await start(
      'moto',
      moto.command,
      [
        ...moto.args(port('moto'), { ...loopbackTls, ca: caFile }, region, motoCredsFile),
        ...(moto.enforcesIam && !options.keepAliveAfterExit ? ['--exit-with-parent'] : []),
      ],
      cleanEnv({ HOME: workDir, PYTHONDONTWRITEBYTECODE: '1', AWS_DEFAULT_REGION: region }),
    );
    // The pods' `aws`: the pinned AWS CLI, forked from an interpreter that imported it already
    // (tools/aws-cli-forkserver.py says why). The setting `off` runs it plainly.
    // (A real node's pods run the CLI of their own image.)
    const forkserver = settings.awsCliForkserver ?? process.env.IRSA_AWS_CLI_FORKSERVER ?? 'on';
    const awsCli = forkserver === 'off' || realNodeArtifacts ? undefined : awsCliShim(moto, workDir);
    const awsCliProc = awsCli
      ? await start(
          'aws-cli-forkserver',
          moto.command,
          [
            AWS_CLI_FORKSERVER,
            'serve',
            '--socket',
            awsCli.socket,
            '--ready-file',
            awsCli.readyFile,
            ...(options.keepAliveAfterExit ? [] : ['--exit-with-parent']),
          ],
          cleanEnv({ HOME: workDir }),
        )
      : undefined;
    const apiserver = await start('kube-apiserver', bins.kubeApiserver, [
      `--etcd-servers=${etcdUrl}`,
      `--etcd-cafile=${caFile}`,
      `--etcd-certfile=${etcdClientTls.cert}`,
      `--etcd-keyfile=${etcdClientTls.key}`,
      `--bind-address=${LOOPBACK}`,
      `--advertise-address=${LOOPBACK}`,
      `--secure-port=${port('apiserver')}`,
      `--tls-cert-file=${apiserverTls.cert}`,
      `--tls-private-key-file=${apiserverTls.key}`,
      `--client-ca-file=${caFile}`,
      `--service-account-issuer=${issuer}`,
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saPriv}`,
      // Where the harness publishes the JWKS next to the discovery document (the article's layout),
      // so that kube-apiserver's own discovery document agrees with the published one.
      `--service-account-jwks-uri=${issuer}/keys.json`,
      '--authorization-mode=Node,RBAC',
      '--service-cluster-ip-range=10.96.0.0/16',
      // The Endpoints of the `kubernetes` Service would be 127.0.0.1, which Endpoints validation rejects.
      '--endpoint-reconciler-type=none',
      `--kubelet-client-certificate=${kubeletClientTls.cert}`,
      `--kubelet-client-key=${kubeletClientTls.key}`,
      `--kubelet-certificate-authority=${caFile}`,
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      '--allow-privileged=true',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      `--cert-dir=${join(workDir, 'apiserver-certs')}`,
    ]);

    // The real node's runtime needs no API server: containerd starts now and imports the images
    // while the control plane comes up.
    let runtimeReady: Promise<void> | undefined;
    if (realNodeArtifacts) {
      realNode = new RealNode({
        envId,
        workDir,
        artifacts: realNodeArtifacts,
        extraImages,
        start: (name, command, args, env) => start(name, command, args, env),
        progress,
        timeoutMs,
        ...(options.keepAliveAfterExit ? {} : { ownerPid: process.pid }),
      });
      await realNode.startRuntime();
      runtimeReady = (realNode as RealNode).runtimeReady().then(() => mark('containerd'));
      // Awaited below; a failure before then must not be an unhandled rejection (see motoReady).
      runtimeReady.catch(() => undefined);
    }

    // First on the pods' PATH (and kwok's, which resolves an exec's argv[0]): the pods' `aws`.
    const podPath = [...(awsCli ? [awsCli.binDir] : []), moto.venvBin];
    const podRootTemplate = join(workDir, 'pods', '{namespace}', '{pod}');
    const companionReady = join(workDir, 'pod-runtime.ready');
    // The companion is a Node process (about a second to load): start it now; it waits for kube-apiserver.
    const companionProc = realNode ? undefined : await startCompanion();
    async function startCompanion(): Promise<SupervisedProcess> {
      const companionConfig: PodRuntimeConfig = {
        kubeconfigPath: adminKubeconfig,
        nodeName: NODE_NAME,
        nodeIp: LOOPBACK,
        podRootTemplate,
        pathPrefix: podPath,
        baseEnv: {},
        readyFile: companionReady,
      };
      const companionConfigFile = join(workDir, 'pod-runtime.json');
      writeFileSync(companionConfigFile, JSON.stringify(companionConfig, null, 2));
      return start(
        'pod-runtime',
        nodeForCompanion(),
        ['--import', 'tsx', join(repoRoot, 'support/targets/embedded/pod-runtime-main.ts'), companionConfigFile],
        cleanEnv({ HOME: workDir, NODE_NO_WARNINGS: '1' }),
        // `--import tsx` resolves from the working directory.
        repoRoot,
      );
    }

    const etcdReady = etcd
      .waitReady(async () => (await get(`${etcdUrl}/health`, etcdClientMaterial)).body.includes('"health":"true"'), {
        what: 'GET /health',
        timeoutMs,
        signal: startAbort.signal,
      })
      .then(() => mark('etcd'));
    const motoReady = motoProc
      .waitReady(
        async () => {
          if (moto.enforcesIam && !existsSync(motoCredsFile)) return false;
          await get(`https://${LOOPBACK}:${port('moto')}/`, { ca: ca.certPem });
          return true;
        },
        { what: 'an https answer (and the admin credentials file)', timeoutMs, signal: startAbort.signal },
      )
      .then(() => mark('moto'));
    // Awaited with wave 2. A failure before then must not be an unhandled rejection: that would
    // end the process before stopAll runs and orphan the components.
    motoReady.catch(() => undefined);
    await Promise.all([
      etcdReady,
      apiserver.waitReady(async () => (await get(`${server}/readyz`, adminTls)).status === 200, {
        what: 'GET /readyz',
        timeoutMs,
        signal: startAbort.signal,
      }),
    ]);
    mark('kube-apiserver');

    // Cluster objects the other components rely on: the webhook's RBAC; for kwok its Exec CRD and the node.
    const kc = new KubeConfig();
    kc.loadFromFile(adminKubeconfig);
    await bootstrapObjects(kc, kubeNode);
    mark('cluster objects');

    // Wave 2: everything that talks to the API server.
    const servingFlags = (p: number) => [
      `--bind-address=${LOOPBACK}`,
      `--secure-port=${p}`,
      `--tls-cert-file=${loopbackTls.cert}`,
      `--tls-private-key-file=${loopbackTls.key}`,
    ];
    const startNode = async (): Promise<SupervisedProcess> => {
      if (realNode) {
        // The kubelet wants its runtime answering (not the images imported yet).
        await (realNode as RealNode).runtimeAnswers();
        return (realNode as RealNode).startKubelet({
          kubeconfig: kubeletKubeconfig,
          caFile,
          servingCert: loopbackTls.cert,
          servingKey: loopbackTls.key,
          port: port('kubelet'),
          healthzPort: port('kubeletHealthz'),
        });
      }
      const kwokConfig = join(workDir, 'kwok.yaml');
      writeFileSync(
        kwokConfig,
        readFileSync(join(repoRoot, 'support/targets/embedded/assets/kwok-stages.yaml'), 'utf8').replaceAll(
          '__READY_ANNOTATION__',
          READY_ANNOTATION,
        ),
      );
      // kwok's environment is the base of every exec'd command's environment: keep it minimal. Its
      // PATH also decides where argv[0] of an exec is found (Go resolves it with kwok's own PATH,
      // not the Exec object's), so the pods' PATH comes first here too.
      return start(
        'kwok',
        bins.kwok,
        [
          `--kubeconfig=${kwokKubeconfig}`,
          `--config=${kwokConfig}`,
          `--manage-single-node=${NODE_NAME}`,
          `--node-ip=${LOOPBACK}`,
          '--node-name=localhost',
          `--node-port=${port('kwok')}`,
          `--server-address=${LOOPBACK}:${port('kwok')}`,
          `--tls-cert-file=${loopbackTls.cert}`,
          `--tls-private-key-file=${loopbackTls.key}`,
          '--node-lease-duration-seconds=40',
          '--enable-crds=Exec',
        ],
        cleanEnv({
          HOME: workDir,
          PATH: [...podPath, cleanEnv().PATH].join(':'),
          // Its kubelet endpoint serves only clients of the CA (tools/go-overlays/kwok; kwok unsets it).
          IRSA_KWOK_CLIENT_CA_FILE: caFile,
        }),
      );
    };
    const [kcmProc, schedulerProc, nodeProc, webhookProc] = await Promise.all([
      start('kube-controller-manager', bins.kubeControllerManager, [
        `--kubeconfig=${kcmKubeconfig}`,
        `--authentication-kubeconfig=${kcmKubeconfig}`,
        `--authorization-kubeconfig=${kcmKubeconfig}`,
        ...servingFlags(port('kcm')),
        '--leader-elect=false',
        `--root-ca-file=${caFile}`,
        '--use-service-account-credentials=false',
        '--profiling=false',
      ]),
      start('kube-scheduler', bins.kubeScheduler, [
        `--kubeconfig=${schedulerKubeconfig}`,
        `--authentication-kubeconfig=${schedulerKubeconfig}`,
        `--authorization-kubeconfig=${schedulerKubeconfig}`,
        ...servingFlags(port('scheduler')),
        '--leader-elect=false',
        '--profiling=false',
      ]),
      startNode(),
      start('pod-identity-webhook', bins.webhook, [
        '--in-cluster=false',
        `--kubeconfig=${webhookKubeconfig}`,
        `--tls-cert=${loopbackTls.cert}`,
        `--tls-key=${loopbackTls.key}`,
        `--port=${port('webhook')}`,
        `--metrics-port=${port('webhookMetrics')}`,
        ...Object.entries({ ...WEBHOOK_LOG_FLAGS, ...webhookFlags }).map(([k, v]) => `--${k}=${v}`),
      ]),
    ]);
    const core = kc.makeApiClient(CoreV1Api);
    const loopbackTlsMaterial: TlsMaterial = { ca: ca.certPem };
    const healthz = (p: number) => async () =>
      (await get(`https://${LOOPBACK}:${p}/healthz`, loopbackTlsMaterial)).status === 200;
    const nodeReady = realNode
      ? nodeProc
          .waitReady(
            async () => {
              if ((await get(`http://${LOOPBACK}:${port('kubeletHealthz')}/healthz`)).status !== 200) return false;
              return RealNode.nodeReady(await RealNode.readNode(core));
            },
            {
              what: `GET /healthz and node ${REAL_NODE_NAME} Ready and schedulable`,
              timeoutMs,
              signal: startAbort.signal,
            },
          )
          .then(() => mark('kubelet'))
      : nodeProc
          .waitReady(
            async () => {
              if ((await get(`https://${LOOPBACK}:${port('kwok')}/healthz`, adminTls)).status !== 200) return false;
              const node = await core.readNode({ name: NODE_NAME });
              return (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
            },
            { what: `GET /healthz and node ${NODE_NAME} Ready`, timeoutMs, signal: startAbort.signal },
          )
          .then(() => mark('kwok'));
    await Promise.all([
      motoReady,
      runtimeReady,
      kcmProc
        .waitReady(
          async () => {
            if (!(await healthz(port('kcm'))())) return false;
            // The ServiceAccount controller runs: namespaces get their `default` ServiceAccount.
            await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
            return true;
          },
          { what: 'GET /healthz and the default ServiceAccount', timeoutMs, signal: startAbort.signal },
        )
        .then(() => mark('kube-controller-manager')),
      schedulerProc
        .waitReady(healthz(port('scheduler')), { what: 'GET /healthz', timeoutMs, signal: startAbort.signal })
        .then(() => mark('kube-scheduler')),
      nodeReady,
      webhookProc
        .waitReady(healthz(port('webhook')), { what: 'GET /healthz over TLS', timeoutMs, signal: startAbort.signal })
        .then(() => mark('pod-identity-webhook')),
      companionProc
        ?.waitReady(async () => existsSync(companionReady), {
          what: 'its pod watch',
          timeoutMs,
          signal: startAbort.signal,
        })
        .then(() => mark('pod-runtime')),
      awsCliProc
        ?.waitReady(async () => existsSync((awsCli as AwsCliShim).readyFile), {
          what: 'its socket',
          timeoutMs,
          signal: startAbort.signal,
        })
        .then(() => mark('aws-cli-forkserver')),
    ]);

    // Nothing of the environment is reachable by another user of this machine: every listener is
    // on loopback, kwok's kubelet endpoint turns away clients without a certificate of the CA (a
    // binary named by IRSA_*_BIN that does otherwise is refused here).
    await checkClosedToOthers(started, realNode ? undefined : { proc: nodeProc, port: port('kwok'), ca: ca.certPem });

    const credentials = moto.enforcesIam
      ? (JSON.parse(readFileSync(motoCredsFile, 'utf8')) as {
          accessKeyId: string;
          secretAccessKey: string;
          accountId?: string;
        })
      : { accessKeyId: 'AKIAIRSAEMBEDDEDADMIN', secretAccessKey: 'embedded-moto-without-iam-enforcement' };
    registerSecret(credentials.secretAccessKey);
    const endpoint = `https://${LOOPBACK}:${port('moto')}`;
    const descriptor: TargetDescriptor = {
      name: 'embedded',
      envId,
      kubeconfigPath: adminKubeconfig,
      kubeContext: 'irsa-embedded',
      aws: {
        region,
        endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
        accountId: ('accountId' in credentials && credentials.accountId) || MOTO_DEFAULT_ACCOUNT,
        caBundlePath: caFile,
      },
      podAwsEnv: {
        AWS_ENDPOINT_URL: endpoint,
        AWS_REGION: region,
        AWS_DEFAULT_REGION: region,
        // In a real container the host's file is not there; the cluster's CA (the same) is.
        AWS_CA_BUNDLE: realNode ? POD_CA_BUNDLE : caFile,
      },
      issuer: { mode: 'fixed', issuer, discoveryBucket: options.discoveryBucket },
      webhook: {
        mode: 'harness',
        url: `https://${LOOPBACK}:${port('webhook')}/mutate`,
        caBundle: Buffer.from(ca.certPem).toString('base64'),
      },
      dialect,
      // The pinned webhook the set-up builds (a binary named by IRSA_WEBHOOK_BIN is taken for it).
      webhookVersion: readVersions().POD_IDENTITY_WEBHOOK_VERSION,
      // A real node's pods see their files where the spec puts them.
      podRoot: realNode ? '' : podRootTemplate,
      ...(realNode && realNodeArtifacts
        ? { podTemplate: { image: realNodeArtifacts.appImage.ref, hostNetwork: true } }
        : {}),
      logs,
    };
    const statePath = options.stateFile ?? join(workDir, 'env-state.json');
    const state: EnvState = {
      envId,
      ownerPid: process.pid,
      startedAt: new Date().toISOString(),
      workDir,
      logsDir: options.logsDir,
      processes: started.map((p) => ({ name: p.name, pid: p.pid, command: realNode?.commands[p.name] ?? p.command })),
      ports,
      webhookFlags,
      descriptor,
      ...(realNode ? { realNode: realNode.cgroups } : {}),
    };
    writeFileSync(statePath, JSON.stringify(state, null, 2), { mode: 0o600 });
    mark('total');
    startedAll = true;

    // A component that dies later takes the environment down with it: a half environment only
    // produces misleading failures.
    // Others may follow within moments (a client that loses kube-apiserver and exits): the one to
    // blame is the one killed by a signal or failing, else the earliest started (the most basic).
    const deaths: { p: SupervisedProcess; exit: ExitInfo }[] = [];
    const blame = () => {
      const rank = (d: { exit: ExitInfo }) => (d.exit.signal ? 0 : d.exit.code !== 0 ? 1 : 2);
      const [d] = [...deaths].sort((a, b) => rank(a) - rank(b) || started.indexOf(a.p) - started.indexOf(b.p));
      if (!d || stopped) return;
      const { p, exit } = d;
      progress(
        `${p.name} exited unexpectedly (code ${exit.code ?? 'none'}, signal ${exit.signal ?? 'none'}); stopping the environment. Last log lines:\n${p.tail(15)}`,
      );
      options.onUnexpectedExit?.(p.name, p.tail(30), { ...exit, logFile: p.logFile });
      void stopAll();
    };
    for (const p of started) {
      void p.exited.then((exit) => {
        if (stopped) return;
        deaths.push({ p, exit });
        if (deaths.length === 1) setTimeout(blame, DEATH_SETTLE_MS);
      });
    }

    return { descriptor, statePath, timings, enforcesIam: moto.enforcesIam, state, stop: stopAll };
  } catch (e) {
    await stopAll();
    if (e instanceof UsageError) throw e;
    throw new StartError(
      'embedded target',
      e instanceof Error ? e.message : String(e),
      `see the component logs in ${options.logsDir}`,
      '',
      {
        cause: e,
      },
    );
  }
}

/** The webhook's flags the embedded target sets itself (out of cluster, its TLS, its ports). */
const HARNESS_WEBHOOK_FLAGS = new Set(['in-cluster', 'kubeconfig', 'tls-cert', 'tls-key', 'port', 'metrics-port']);

/**
 * The setup's webhook flags, before anything starts: each must be a flag of the webhook binary
 * (as its --help lists them) and none one the target sets itself. A UsageError names the flag.
 */
export function checkWebhookFlags(binary: string, flags: Record<string, string>): void {
  const names = Object.keys(flags);
  if (names.length === 0) return;
  const hint = 'fix webhook.flags in the setup description (setup.yaml)';
  const own = names.find((f) => HARNESS_WEBHOOK_FLAGS.has(f));
  if (own)
    throw new UsageError(
      `the setup's webhook flag --${own} is one the embedded target sets itself`,
      `${hint}: remove it`,
    );
  const help = spawnSync(binary, ['--help'], { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const known = new Set(
    [...`${help.stdout ?? ''}${help.stderr ?? ''}`.matchAll(/^\s+(?:-\w, )?--([A-Za-z0-9][\w.-]*)/gm)].map((m) => m[1]),
  );
  // A binary that lists no flags cannot tell: its start will.
  const unknown = known.size ? names.find((f) => !known.has(f)) : undefined;
  if (unknown)
    throw new UsageError(
      `the setup's webhook flag --${unknown} is not a flag of amazon-eks-pod-identity-webhook (${binary} --help does not list it)`,
      `${hint}; \`${basename(binary)} --help\` lists the flags`,
    );
}

const LOOPBACK_ADDRESSES = new Set([LOOPBACK, '::1']);

/**
 * Refuses (StartError) a component listening beyond loopback, and a kwok that serves its kubelet
 * API (exec: commands as this user) without a client certificate, over TLS or plain HTTP.
 */
async function checkClosedToOthers(
  processes: SupervisedProcess[],
  kwok: { proc: SupervisedProcess; port: number; ca: string } | undefined,
): Promise<void> {
  for (const p of processes) {
    const open = tcpListeners([p.pid]).find((l) => !LOOPBACK_ADDRESSES.has(l.address));
    if (open)
      throw p.startError(
        `listens on ${open.address}:${open.port}, not on 127.0.0.1 only: other users and hosts could reach it`,
        'the embedded target binds loopback only; a binary named by an IRSA_*_BIN setting must do so too (tools/build-go-components.sh builds the webhook so)',
      );
  }
  if (!kwok) return;
  const tls = await new Promise<number | undefined>((resolve) => {
    const req = httpsRequest(
      { host: LOOPBACK, port: kwok.port, path: '/healthz', ca: kwok.ca, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
    req.end();
  });
  const plain = await get(`http://${LOOPBACK}:${kwok.port}/healthz`).then(
    (r) => r.status,
    () => undefined,
  );
  const served = [
    tls !== undefined && tls < 400 ? `over TLS without a client certificate (HTTP ${tls})` : '',
    plain !== undefined && plain < 400 ? `over plain HTTP (HTTP ${plain})` : '',
  ].filter(Boolean);
  if (served.length)
    throw kwok.proc.startError(
      `serves its kubelet endpoint (exec runs commands as this user) to anyone on this machine: ${served.join(', ')}`,
      'IRSA_KWOK_BIN must be kwok as tools/build-go-components.sh builds it (client certificates required)',
    );
}

/** Objects every component after kube-apiserver needs; idempotent. A real node registers itself. */
async function bootstrapObjects(kc: KubeConfig, kubeNode: 'kwok' | 'kubelet'): Promise<void> {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const createIfMissing = async (obj: KubernetesObject) => {
    try {
      await objects.create(obj);
    } catch (e) {
      if ((e as { code?: number }).code !== 409) throw e;
    }
  };
  const crd = parseYaml(
    readFileSync(join(repoRoot, 'support/targets/embedded/assets/kwok-exec-crd.yaml'), 'utf8'),
  ) as V1CustomResourceDefinition;
  const kwokObjects: KubernetesObject[] = [
    crd,
    {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: NODE_NAME,
        annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'kwok.x-k8s.io/node': 'fake' },
        labels: {
          'kubernetes.io/hostname': NODE_NAME,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          type: 'kwok',
        },
      },
    } as KubernetesObject,
  ];
  await Promise.all([
    ...(kubeNode === 'kwok' ? kwokObjects.map(createIfMissing) : []),
    // What upstream's deploy/auth.yaml grants the webhook (it watches ServiceAccounts; ConfigMaps
    // with --watch-config-map).
    createIfMissing({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'irsa:pod-identity-webhook' },
      rules: [{ apiGroups: [''], resources: ['serviceaccounts', 'configmaps'], verbs: ['get', 'watch', 'list'] }],
    } as KubernetesObject),
    createIfMissing({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'irsa:pod-identity-webhook' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'irsa:pod-identity-webhook' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'irsa:pod-identity-webhook' }],
    } as KubernetesObject),
  ]);
  if (kubeNode !== 'kwok') return;
  // kwok starts watching Execs right away: wait until the API serves them.
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  let delay = 20;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const current = await ext.readCustomResourceDefinition({ name: crd.metadata?.name as string });
    if ((current.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True')) break;
    if (Date.now() > deadline) throw new Error('the kwok Exec CRD was not established within 30 s');
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 250);
  }
  // Note: kube-apiserver delays every create of a custom resource by 2 s while its CRD was
  // Established less than 2 s ago (apiextensions-apiserver customresource_handler.go, for HA
  // servers). So a pod created within about 2 s of start becomes Ready about 2 s later; nothing
  // here waits for that window, which provisioning usually covers.
}

/**
 * Stops an environment from its state file (e.g. a warm one started by `irsa env up` in another
 * process): stops its process groups, removes its temporary directory and the state file.
 * Idempotent; a missing state file means there is nothing to stop.
 */
export async function stopEnvironmentFromState(stateFile: string): Promise<void> {
  let state: EnvState;
  // It names pids to signal and directories to remove: only a file of this user's that nobody else may write.
  if (existsSync(stateFile)) checkOwnFile(stateFile, 'environment state');
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as EnvState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new UsageError(
      `cannot read the environment state ${stateFile}: ${(e as Error).message}`,
      'delete it and stop leftover processes by hand',
    );
  }
  // A real node's processes (kubelet, containerd, shims, containers) go first, by cgroup.
  if (state.realNode) destroyNodeCgroups(state.realNode);
  await Promise.all(
    state.processes.map(async (p) => {
      const running = processCommand(p.pid);
      // A leader that is gone (or a pid now used by another program) is not ours to signal.
      if (running !== undefined && running !== p.command) return;
      await stopProcessGroup(p.pid, STATELESS_STOP.has(p.name) ? STATELESS_STOP_GRACE_MS : STOP_GRACE_MS);
    }),
  );
  // Only ever delete a directory this module created (a corrupted state file must not point rm elsewhere).
  const workDir = resolve(state.workDir);
  if (dirname(workDir) === resolve(tmpdir()) && basename(workDir).startsWith(`irsa-${state.envId}-`)) {
    rmSync(workDir, { recursive: true, force: true });
  }
  rmSync(stateFile, { force: true });
  // A run's lock on it (support/targets/warm-lock.ts) goes with it.
  rmSync(`${stateFile}.lock`, { force: true });
  clearPendingDeletions(stateFile);
}

/** Ports of a state that still accept connections (for tests and `env down` checks). */
export async function listeningPorts(ports: Record<string, number>): Promise<string[]> {
  const results = await Promise.all(
    Object.entries(ports).map(async ([name, p]) => ((await portListening(p)) ? `${name}:${p}` : undefined)),
  );
  return results.filter((r): r is string => r !== undefined);
}

export { readLogTail };
