/**
 * Entry point of the pod runtime companion as its own process (see pod-runtime.ts), started and
 * stopped by the embedded target like every other component. Usage:
 *   node --import tsx pod-runtime-main.ts <config.json>
 * The config file names the kubeconfig, the kwok node and the pod root; once the pod watch is
 * established the process creates the config's readyFile (its readiness signal).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { KubeConfig, VersionApi } from '@kubernetes/client-node';
import { PodRuntimeCompanion } from './pod-runtime.ts';

export interface PodRuntimeConfig {
  kubeconfigPath: string;
  nodeName: string;
  nodeIp: string;
  podRootTemplate: string;
  pathPrefix: string[];
  baseEnv: Record<string, string>;
  readyFile: string;
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: pod-runtime-main.ts <config.json>\n');
  process.exit(2);
}
const config = JSON.parse(readFileSync(file, 'utf8')) as PodRuntimeConfig;
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(config.kubeconfigPath);

const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
const companion = new PodRuntimeCompanion({
  kubeConfig,
  nodeName: config.nodeName,
  nodeIp: config.nodeIp,
  podRootTemplate: config.podRootTemplate,
  pathPrefix: config.pathPrefix,
  baseEnv: config.baseEnv,
  log,
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  companion.stop().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

// Started together with kube-apiserver (to hide this process's own start-up time): wait for it.
const version = kubeConfig.makeApiClient(VersionApi);
for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
  try {
    await version.getCode();
    break;
  } catch {
    if (stopping) process.exit(0);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
await companion.start();
writeFileSync(config.readyFile, String(process.pid));
log(`watching pods on node ${config.nodeName}`);
