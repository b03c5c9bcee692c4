/**
 * A fake Kubernetes API for the live target's tests: a plain HTTP server on 127.0.0.1 answering the
 * few endpoints a test registers (exact "METHOD /path" or a function), 404 Status otherwise, and
 * recording every request (method, path, content type, parsed body). Also serves any other
 * static document a test needs over the same port (e.g. a discovery document). Writes a
 * kubeconfig for it; stop() closes the server and removes the kubeconfig.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../support/config.ts';
import { liveConnectionDescriptor } from '../../support/targets/live/index.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string;
  body: unknown;
}

export type FakeAnswer = { status?: number; body: unknown; contentType?: string };
export type Route = FakeAnswer | ((req: FakeRequest) => FakeAnswer);

export class FakeKubeApi {
  readonly requests: FakeRequest[] = [];
  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    readonly kubeconfigPath: string,
    private readonly dir: string,
    readonly routes: Map<string, Route>,
  ) {}

  static async start(routes: Record<string, Route> = {}): Promise<FakeKubeApi> {
    const table = new Map<string, Route>(
      Object.entries({ 'GET /version': { body: { gitVersion: 'v1.31.2' } }, ...routes }),
    );
    let api: FakeKubeApi | undefined;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const u = new URL(req.url ?? '/', 'http://127.0.0.1');
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON: kept as text
        }
        const fr: FakeRequest = {
          method: req.method ?? 'GET',
          path: u.pathname,
          query: u.searchParams,
          contentType: String(req.headers['content-type'] ?? ''),
          body,
        };
        api?.requests.push(fr);
        const route = table.get(`${fr.method} ${fr.path}`);
        const answer: FakeAnswer = route
          ? typeof route === 'function'
            ? route(fr)
            : route
          : {
              status: 404,
              body: {
                kind: 'Status',
                apiVersion: 'v1',
                status: 'Failure',
                reason: 'NotFound',
                code: 404,
                message: `${fr.path} not found`,
              },
            };
        res.writeHead(answer.status ?? 200, { 'content-type': answer.contentType ?? 'application/json' });
        res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const dir = mkdtempSync(path.join(tmpdir(), 'irsa-fake-kube-'));
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfigPath,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: fake',
        '  cluster:',
        `    server: ${url}`,
        // client-node refuses plain http unless told the connection is not verified (loopback test server).
        '    insecure-skip-tls-verify: true',
        'users:',
        '- name: fake-admin',
        '  user:',
        '    token: fake-admin-token-for-tests',
        'contexts:',
        '- name: fake',
        '  context: {cluster: fake, user: fake-admin}',
        'current-context: fake',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    api = new FakeKubeApi(server, url, kubeconfigPath, dir, table);
    return api;
  }

  route(key: string, route: Route): void {
    this.routes.set(key, route);
  }

  /** Requests that would change something: not GET. */
  writes(): FakeRequest[] {
    return this.requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD');
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An unsigned JWT with the given claims: enough for code that only decodes tokens. */
export function unsignedJwt(claims: Record<string, unknown>, kid = 'test-kid'): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${b64({ alg: 'RS256', kid })}.${b64({ iat: now, exp: now + 600, ...claims })}.${Buffer.from('sig').toString('base64url')}`;
}

/** A TokenRequest answer carrying `iss` (and the ServiceAccount's sub). */
export function tokenRequestRoute(
  issuer: () => string,
  audience = 'sts.amazonaws.com',
): (req: FakeRequest) => FakeAnswer {
  return (req) => {
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)\/token$/.exec(req.path);
    const aud = (req.body as { spec?: { audiences?: string[] } } | undefined)?.spec?.audiences ?? [audience];
    return {
      status: 201,
      body: {
        kind: 'TokenRequest',
        apiVersion: 'authentication.k8s.io/v1',
        status: {
          token: unsignedJwt({ iss: issuer(), aud, sub: `system:serviceaccount:${m?.[1]}:${m?.[2]}` }),
          expirationTimestamp: new Date(Date.now() + 600_000).toISOString(),
        },
      },
    };
  };
}

/** PEM text of a public key with the given label; `der` defaults to SPKI. */
export function pem(label: string, der: Buffer): string {
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export function rsaPublicKey() {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
}

/** The live target's own descriptor of a test cluster (what createClients needs); `aws` merges. */
export function fakeLiveDescriptor(
  kubeconfigPath: string,
  overrides: Omit<Partial<TargetDescriptor>, 'aws'> & { aws?: Partial<TargetDescriptor['aws']> } = {},
): TargetDescriptor {
  const { aws, ...rest } = overrides;
  const base = liveConnectionDescriptor(loadConfig({}), {
    kubeconfigPath,
    server: 'https://fake',
    region: 'us-east-1',
  });
  return { ...base, ...rest, aws: { ...base.aws, accountId: '111122223333', ...aws } };
}
