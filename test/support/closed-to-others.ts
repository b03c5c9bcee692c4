/**
 * What another user of the machine gets from a running embedded target (issue 16, item 3): every
 * TCP port its processes listen on (read from /proc, so nothing is missed), where it listens, and
 * what a client without credentials gets there. Shared by test/integration/embedded-target.test.ts (kwok node)
 * and test/integration/real-node.test.ts (real node).
 *
 * Each port is asked over TLS (no client certificate) and over plain HTTP. Refused means: the TLS
 * handshake fails (etcd, kwok), or the request is answered 401/403 (kube-apiserver, the
 * controllers' and the kubelet's secure ports, moto, kwok's plain HTTP), or 404 where a port serves
 * only URLs that carry their own secret or nothing at all (containerd's streaming server, the
 * kubelet's health port); a TLS server's 400 to plain HTTP counts as refused. The webhook is the exception, as in a cluster: it
 * answers admission reviews and serves metrics to whoever reaches it (kube-apiserver presents no
 * client certificate to it); its ports are on loopback only.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tcpListeners } from '../../support/process.ts';

export interface PortVerdict {
  component: string;
  address: string;
  port: number;
  /** What a client without credentials got. */
  got: string;
  refused: boolean;
}

function ask(
  tls: boolean,
  port: number,
  path: string,
  ca: string,
  method = 'GET',
  body?: string,
): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const options = { host: '127.0.0.1', port, path, method, timeout: 3000, ...(tls ? { ca } : {}) };
    const req = (tls ? httpsRequest : httpRequest)(options, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end(body);
  });
}

/** The path whose answer says whether an anonymous client gets anything of the component. */
const PROBES: Record<string, { path: string; method?: string; body?: string }> = {
  // The cluster's whole state (a range read of every key).
  etcd: { path: '/v3/kv/range', method: 'POST', body: JSON.stringify({ key: 'AA==', range_end: 'AA==' }) },
  // Served at all: exec and logs are behind the same TLS server.
  kwok: { path: '/healthz' },
  'kube-apiserver': { path: '/api/v1/namespaces/kube-system/secrets' },
  'kube-controller-manager': { path: '/metrics' },
  'kube-scheduler': { path: '/metrics' },
  kubelet: { path: '/pods' },
  moto: { path: '/' },
  'pod-identity-webhook': {
    path: '/mutate',
    method: 'POST',
    body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'x' } }),
  },
};

/** Every listening port of `processes`, probed without credentials (TLS first, then plain HTTP). */
export async function probeWithoutCredentials(
  processes: { name: string; pid: number }[],
  ca: string,
): Promise<PortVerdict[]> {
  const out: PortVerdict[] = [];
  for (const p of processes) {
    for (const l of tcpListeners([p.pid])) {
      const probe = PROBES[p.name] ?? { path: '/' };
      // Both ways in: TLS without a client certificate, and plain HTTP (a TLS server answers that 400).
      const overTls = await ask(true, l.port, probe.path, ca, probe.method, probe.body);
      const plain = await ask(false, l.port, probe.path, ca, probe.method, probe.body);
      const show = (r: { status?: number; error?: string }) =>
        r.status !== undefined ? `${r.status}` : `refused (${r.error})`;
      const got = `TLS ${show(overTls)}, plain HTTP ${show(plain)}`;
      const refused =
        (overTls.status === undefined || [401, 403, 404].includes(overTls.status)) &&
        (plain.status === undefined || [400, 401, 403, 404].includes(plain.status));
      out.push({ component: p.name, address: l.address, port: l.port, got, refused });
    }
  }
  return out;
}

/** Ports a client without credentials gets something from, other than the webhook's (see the header). */
export function openToStrangers(verdicts: PortVerdict[]): PortVerdict[] {
  return verdicts.filter((v) => !v.refused && v.component !== 'pod-identity-webhook');
}
