/**
 * Which requests go through a proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, loopback never), and the
 * proxy's credentials never in a message, in process. The clients going through a real proxy on
 * loopback are test/integration/proxy.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeProxy, exempted, proxyFor } from '../../support/proxy.ts';
import { redact } from '../../support/redact.ts';

describe('which requests go through a proxy', () => {
  const env = { HTTPS_PROXY: 'http://proxy.corp:3128', HTTP_PROXY: 'http://proxy.corp:3129' };
  it('https and http take their own proxy; loopback never does', () => {
    assert.equal(proxyFor('https://sts.us-east-1.example:443', env), 'http://proxy.corp:3128');
    assert.equal(proxyFor('http://emulator.example:4566', env), 'http://proxy.corp:3129');
    for (const local of ['https://127.0.0.1:6443', 'https://localhost:9443', 'http://[::1]:80', 'https://127.1.2.3'])
      assert.equal(proxyFor(local, env), undefined, local);
    assert.equal(proxyFor('https://x.example', {}), undefined, 'no proxy set');
    assert.equal(proxyFor('https://x.example', { https_proxy: 'http://p:1' }), 'http://p:1', 'lower case too');
  });

  it('NO_PROXY: hosts, domains with and without a dot, ports, IPs, CIDRs and *', () => {
    const no = (NO_PROXY: string, host: string, port = 443) => exempted(host, port, { NO_PROXY });
    assert.ok(no('api.cluster.example', 'api.cluster.example'));
    assert.ok(no('cluster.example', 'api.cluster.example'), 'a domain covers its subdomains');
    assert.ok(no('.cluster.example', 'api.cluster.example'));
    assert.ok(no('*.cluster.example', 'api.cluster.example'));
    assert.ok(!no('cluster.example', 'notcluster.example'), 'but not other names ending the same');
    assert.ok(no('api.example:6443', 'api.example', 6443));
    assert.ok(!no('api.example:6443', 'api.example', 443), 'a port names only that port');
    assert.ok(no('10.0.0.0/8', '10.1.2.3'));
    assert.ok(!no('10.0.0.0/8', '192.168.1.1'));
    assert.ok(no('fd00::/8', 'fd12::1'));
    assert.ok(no('10.1.2.3', '10.1.2.3'));
    assert.ok(no('*', 'anything.example'));
    assert.ok(no('a.example, b.example', 'b.example'), 'a list with spaces');
    assert.ok(!no('', 'a.example'));
  });

  it("the proxy's credentials never reach a message", () => {
    assert.equal(describeProxy('http://ops:s3cr3t-proxy-pw@proxy.corp:3128'), 'http://proxy.corp:3128');
    assert.equal(redact('proxy says s3cr3t-proxy-pw'), 'proxy says [REDACTED:registered]');
  });
});
