/**
 * Where the embedded target's component binaries are: the cache that tools/build-go-components.sh
 * fills ($IRSA_BIN_DIR, default $IRSA_CACHE/bin or ~/.cache/irsa-conformance/bin, one directory per
 * component and version from tools/versions.env), or binaries the user already has.
 *
 * Overrides, most specific first:
 *   IRSA_KUBE_APISERVER_BIN, IRSA_KUBE_CONTROLLER_MANAGER_BIN, IRSA_KUBE_SCHEDULER_BIN,
 *   IRSA_ETCD_BIN, IRSA_KWOK_BIN, IRSA_WEBHOOK_BIN   one file each;
 *   IRSA_KUBE_BIN_DIR   a directory holding kube-apiserver (and possibly etcd, kube-controller-manager,
 *                       kube-scheduler), e.g. controller-runtime envtest's downloaded assets.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../errors.ts';
import { cacheDirFor } from '../../paths.ts';
import { readVersions } from '../../versions.ts';

export interface ComponentBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kwok: string;
  webhook: string;
}

export function binDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.IRSA_BIN_DIR || join(cacheDirFor(env), 'bin');
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

interface Lookup {
  binary: string;
  /** Environment variable naming this one file. */
  fileVar: string;
  /** Directory in the cache, from versions.env. */
  cacheSubdir: string;
  /** Whether IRSA_KUBE_BIN_DIR may hold it. */
  kubeDir: boolean;
}

function find(lookup: Lookup, env: NodeJS.ProcessEnv): string {
  const explicit = env[lookup.fileVar];
  const candidates: string[] = [];
  if (explicit) candidates.push(explicit);
  else {
    if (lookup.kubeDir && env.IRSA_KUBE_BIN_DIR) candidates.push(join(env.IRSA_KUBE_BIN_DIR, lookup.binary));
    candidates.push(join(binDir(env), lookup.cacheSubdir, lookup.binary));
  }
  const found = candidates.find(executable);
  if (found) return found;
  const where = candidates.join(' or ');
  throw new UsageError(
    `${lookup.binary} not found (looked at ${where})`,
    `run npm run conformance (it builds them) or set ${lookup.fileVar}${lookup.kubeDir ? ' or IRSA_KUBE_BIN_DIR' : ''} to an existing binary`,
  );
}

/** Resolves every binary or throws a UsageError naming the first one missing. */
export function resolveBinaries(env: NodeJS.ProcessEnv = process.env, versions = readVersions()): ComponentBinaries {
  const v = (key: string): string => {
    const value = versions[key];
    if (!value) throw new UsageError(`tools/versions.env has no ${key}`, 'restore tools/versions.env from git');
    return value;
  };
  const kube = `kubernetes-${v('KUBERNETES_VERSION')}`;
  return {
    etcd: find(
      { binary: 'etcd', fileVar: 'IRSA_ETCD_BIN', cacheSubdir: `etcd-${v('ETCD_VERSION')}`, kubeDir: true },
      env,
    ),
    kubeApiserver: find(
      { binary: 'kube-apiserver', fileVar: 'IRSA_KUBE_APISERVER_BIN', cacheSubdir: kube, kubeDir: true },
      env,
    ),
    kubeControllerManager: find(
      {
        binary: 'kube-controller-manager',
        fileVar: 'IRSA_KUBE_CONTROLLER_MANAGER_BIN',
        cacheSubdir: kube,
        kubeDir: true,
      },
      env,
    ),
    kubeScheduler: find(
      { binary: 'kube-scheduler', fileVar: 'IRSA_KUBE_SCHEDULER_BIN', cacheSubdir: kube, kubeDir: true },
      env,
    ),
    kwok: find(
      {
        binary: 'kwok',
        fileVar: 'IRSA_KWOK_BIN',
        cacheSubdir: `kwok-${v('KWOK_VERSION')}-${v('KWOK_OVERLAY')}`,
        kubeDir: false,
      },
      env,
    ),
    webhook: find(
      {
        binary: 'amazon-eks-pod-identity-webhook',
        fileVar: 'IRSA_WEBHOOK_BIN',
        cacheSubdir: `pod-identity-webhook-${v('POD_IDENTITY_WEBHOOK_VERSION')}-${v('POD_IDENTITY_WEBHOOK_OVERLAY')}`,
        kubeDir: false,
      },
      env,
    ),
  };
}
