/**
 * amazon-eks-pod-identity-webhook of the embedded environment: the real binary, out of cluster,
 * admission over TLS with the environment's loopback certificate (v0.6.17 listens on ":<port>"
 * with no flag to change it: the set-up builds it with 127.0.0.1 as its listen address,
 * tools/build-go-components.sh). The setup's webhook flags are checked against the binary's
 * --help before anything starts. Ready when GET /healthz over TLS is 200.
 */
import { spawnSync } from 'node:child_process';
import { basename } from 'node:path';
import { UsageError } from '../../errors.ts';
import { WEBHOOK_LOG_FLAGS } from '../dialect.ts';
import { type Component, healthz, type Launch } from './component.ts';
import type { Pki } from './pki.ts';

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

export async function startWebhook(
  launch: Launch,
  c: { binary: string; port: number; metricsPort: number; pki: Pki; flags: Record<string, string> },
): Promise<Component> {
  const { pki } = c;
  const proc = await launch('pod-identity-webhook', c.binary, [
    '--in-cluster=false',
    `--kubeconfig=${pki.kubeconfigs.webhook}`,
    `--tls-cert=${pki.loopbackTls.cert}`,
    `--tls-key=${pki.loopbackTls.key}`,
    `--port=${c.port}`,
    `--metrics-port=${c.metricsPort}`,
    ...Object.entries({ ...WEBHOOK_LOG_FLAGS, ...c.flags }).map(([k, v]) => `--${k}=${v}`),
  ]);
  return {
    proc,
    ready: (wait) => proc.waitReady(healthz(c.port, pki.caPem), { what: 'GET /healthz over TLS', ...wait }),
  };
}
