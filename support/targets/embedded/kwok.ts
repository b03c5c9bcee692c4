/**
 * The kwok node of the embedded environment: kwok (the node; marks pods Running with kwok's own
 * stages, assets/kwok-stages.yaml, and serves exec to clients of the environment's CA only) and
 * the pod runtime companion (tokens via TokenRequest, kwok Exec objects; pod-runtime.ts), a Node
 * process that starts with wave 1 and waits for kube-apiserver.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreV1Api } from '@kubernetes/client-node';
import { repoRoot } from '../../paths.ts';
import { type Component, cleanEnv, get, type Launch, LOOPBACK } from './component.ts';
import type { Pki } from './pki.ts';
import { READY_ANNOTATION } from './pod-runtime.ts';
import type { PodRuntimeConfig } from './pod-runtime-main.ts';

export const NODE_NAME = 'kwok-node';

function nodeForCompanion(): string {
  return process.env.IRSA_NODE || process.execPath;
}

/** Starts the pod runtime companion; ready once its pod watch runs (it writes `readyFile`). */
export async function startPodRuntime(
  launch: Launch,
  c: { workDir: string; kubeconfig: string; podRootTemplate: string; podPath: string[] },
): Promise<Component> {
  const companionReady = join(c.workDir, 'pod-runtime.ready');
  const companionConfig: PodRuntimeConfig = {
    kubeconfigPath: c.kubeconfig,
    nodeName: NODE_NAME,
    nodeIp: LOOPBACK,
    podRootTemplate: c.podRootTemplate,
    pathPrefix: c.podPath,
    baseEnv: {},
    readyFile: companionReady,
  };
  const companionConfigFile = join(c.workDir, 'pod-runtime.json');
  writeFileSync(companionConfigFile, JSON.stringify(companionConfig, null, 2));
  const proc = await launch(
    'pod-runtime',
    nodeForCompanion(),
    ['--import', 'tsx', join(repoRoot, 'support/targets/embedded/pod-runtime-main.ts'), companionConfigFile],
    cleanEnv({ HOME: c.workDir, NODE_NO_WARNINGS: '1' }),
    // `--import tsx` resolves from the working directory.
    repoRoot,
  );
  return {
    proc,
    ready: (wait) => proc.waitReady(async () => existsSync(companionReady), { what: 'its pod watch', ...wait }),
  };
}

/** Starts kwok as the node NODE_NAME; ready when GET /healthz is 200 and the node is Ready. */
export async function startKwok(
  launch: Launch,
  c: { binary: string; workDir: string; port: number; pki: Pki; podPath: string[]; core: CoreV1Api },
): Promise<Component> {
  const { pki, port } = c;
  const kwokConfig = join(c.workDir, 'kwok.yaml');
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
  const proc = await launch(
    'kwok',
    c.binary,
    [
      `--kubeconfig=${pki.kubeconfigs.kwok}`,
      `--config=${kwokConfig}`,
      `--manage-single-node=${NODE_NAME}`,
      `--node-ip=${LOOPBACK}`,
      '--node-name=localhost',
      `--node-port=${port}`,
      `--server-address=${LOOPBACK}:${port}`,
      `--tls-cert-file=${pki.loopbackTls.cert}`,
      `--tls-private-key-file=${pki.loopbackTls.key}`,
      '--node-lease-duration-seconds=40',
      '--enable-crds=Exec',
    ],
    cleanEnv({
      HOME: c.workDir,
      PATH: [...c.podPath, cleanEnv().PATH].join(':'),
      // Its kubelet endpoint serves only clients of the CA (tools/go-overlays/kwok; kwok unsets it).
      IRSA_KWOK_CLIENT_CA_FILE: pki.caFile,
    }),
  );
  return {
    proc,
    ready: (wait) =>
      proc.waitReady(
        async () => {
          if ((await get(`https://${LOOPBACK}:${port}/healthz`, pki.adminTls)).status !== 200) return false;
          const node = await c.core.readNode({ name: NODE_NAME });
          return (node.status?.conditions ?? []).some((k) => k.type === 'Ready' && k.status === 'True');
        },
        { what: `GET /healthz and node ${NODE_NAME} Ready`, ...wait },
      ),
  };
}
