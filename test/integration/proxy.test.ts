/**
 * Corporate networks (issue 15, item 6): HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured by the
 * AWS clients, the anonymous GET and the Kubernetes client, as curl and Go read them; loopback is
 * never proxied. A CONNECT proxy on 127.0.0.1 tunnels `<name>.proxy-test.invalid:<port>` to the
 * same port on 127.0.0.1 and records what it was asked for: a name that only the proxy resolves
 * shows that a request went through it, and NO_PROXY makes the same request fail at DNS instead.
 * The cases that need no child process or listener are test/unit/proxy.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { VersionApi } from '@kubernetes/client-node';
import { createClients } from '../../support/clients.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';
import { createCa, issueServingCert } from '../../support/tls.ts';
import { FakeKubeApi, fakeLiveDescriptor } from '../support/live-fake-kube.ts';

const SUFFIX = '.proxy-test.invalid';

describe('the clients go through the proxy', () => {
  let dir: string;
  let proxy: net.Server;
  let proxyPort: number;
  const asked: string[] = [];
  const authorizations: string[] = [];
  let sts: https.Server;
  let stsPort: number;
  let api: FakeKubeApi;
  let caFile: string;
  const saved = { ...process.env };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-proxy-'));
    // The proxy: CONNECT <name>.proxy-test.invalid:<port> (or a plain http request for that
    // absolute URL, as forward proxies serve http) reaches 127.0.0.1:<port>.
    const server = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://invalid');
      asked.push(u.host);
      authorizations.push(String(req.headers['proxy-authorization'] ?? ''));
      if (!u.hostname.endsWith(SUFFIX)) {
        res.writeHead(502);
        res.end();
        return;
      }
      const headers = { ...req.headers };
      delete headers['proxy-authorization'];
      const upstream = http.request(
        { host: '127.0.0.1', port: u.port, method: req.method, path: `${u.pathname}${u.search}`, headers },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      asked.push(req.url ?? '');
      authorizations.push(String(req.headers['proxy-authorization'] ?? ''));
      const [host, port] = (req.url ?? '').split(':');
      if (!host?.endsWith(SUFFIX)) {
        client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
        return;
      }
      const upstream = net.connect(Number(port), '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    proxy = server;
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyPort = (proxy.address() as AddressInfo).port;

    // An STS that answers GetCallerIdentity, with a certificate for its proxy-only name and 127.0.0.1.
    const ca = await createCa('irsa-proxy-test-ca');
    const cert = await issueServingCert(ca, { dnsSans: [`sts${SUFFIX}`], ipSans: ['127.0.0.1'] });
    caFile = path.join(dir, 'ca.pem');
    writeFileSync(caFile, ca.certPem);
    sts = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('anonymous ok');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>' +
            '<Arn>arn:aws:iam::111122223333:user/ops</Arn><UserId>AIDAEXAMPLE</UserId><Account>111122223333</Account>' +
            '</GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>',
        );
      });
    });
    await new Promise<void>((resolve) => sts.listen(0, '127.0.0.1', resolve));
    stsPort = (sts.address() as AddressInfo).port;

    api = await FakeKubeApi.start();
  });

  after(async () => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    proxy?.close();
    sts?.close();
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A descriptor whose cluster and AWS endpoint are reached by name (`host`) or on loopback. */
  function descriptor(host: (name: string) => string): TargetDescriptor {
    const port = new URL(api.url).port;
    const kubeconfigPath = path.join(dir, `kubeconfig-${host('x')}`);
    writeFileSync(
      kubeconfigPath,
      readFileSync(api.kubeconfigPath, 'utf8').replace(api.url, `http://${host('kube')}:${port}`),
    );
    return fakeLiveDescriptor(kubeconfigPath, {
      aws: {
        endpoint: `https://${host('sts')}:${stsPort}`,
        caBundlePath: caFile,
        forcePathStyle: true,
        eventuallyConsistent: false,
        credentials: { accessKeyId: 'AKIAPROXYTEST', secretAccessKey: 'proxy-test-secret' },
      },
    });
  }

  async function callEverything(d: TargetDescriptor) {
    const c = createClients(d);
    try {
      const id = await c.sts.send(new GetCallerIdentityCommand({}));
      const version = await c.kc.makeApiClient(VersionApi).getCode();
      const anonymous = await c.anonymousGet(`${d.aws.endpoint}/public.txt`);
      return { account: id.Account, version: version.gitVersion, anonymous: anonymous.body };
    } finally {
      c.destroy();
    }
  }

  it('HTTPS_PROXY / HTTP_PROXY: STS, the Kubernetes API and the anonymous GET go through it, with its credentials', async () => {
    asked.length = 0;
    authorizations.length = 0;
    process.env.HTTPS_PROXY = `http://ops:proxy-pw@127.0.0.1:${proxyPort}`;
    process.env.HTTP_PROXY = `http://ops:proxy-pw@127.0.0.1:${proxyPort}`;
    delete process.env.NO_PROXY;
    const r = await callEverything(descriptor((n) => `${n}${SUFFIX}`));
    assert.deepEqual(r, { account: '111122223333', version: 'v1.31.2', anonymous: 'anonymous ok' });
    const kubePort = new URL(api.url).port;
    assert.ok(asked.includes(`sts${SUFFIX}:${stsPort}`), `asked: ${asked.join(', ')}`);
    assert.ok(asked.includes(`kube${SUFFIX}:${kubePort}`), `asked: ${asked.join(', ')}`);
    const basic = `Basic ${Buffer.from('ops:proxy-pw').toString('base64')}`;
    assert.ok(
      authorizations.every((a) => a === basic),
      'every tunnel carried the proxy credentials',
    );
  });

  it('NO_PROXY exempts the names it lists: the same requests go direct (and fail at DNS here)', async () => {
    asked.length = 0;
    process.env.HTTPS_PROXY = `http://127.0.0.1:${proxyPort}`;
    process.env.HTTP_PROXY = `http://127.0.0.1:${proxyPort}`;
    process.env.NO_PROXY = SUFFIX;
    const d = descriptor((n) => `${n}${SUFFIX}`);
    const c = createClients(d);
    try {
      await assert.rejects(c.sts.send(new GetCallerIdentityCommand({})), /ENOTFOUND|getaddrinfo/);
      await assert.rejects(c.kc.makeApiClient(VersionApi).getCode(), /ENOTFOUND|getaddrinfo|fetch failed/);
    } finally {
      c.destroy();
    }
    assert.deepEqual(asked, [], 'the proxy was not asked');
  });

  it('loopback is never proxied', async () => {
    asked.length = 0;
    process.env.HTTPS_PROXY = `http://127.0.0.1:${proxyPort}`;
    process.env.HTTP_PROXY = `http://127.0.0.1:${proxyPort}`;
    delete process.env.NO_PROXY;
    const r = await callEverything(descriptor(() => '127.0.0.1'));
    assert.equal(r.account, '111122223333');
    assert.deepEqual(asked, []);
  });
});
