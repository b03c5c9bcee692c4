/**
 * The docker target's AWS side, run here without Docker:
 * - assets/moto_in_container.py (what the moto container runs) with this machine's moto, on
 *   loopback: one moto behind an https listener (the harness, the issuer) and an http listener
 *   (pods), sharing their state, IAM enforced on both, a clean stop on SIGTERM;
 * - the capability probe against it (enforces-iam, validates-tokens, evaluates-trust-policies: yes)
 *   and against moto without enforcement, which behaves like LocalStack community here (all three
 *   no, with the reasons the skipped scenarios show).
 * Needs the project's Python environment (tools/python-env.sh); skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { IAM_NOT_ENFORCED, probeCapabilities } from '../../support/capabilities.ts';
import { createClients } from '../../support/clients.ts';
import { loadConfig } from '../../support/config.ts';
import { Ledger } from '../../support/ledger.ts';
import { repoRoot } from '../../support/paths.ts';
import { freeLoopbackPort, SupervisedProcess } from '../../support/process.ts';
import { UPSTREAM_DEFAULT_DIALECT } from '../../support/targets/dialect.ts';
import type { TargetDescriptor } from '../../support/targets/target.ts';
import { createCa, issueServingCert } from '../../support/tls.ts';

const region = 'us-east-1';

function venvPython(): string | { skip: string } {
  try {
    const venv =
      process.env.IRSA_VENV ||
      execFileSync('bash', [join(repoRoot, 'tools/python-env.sh')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    const python = join(venv, 'bin/python');
    return existsSync(python) ? python : { skip: `no Python in ${venv}` };
  } catch (e) {
    return { skip: `the project's Python environment is not available: ${(e as Error).message.split('\n')[0]}` };
  }
}

const python = venvPython();
const skip = typeof python === 'string' ? false : python.skip;

interface Emulator {
  proc: SupervisedProcess;
  httpsEndpoint: string;
  httpEndpoint?: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

describe('the docker target AWS emulator, without Docker', { skip }, () => {
  let dir: string;
  let caPem: string;
  let caFile: string;
  let enforced: Emulator;
  let plain: Emulator;
  const cleanEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), PYTHONDONTWRITEBYTECODE: '1' };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'irsa-docker-emulator-test-'));
    const ca = await createCa('irsa docker emulator test');
    const serving = await issueServingCert(ca, { ipSans: ['127.0.0.1'], dnsSans: ['localhost', 'irsa-aws'] });
    caPem = ca.certPem;
    caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, ca.certPem);
    writeFileSync(join(dir, 'tls.crt'), serving.certPem);
    writeFileSync(join(dir, 'tls.key'), serving.keyPem, { mode: 0o600 });
    const credsFile = join(dir, 'admin.json');
    const [httpsPort, httpPort, plainPort] = await Promise.all([
      freeLoopbackPort(),
      freeLoopbackPort(),
      freeLoopbackPort(),
    ]);
    const proc = await SupervisedProcess.start({
      name: 'moto-in-container',
      command: python as string,
      args: [
        join(repoRoot, 'support/targets/docker/assets/moto_in_container.py'),
        '--host',
        '127.0.0.1',
        '--https-port',
        String(httpsPort),
        '--http-port',
        String(httpPort),
        '--tls-cert',
        join(dir, 'tls.crt'),
        '--tls-key',
        join(dir, 'tls.key'),
        '--region',
        region,
        '--admin-credentials-out',
        credsFile,
        '--launcher-dir',
        join(repoRoot, 'tools/moto'),
      ],
      env: cleanEnv,
      logFile: join(dir, 'moto-in-container.log'),
    });
    await proc.waitReady(async () => existsSync(credsFile), { what: 'the credentials file', timeoutMs: 60_000 });
    const creds = JSON.parse(readFileSync(credsFile, 'utf8')) as {
      accessKeyId: string;
      secretAccessKey: string;
      endpoint: string;
      httpPort: string;
    };
    assert.equal(creds.endpoint, `https://127.0.0.1:${httpsPort}`);
    assert.equal(creds.httpPort, String(httpPort));
    enforced = {
      proc,
      httpsEndpoint: creds.endpoint,
      httpEndpoint: `http://127.0.0.1:${httpPort}`,
      credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    };
    // moto without any enforcement: what LocalStack community does about IAM.
    const plainProc = await SupervisedProcess.start({
      name: 'moto-plain',
      command: python as string,
      args: [
        '-m',
        'moto.server',
        '-H',
        '127.0.0.1',
        '-p',
        String(plainPort),
        '-c',
        join(dir, 'tls.crt'),
        '-k',
        join(dir, 'tls.key'),
      ],
      env: cleanEnv,
      logFile: join(dir, 'moto-plain.log'),
    });
    const endpoint = `https://127.0.0.1:${plainPort}`;
    await plainProc.waitReady(
      () =>
        new Promise<boolean>((resolve) => {
          https
            .get(`${endpoint}/`, { ca: caPem, timeout: 2000 }, (res) => {
              res.resume();
              resolve(true);
            })
            .on('error', () => resolve(false));
        }),
      { what: 'an https answer', timeoutMs: 60_000 },
    );
    plain = {
      proc: plainProc,
      httpsEndpoint: endpoint,
      credentials: { accessKeyId: 'AKIAIRSADOCKERTEST01', secretAccessKey: 'plain-moto-accepts-anything' },
    };
  });

  after(async () => {
    await Promise.all([enforced?.proc.stop(), plain?.proc.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const s3 = (endpoint: string, credentials: { accessKeyId: string; secretAccessKey: string }) =>
    new S3Client({
      region,
      endpoint,
      forcePathStyle: true,
      credentials,
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: caPem }) }),
    });

  it('serves one moto on https (harness) and http (pods): a bucket made on one is listed on the other', async () => {
    const bucket = 'irsa-docker-shared-state';
    await s3(enforced.httpsEndpoint, enforced.credentials).send(new CreateBucketCommand({ Bucket: bucket }));
    const listed = await s3(enforced.httpEndpoint as string, enforced.credentials).send(new ListBucketsCommand({}));
    assert.ok(
      (listed.Buckets ?? []).some((b) => b.Name === bucket),
      `the http listener does not see ${bucket}: ${JSON.stringify(listed.Buckets)}`,
    );
  });

  it('enforces IAM on both listeners: an unsigned ListBuckets is refused', async () => {
    for (const endpoint of [enforced.httpsEndpoint, enforced.httpEndpoint as string]) {
      const status = await new Promise<number>((resolve, reject) => {
        const get = endpoint.startsWith('https') ? https.get : http.get;
        get(`${endpoint}/`, { ca: caPem, timeout: 5000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
      assert.equal(status, 403, `anonymous GET ${endpoint}/ returned ${status}`);
    }
  });

  const probe = async (e: Emulator) => {
    const config = loadConfig({ IRSA_TARGET: 'docker', IRSA_REPORTS_DIR: dir });
    // A cluster that does not answer: the pod probes fail, the AWS probes do not depend on them.
    const kubeconfigPath = join(dir, `kubeconfig-${e.proc.pid}`);
    writeFileSync(
      kubeconfigPath,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]',
        'users: [{name: none, user: {token: none}}]',
        'contexts: [{name: none, context: {cluster: none, user: none}}]',
        'current-context: none',
        '',
      ].join('\n'),
    );
    const target: TargetDescriptor = {
      name: 'docker',
      envId: 'envtest',
      kubeconfigPath,
      aws: {
        region,
        endpoint: e.httpsEndpoint,
        forcePathStyle: true,
        credentials: e.credentials,
        accountId: '123456789012',
        caBundlePath: caFile,
      },
      podAwsEnv: {},
      issuer: { mode: 'fixed', issuer: `${e.httpsEndpoint}/irsa-oidc-envtest`, discoveryBucket: 'irsa-oidc-envtest' },
      webhook: { mode: 'harness-service', namespace: 'x', serviceName: 'x', path: '/mutate', caBundle: '' },
      dialect: UPSTREAM_DEFAULT_DIALECT,
      podRoot: '',
      logs: {},
    };
    const clients = createClients(target);
    try {
      return await probeCapabilities({
        clients,
        target,
        config,
        runId: `icdk${e.proc.pid.toString(36).slice(-2)}`,
        ledger: new Ledger(join(dir, `ledger-${e.proc.pid}.jsonl`)),
        issuer: target.issuer.mode === 'fixed' ? target.issuer.issuer : '',
        log: () => undefined,
      });
    } finally {
      clients.destroy();
    }
  };

  it('the capability probe finds IAM enforced on the moto the docker target runs', async () => {
    const m = await probe(enforced);
    assert.equal(m['enforces-iam'].available, true, m['enforces-iam'].reason);
    assert.equal(m['https-issuer'].available, true, m['https-issuer'].reason);
    assert.equal(m['runs-pods'].available, false, 'no cluster answers in this test');
    // The container runs the embedded target's STS validator: measured against a probe issuer.
    assert.equal(m['validates-tokens'].available, true, m['validates-tokens'].reason);
    assert.equal(m['evaluates-trust-policies'].available, true, m['evaluates-trust-policies'].reason);
  });

  it('without enforcement (LocalStack community), enforces-iam is no with the reason the skipped scenario shows', async () => {
    const m = await probe(plain);
    assert.equal(m['enforces-iam'].available, false, m['enforces-iam'].reason);
    assert.ok(m['enforces-iam'].reason.startsWith(IAM_NOT_ENFORCED), `reason: ${m['enforces-iam'].reason}`);
    assert.match(
      m['enforces-iam'].reason,
      /the target does not enforce IAM policies \(use LocalStack with ENFORCE_IAM and an auth token, or moto\)/,
    );
    // Plain moto, like LocalStack, accepts any token: the probes say so, and the trust scenarios are skipped.
    assert.equal(m['validates-tokens'].available, false, m['validates-tokens'].reason);
    assert.match(m['validates-tokens'].reason, /accepted a token signed by a key the issuer does not publish/);
    assert.equal(m['evaluates-trust-policies'].available, false, m['evaluates-trust-policies'].reason);
  });

  it('stops cleanly on SIGTERM and removes its credentials file', async () => {
    await enforced.proc.stop();
    const exit = await enforced.proc.exited;
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}; log:\n${enforced.proc.tail(10)}`);
    assert.equal(existsSync(join(dir, 'admin.json')), false);
    const log = readFileSync(enforced.proc.logFile, 'utf8');
    assert.ok(!log.includes(enforced.credentials.secretAccessKey), 'the secret key is never logged');
    assert.match(log, /\[moto\] ready on https:\/\/127\.0\.0\.1:\d+ and http:\/\/127\.0\.0\.1:\d+/);
  });
});
