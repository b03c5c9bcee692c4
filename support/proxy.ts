/**
 * Corporate proxies, as curl and Go read them from the environment: HTTPS_PROXY (https_proxy) for
 * https, HTTP_PROXY (http_proxy) for http, except the hosts NO_PROXY (no_proxy) names: a host, a
 * domain (`example.com` and `.example.com` both match its subdomains), `host:port`, an IP address,
 * a CIDR range, or `*` for none. Loopback addresses and `localhost` are never proxied (as Go does):
 * local emulators and port-forwards stay direct.
 *
 * The AWS clients and the anonymous GET use agents that decide per connection (EnvProxyHttpsAgent,
 * EnvProxyHttpAgent: a CONNECT tunnel through the proxy, or a direct connection); the Kubernetes
 * client gets the proxy as the kubeconfig cluster's proxy-url (withEnvProxy) unless the kubeconfig
 * names one itself. The proxy's credentials (user:password@) are registered for redaction.
 */
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Cluster, KubeConfig } from '@kubernetes/client-node';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';
import { registerSecret } from './redact.ts';

type Env = NodeJS.ProcessEnv;

const value = (env: Env, name: string): string | undefined => env[name] || env[name.toLowerCase()] || undefined;

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || /^127\./.test(h) || h === '::1';
}

/** True when NO_PROXY (no_proxy) exempts host:port. */
export function exempted(host: string, port: number, env: Env = process.env): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  for (const raw of (value(env, 'NO_PROXY') ?? '').split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    if (entry.includes('/') && isIP(h)) {
      const [net, bits] = entry.split('/');
      const type = isIP(net ?? '') === 6 ? 'ipv6' : 'ipv4';
      if (isIP(h) !== isIP(net ?? '')) continue;
      const list = new BlockList();
      try {
        list.addSubnet(net as string, Number(bits), type);
      } catch {
        continue;
      }
      if (list.check(h, type)) return true;
      continue;
    }
    const m = /^(.*?)(?::(\d+))?$/.exec(entry.replace(/^\[(.*)\]/, '$1'));
    const name = (m?.[1] ?? entry).replace(/^\*?\./, '');
    if (m?.[2] && Number(m[2]) !== port) continue;
    if (h === name || h.endsWith(`.${name}`)) return true;
  }
  return false;
}

/** The proxy URL a request to `url` goes through, or undefined for a direct connection. */
export function proxyFor(url: URL | string, env: Env = process.env): string | undefined {
  const u = typeof url === 'string' ? new URL(url) : url;
  const proxy = value(env, u.protocol === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY');
  if (!proxy) return undefined;
  const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
  if (isLoopback(u.hostname) || exempted(u.hostname, port, env)) return undefined;
  return proxy;
}

/** The proxy URL without its credentials, for messages; the password is registered as a secret. */
export function describeProxy(proxy: string): string {
  try {
    const u = new URL(proxy);
    if (u.password) registerSecret(decodeURIComponent(u.password));
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(an unparsable proxy URL)';
  }
}

type ConnectOptions = http.ClientRequestArgs & { host?: string | null; port?: number | string | null };
type Callback = (err: Error | null, stream: Duplex) => void;

function target(options: ConnectOptions, scheme: 'https:' | 'http:'): URL {
  const host = options.host ?? options.hostname ?? 'localhost';
  const port = options.port ?? (scheme === 'https:' ? 443 : 80);
  return new URL(`${scheme}//${isIP(host) === 6 ? `[${host}]` : host}:${port}`);
}

/**
 * An agent class that decides per connection: through the environment's proxy (hpagent's CONNECT
 * tunnel) or, for a host that needs none, directly (the plain agent's own connection).
 */
function envProxyAgent(
  Base: typeof HttpsProxyAgent | typeof HttpProxyAgent,
  scheme: 'https:' | 'http:',
  direct: (options: ConnectOptions) => Duplex | null | undefined,
) {
  const proxyVar = scheme === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  return class extends (Base as typeof HttpProxyAgent) {
    readonly env: Env;
    constructor(options: https.AgentOptions, env: Env = process.env) {
      // hpagent needs a proxy to be constructed; a connection that needs none never uses it.
      super({ ...options, proxy: value(env, proxyVar) ?? 'http://127.0.0.1:9' });
      this.env = env;
    }

    override createConnection(options: ConnectOptions, callback?: Callback): Duplex | null | undefined {
      if (proxyFor(target(options, scheme), this.env) === undefined) return direct.call(this, options);
      return super.createConnection(options, callback);
    }
  };
}

/** An https.Agent that tunnels through HTTPS_PROXY where the environment says so, else connects directly. */
export const EnvProxyHttpsAgent = envProxyAgent(
  HttpsProxyAgent,
  'https:',
  https.Agent.prototype.createConnection as (o: ConnectOptions) => Duplex | null | undefined,
) as unknown as new (
  options: https.AgentOptions,
  env?: Env,
) => https.Agent;

/** The same for plain http (emulators over http; a proxied one through a CONNECT tunnel). */
export const EnvProxyHttpAgent = envProxyAgent(HttpProxyAgent, 'http:', http.Agent.prototype.createConnection) as new (
  options: http.AgentOptions,
  env?: Env,
) => http.Agent;

/**
 * Gives the current cluster of a kubeconfig the environment's proxy as its proxy-url, unless the
 * kubeconfig names one or the server is exempted. Returns the proxy used, if any.
 */
export function withEnvProxy(kc: KubeConfig, env: Env = process.env): string | undefined {
  const cluster = kc.getCurrentCluster();
  if (!cluster || cluster.proxyUrl) return cluster?.proxyUrl;
  const proxy = proxyFor(cluster.server, env);
  if (!proxy) return undefined;
  const withProxy: Cluster = { ...cluster, proxyUrl: proxy };
  kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? withProxy : c));
  return proxy;
}
