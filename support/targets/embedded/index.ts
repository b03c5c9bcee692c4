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
 *
 * One file per component, as envtest's control plane (controller-runtime
 * pkg/internal/testing/controlplane) has: etcd.ts, apiserver.ts, controller-manager.ts,
 * scheduler.ts, kwok.ts (kwok and the pod runtime companion), webhook.ts, moto.ts (moto and the
 * pods' AWS CLI), real-node.ts; each start returns the started process (which knows how to stop
 * itself) and its readiness probe. pki.ts issues the certificates and kubeconfigs,
 * bootstrap-objects.ts creates what wave 2 needs, component.ts holds what they share, and
 * env-state.ts the state file and the stop of an environment another process started. This file
 * is the start: the checks before anything runs, the two waves, the descriptor, the state file,
 * and the stop on every way out (stop(), the exit handler, signals, a component's death).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { HarnessConfig } from '../../config.ts';
import { StartError, UsageError } from '../../errors.ts';
import { newEnvId } from '../../names.ts';
import { writeOwner } from '../../owner.ts';
import { type ExitInfo, freeLoopbackPort, readLogTail, SupervisedProcess } from '../../process.ts';
import { registerSecret } from '../../redact.ts';
import { readVersions } from '../../versions.ts';
import { dialectFromFlags } from '../dialect.ts';
import type { StartedTarget, TargetDescriptor } from '../target.ts';
import { clearPendingDeletions } from '../warm-deletions.ts';
import { startApiserver } from './apiserver.ts';
import { resolveBinaries } from './binaries.ts';
import { bootstrapObjects } from './bootstrap-objects.ts';
import { type Component, checkClosedToOthers, cleanEnv, get, type Launch, LOOPBACK } from './component.ts';
import { startControllerManager } from './controller-manager.ts';
import { type EnvState, STOP_GRACE_MS, stopGraceMs } from './env-state.ts';
import { startEtcd } from './etcd.ts';
import { startKwok, startPodRuntime } from './kwok.ts';
import { motoCredentials, podAwsCli, resolveMoto, startAwsCliForkserver, startMoto } from './moto.ts';
import { createPki } from './pki.ts';
import {
  chooseKubeNode,
  POD_CA_BUNDLE,
  preflightRealNode,
  REAL_NODE_NAME,
  RealNode,
  type RealNodeArtifacts,
  resolveNodeImages,
  setUpRealNode,
} from './real-node.ts';
import { startScheduler } from './scheduler.ts';
import { checkWebhookFlags, startWebhook } from './webhook.ts';

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

/** How long the first unexpected exit waits for others before one of them is named the cause. */
const DEATH_SETTLE_MS = 300;

/**
 * Starts an embedded environment. On any failure everything already started is stopped, the
 * temporary directory removed, and a UsageError (StartError for a component) thrown.
 */
async function startOnce(options: EmbeddedOptions): Promise<EmbeddedTarget> {
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
  const pkiDir = join(workDir, 'pki');
  mkdirSync(pkiDir, { mode: 0o700 });
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
          await p.stop(stopGraceMs(p.name));
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
    const pki = await createPki(envId, pkiDir, workDir, `https://${LOOPBACK}:${port('apiserver')}`);
    const issuer = `https://${LOOPBACK}:${port('moto')}/${options.discoveryBucket}`;
    const motoCredsFile = join(workDir, 'moto-admin-credentials.json');

    const start: Launch = async (name, command, args, env = cleanEnv(), cwd = workDir) => {
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
    const etcd = await startEtcd(start, {
      binary: bins.etcd,
      workDir,
      port: port('etcd'),
      peerPort: port('etcdPeer'),
      pki,
    });
    const motoServer = await startMoto(start, {
      moto,
      port: port('moto'),
      tls: { ...pki.loopbackTls, ca: pki.caFile },
      caPem: pki.caPem,
      region,
      credsFile: motoCredsFile,
      workDir,
      keepAlive: options.keepAliveAfterExit === true,
    });
    // The pods' `aws` (moto.ts says how; a real node's pods run the CLI of their own image).
    const awsCli = podAwsCli(moto, workDir, settings.awsCliForkserver, realNodeArtifacts !== undefined);
    const awsCliServer = awsCli
      ? await startAwsCliForkserver(start, {
          moto,
          shim: awsCli,
          workDir,
          keepAlive: options.keepAliveAfterExit === true,
        })
      : undefined;
    const apiserver = await startApiserver(start, {
      binary: bins.kubeApiserver,
      workDir,
      port: port('apiserver'),
      etcdUrl: etcd.url,
      issuer,
      pki,
    });

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
    // The companion is a Node process (about a second to load): start it now; it waits for kube-apiserver.
    const companion = realNode
      ? undefined
      : await startPodRuntime(start, { workDir, kubeconfig: pki.kubeconfigs.admin, podRootTemplate, podPath });

    const wait = { timeoutMs, signal: startAbort.signal };
    const etcdReady = etcd.ready(wait).then(() => mark('etcd'));
    const motoReady = motoServer.ready(wait).then(() => mark('moto'));
    // Awaited with wave 2. A failure before then must not be an unhandled rejection: that would
    // end the process before stopAll runs and orphan the components.
    motoReady.catch(() => undefined);
    await Promise.all([etcdReady, apiserver.ready(wait)]);
    mark('kube-apiserver');

    // Cluster objects the other components rely on: the webhook's RBAC; for kwok its Exec CRD and the node.
    const kc = new KubeConfig();
    kc.loadFromFile(pki.kubeconfigs.admin);
    await bootstrapObjects(kc, kubeNode);
    mark('cluster objects');

    // Wave 2: everything that talks to the API server.
    const core = kc.makeApiClient(CoreV1Api);
    const startNode = async (): Promise<Component> => {
      if (realNode) {
        // The kubelet wants its runtime answering (not the images imported yet).
        await (realNode as RealNode).runtimeAnswers();
        const proc = await (realNode as RealNode).startKubelet({
          kubeconfig: pki.kubeconfigs.kubelet,
          caFile: pki.caFile,
          servingCert: pki.loopbackTls.cert,
          servingKey: pki.loopbackTls.key,
          port: port('kubelet'),
          healthzPort: port('kubeletHealthz'),
        });
        return {
          proc,
          ready: (w) =>
            proc.waitReady(
              async () => {
                if ((await get(`http://${LOOPBACK}:${port('kubeletHealthz')}/healthz`)).status !== 200) return false;
                return RealNode.nodeReady(await RealNode.readNode(core));
              },
              { what: `GET /healthz and node ${REAL_NODE_NAME} Ready and schedulable`, ...w },
            ),
        };
      }
      return startKwok(start, { binary: bins.kwok, workDir, port: port('kwok'), pki, podPath, core });
    };
    const [controllerManager, scheduler, node, webhook] = await Promise.all([
      startControllerManager(start, { binary: bins.kubeControllerManager, port: port('kcm'), pki, core }),
      startScheduler(start, { binary: bins.kubeScheduler, port: port('scheduler'), pki }),
      startNode(),
      startWebhook(start, {
        binary: bins.webhook,
        port: port('webhook'),
        metricsPort: port('webhookMetrics'),
        pki,
        flags: webhookFlags,
      }),
    ]);
    await Promise.all([
      motoReady,
      runtimeReady,
      controllerManager.ready(wait).then(() => mark('kube-controller-manager')),
      scheduler.ready(wait).then(() => mark('kube-scheduler')),
      node.ready(wait).then(() => mark(realNode ? 'kubelet' : 'kwok')),
      webhook.ready(wait).then(() => mark('pod-identity-webhook')),
      companion?.ready(wait).then(() => mark('pod-runtime')),
      awsCliServer?.ready(wait).then(() => mark('aws-cli-forkserver')),
    ]);

    // Nothing of the environment is reachable by another user of this machine: every listener is
    // on loopback, kwok's kubelet endpoint turns away clients without a certificate of the CA (a
    // binary named by IRSA_*_BIN that does otherwise is refused here).
    await checkClosedToOthers(started, realNode ? undefined : { proc: node.proc, port: port('kwok'), ca: pki.caPem });

    const credentials = motoCredentials(moto, motoCredsFile);
    registerSecret(credentials.secretAccessKey);
    const endpoint = `https://${LOOPBACK}:${port('moto')}`;
    const descriptor: TargetDescriptor = {
      name: 'embedded',
      envId,
      kubeconfigPath: pki.kubeconfigs.admin,
      kubeContext: 'irsa-embedded',
      aws: {
        region,
        endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
        accountId: credentials.accountId,
        caBundlePath: pki.caFile,
      },
      podAwsEnv: {
        AWS_ENDPOINT_URL: endpoint,
        AWS_REGION: region,
        AWS_DEFAULT_REGION: region,
        // In a real container the host's file is not there; the cluster's CA (the same) is.
        AWS_CA_BUNDLE: realNode ? POD_CA_BUNDLE : pki.caFile,
      },
      issuer: { mode: 'fixed', issuer, discoveryBucket: options.discoveryBucket },
      webhook: {
        mode: 'harness',
        url: `https://${LOOPBACK}:${port('webhook')}/mutate`,
        caBundle: Buffer.from(pki.caPem).toString('base64'),
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

/**
 * A port is chosen free (listening on port 0, then closing) and bound a moment later by the
 * component, the way envtest and Kubernetes' integration tests do; on a machine where other
 * harnesses probe ports too, another process can take it in between. A start whose component
 * failed with "address already in use" (each start's components are stopped and its directory
 * removed) is started again with new ports, at most twice, saying so; any other failure is final.
 */
export async function startEmbeddedTarget(options: EmbeddedOptions): Promise<EmbeddedTarget> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (e) {
      const clash = attempt < 3 && e instanceof StartError && PORT_CLASH.test(e.message);
      if (!clash) throw e;
      options.onProgress?.(
        `embedded: a component's port was taken by another process between choosing and binding it; starting again with new ports (attempt ${attempt + 1} of 3)`,
      );
    }
  }
}
const PORT_CLASH = /address already in use/i;

export { type EnvState, listeningPorts, stopEnvironmentFromState } from './env-state.ts';
export { checkWebhookFlags } from './webhook.ts';
export { readLogTail };
