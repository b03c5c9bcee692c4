/**
 * What every component of the embedded target shares: the Launch function index.ts hands each
 * component's start (it supervises the process, logs it to <logsDir>/<name>.log and stops it with
 * the environment), the readiness wait, the loopback address every component binds, the minimal
 * environment they run with, a GET over the environment's TLS, and the check that nothing of the
 * environment is open beyond loopback.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type SupervisedProcess, tcpListeners } from '../../process.ts';

export const LOOPBACK = '127.0.0.1';

/** Starts one supervised component process (index.ts: env defaults to cleanEnv(), cwd to the work directory). */
export type Launch = (
  name: string,
  command: string,
  args: string[],
  env?: Record<string, string>,
  cwd?: string,
) => Promise<SupervisedProcess>;

/** How long a readiness probe waits, and the start's abort (another component died). */
export interface ReadyWait {
  timeoutMs: number;
  signal: AbortSignal;
}

/** A started component: its process (which knows how to stop itself) and its readiness wait. */
export interface Component {
  proc: SupervisedProcess;
  ready(wait: ReadyWait): Promise<void>;
}

interface HttpResult {
  status: number;
  body: string;
}

export interface TlsMaterial {
  ca: string;
  cert?: string;
  key?: string;
}

/** One GET with a 2 s timeout; https when `tls` is given (trusting only the env's CA). */
export function get(url: string, tls?: TlsMaterial): Promise<HttpResult> {
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

/** A probe: GET https://127.0.0.1:<port>/healthz answers 200 (trusting only the env's CA). */
export function healthz(port: number, caPem: string): () => Promise<boolean> {
  return async () => (await get(`https://${LOOPBACK}:${port}/healthz`, { ca: caPem })).status === 200;
}

/** The serving flags of kube-controller-manager and kube-scheduler: loopback, the env's loopback certificate. */
export function servingFlags(port: number, tls: { cert: string; key: string }): string[] {
  return [
    `--bind-address=${LOOPBACK}`,
    `--secure-port=${port}`,
    `--tls-cert-file=${tls.cert}`,
    `--tls-private-key-file=${tls.key}`,
  ];
}

/** A minimal environment for components: nothing of the harness user's environment (AWS_*, KUBECONFIG) leaks in. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C.UTF-8',
    ...(process.env.TZ ? { TZ: process.env.TZ } : {}),
    ...extra,
  };
}

const LOOPBACK_ADDRESSES = new Set([LOOPBACK, '::1']);

/**
 * Refuses (StartError) a component listening beyond loopback, and a kwok that serves its kubelet
 * API (exec: commands as this user) without a client certificate, over TLS or plain HTTP.
 */
export async function checkClosedToOthers(
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
