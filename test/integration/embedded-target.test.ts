/**
 * Integration test of the embedded target (issue 2, "Done when"): starts the real components,
 * registers the pod identity webhook, runs a Deployment through controller-manager → webhook →
 * scheduler → kwok, execs into the pod through the API server, checks the projected token, the
 * AWS emulator (anonymous public read, IAM enforcement) and that removing the webhook
 * configuration leaves new pods unmutated; after stop nothing may be left: no process, port or
 * temporary directory.
 *
 * Needs the built component binaries (npm run conformance builds them); without them the test is
 * skipped with the reason. Tokens are decoded, never printed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateAccessKeyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { CreateBucketCommand, PutBucketPolicyCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod, Watch } from '@kubernetes/client-node';
import { type Clients, createClients } from '../../support/clients.ts';
import { isUsageError, StartError } from '../../support/errors.ts';
import { repoRoot } from '../../support/paths.ts';
import { groupAlive, portListening } from '../../support/process.ts';
import { publicReadPolicy } from '../../support/provision/infrastructure.ts';
import { resolveBinaries } from '../../support/targets/embedded/binaries.ts';
import {
  type EmbeddedTarget,
  type EnvState,
  startEmbeddedTarget,
  stopEnvironmentFromState,
} from '../../support/targets/embedded/index.ts';
import { execInPod } from '../../support/targets/embedded/pod-runtime.ts';
import { binariesMissing } from '../support/binaries.ts';
import { openToStrangers, probeWithoutCredentials } from '../support/closed-to-others.ts';

const NS = 'irsa-embedded-test';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/x';
const WEBHOOK_CONFIG = 'irsa-embedded-test-pod-identity-webhook';

function decodeJwtPayload(token: string): Record<string, unknown> {
  const parts = token.trim().split('.');
  assert.equal(parts.length, 3, 'the token file holds a JWT (three dot-separated parts)');
  return JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function ready(pod: V1Pod): boolean {
  return (
    pod.status?.phase === 'Running' &&
    (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** Resolves with the first pod matching the selector that is Running and Ready (watch, not poll). */
async function waitForReadyPod(kc: KubeConfig, namespace: string, labelSelector: string, timeoutMs: number) {
  let abort: AbortController | undefined;
  let last: V1Pod | undefined;
  try {
    return await new Promise<V1Pod>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no Ready pod for ${labelSelector} within ${timeoutMs} ms; last seen: ${last?.metadata?.name} ${last?.status?.phase} ${JSON.stringify(last?.status?.conditions ?? [])}`,
            ),
          ),
        timeoutMs,
      );
      new Watch(kc)
        .watch(
          `/api/v1/namespaces/${namespace}/pods`,
          { labelSelector },
          (_type, pod: V1Pod) => {
            last = pod;
            if (ready(pod)) {
              clearTimeout(timer);
              resolve(pod);
            }
          },
          (err) => {
            if (err) reject(err);
          },
        )
        .then((a) => {
          abort = a;
        }, reject);
    });
  } finally {
    abort?.abort();
  }
}

const missing = binariesMissing();

describe('embedded target', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 240_000,
}, () => {
  let target: EmbeddedTarget;
  let clients: Clients;
  let pod: V1Pod;
  let componentDied: (name: string) => void = () => undefined;
  const died = new Promise<string>((resolve) => {
    componentDied = resolve;
  });

  before(async () => {
    const logsDir = join(repoRoot, 'reports/logs/test-embedded-target');
    mkdirSync(logsDir, { recursive: true });
    target = await startEmbeddedTarget({
      logsDir,
      discoveryBucket: 'irsa-test-discovery',
      webhookFlags: { 'token-audience': 'sts.amazonaws.com', 'annotation-prefix': 'eks.amazonaws.com' },
      onProgress: (line) => process.stderr.write(`${line}\n`),
      onUnexpectedExit: (component) => componentDied(component),
    });
    clients = createClients(target.descriptor);
  });

  after(async () => {
    clients?.destroy();
    if (!target) return;
    await target.stop();
    await target.stop(); // idempotent
    const alive = target.state.processes.filter((p) => groupAlive(p.pid)).map((p) => `${p.name}(${p.pid})`);
    assert.deepEqual(alive, [], 'no started process group is left');
    const listening: string[] = [];
    for (const [name, port] of Object.entries(target.state.ports)) {
      if (await portListening(port)) listening.push(`${name}:${port}`);
    }
    assert.deepEqual(listening, [], 'no port of the environment is listening');
    assert.equal(existsSync(target.state.workDir), false, 'the temporary directory is removed');
  });

  it('serves /readyz', async () => {
    const opts: https.RequestOptions = {};
    await clients.kc.applyToHTTPSOptions(opts);
    const url = new URL('/readyz?verbose', clients.kc.getCurrentCluster()?.server);
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      https
        .get(url, opts, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString('utf8');
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        })
        .on('error', reject);
    });
    assert.equal(body.status, 200, body.text);
    assert.match(body.text, /readyz check passed/);
  });

  it('runs a Deployment whose pod the real webhook mutated, and execs into it', async () => {
    const { url, caBundle } = target.descriptor.webhook as { url: string; caBundle: string };
    await clients.admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: WEBHOOK_CONFIG },
        webhooks: [
          {
            name: 'pod-identity-webhook.amazonaws.com',
            // Fail, not Ignore: a broken registration must fail this test loudly.
            failurePolicy: 'Fail',
            clientConfig: { url, caBundle },
            objectSelector: {
              matchExpressions: [{ key: 'eks.amazonaws.com/skip-pod-identity-webhook', operator: 'DoesNotExist' }],
            },
            rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
            sideEffects: 'None',
            // v0.6.17 answers without apiVersion/kind, which kube-apiserver only accepts for v1beta1.
            admissionReviewVersions: ['v1beta1'],
          },
        ],
      },
    });
    await clients.core.createNamespace({ body: { metadata: { name: NS } } });
    await clients.core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: 's3-manager', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } } },
    });
    const env = Object.entries(target.descriptor.podAwsEnv).map(([name, value]) => ({ name, value }));
    await clients.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'app' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'app' } },
          template: {
            metadata: { labels: { app: 'app' } },
            spec: {
              serviceAccountName: 's3-manager',
              containers: [{ name: 'aws-cli', image: 'amazon/aws-cli', command: ['sleep', 'infinity'], env }],
            },
          },
        },
      },
    });
    pod = await waitForReadyPod(clients.kc, NS, 'app=app', 60_000);

    const container = pod.spec?.containers[0];
    const envNames = (container?.env ?? []).map((e) => e.name);
    assert.ok(envNames.includes('AWS_ROLE_ARN'), `AWS_ROLE_ARN injected (env: ${envNames.join(', ')})`);
    assert.ok(envNames.includes('AWS_WEB_IDENTITY_TOKEN_FILE'), 'AWS_WEB_IDENTITY_TOKEN_FILE injected');
    const volume = pod.spec?.volumes?.find((v) => v.name === 'aws-iam-token');
    assert.ok(volume, 'the aws-iam-token volume is injected');
    assert.equal(volume.projected?.sources?.[0]?.serviceAccountToken?.audience, 'sts.amazonaws.com');

    const name = pod.metadata?.name as string;
    const envOut = await execInPod(clients.kc, NS, name, 'aws-cli', ['env']);
    assert.equal(envOut.exitCode, 0, `exec env succeeds: ${envOut.stderr}`);
    assert.match(envOut.stdout, new RegExp(`^AWS_ROLE_ARN=${ROLE_ARN}$`, 'm'));

    const tokenOut = await execInPod(clients.kc, NS, name, 'aws-cli', [
      'sh',
      '-c',
      'cat "$AWS_WEB_IDENTITY_TOKEN_FILE"',
    ]);
    assert.equal(tokenOut.exitCode, 0, `reading the token file through exec succeeds: ${tokenOut.stderr}`);
    const claims = decodeJwtPayload(tokenOut.stdout);
    const issuer = target.descriptor.issuer as { issuer: string };
    assert.equal(claims.iss, issuer.issuer);
    assert.deepEqual(claims.aud, ['sts.amazonaws.com']);
    assert.equal(claims.sub, `system:serviceaccount:${NS}:s3-manager`);
    const bound = (claims['kubernetes.io'] as { pod?: { name?: string } } | undefined)?.pod?.name;
    assert.equal(bound, name, 'the token is bound to the pod');
  });

  it('serves public objects anonymously over https with the env CA', async () => {
    const bucket = 'irsa-test-public';
    await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'hello.json',
        Body: '{"hello":"world"}',
        ContentType: 'application/json',
      }),
    );
    await clients.s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: publicReadPolicy(bucket) }));
    const res = await clients.anonymousGet(`${target.descriptor.aws.endpoint}/${bucket}/hello.json`);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), { hello: 'world' });
  });

  it('refuses a signed PutObject outside the caller policy', async (t) => {
    if (!target.enforcesIam) {
      t.skip('moto runs without the IAM-enforcing launcher (IRSA_MOTO_MODE=plain or tools/moto/launcher.py missing)');
      return;
    }
    await clients.iam.send(new CreateUserCommand({ UserName: 'no-permissions' }));
    const key = await clients.iam.send(new CreateAccessKeyCommand({ UserName: 'no-permissions' }));
    const s3 = new S3Client({
      ...clients.awsClientOptions({
        accessKeyId: key.AccessKey?.AccessKeyId as string,
        secretAccessKey: key.AccessKey?.SecretAccessKey as string,
      }),
      forcePathStyle: true,
    });
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: 'irsa-test-public', Key: 'denied.txt', Body: 'x' })),
      (e: Error) => e.name === 'AccessDenied',
    );
  });

  it('creates pods unmutated once the webhook configuration is removed', async () => {
    const podBody = (name: string): V1Pod => ({
      metadata: { name },
      spec: {
        serviceAccountName: 's3-manager',
        containers: [{ name: 'c', image: 'busybox', command: ['sleep', '1d'] }],
      },
    });
    const mutated = (p: V1Pod) =>
      (p.spec?.volumes ?? []).some((v) => v.name === 'aws-iam-token') ||
      (p.spec?.containers[0]?.env ?? []).some((e) => e.name === 'AWS_ROLE_ARN');
    // Control: with the configuration in place the same pod is mutated, so the final check can fail.
    const control = await clients.core.createNamespacedPod({ namespace: NS, body: podBody('control'), dryRun: 'All' });
    assert.equal(mutated(control), true, 'control pod is mutated while the webhook is registered');

    await clients.admission.deleteMutatingWebhookConfiguration({ name: WEBHOOK_CONFIG });
    // kube-apiserver drops the webhook when its configuration informer sees the deletion; wait for
    // that with dry-run creates (bounded), then create the real pod.
    const deadline = Date.now() + 15_000;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      const probe = await clients.core.createNamespacedPod({ namespace: NS, body: podBody('probe'), dryRun: 'All' });
      if (!mutated(probe)) break;
      assert.ok(
        Date.now() < deadline,
        'kube-apiserver still calls the webhook 15 s after its configuration was deleted',
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    const plain = await clients.core.createNamespacedPod({ namespace: NS, body: podBody('unmutated') });
    assert.equal(mutated(plain), false, 'a pod created without the webhook configuration is not mutated');
  });

  it('removes the pod runtime files with the pod', async () => {
    const name = pod.metadata?.name as string;
    const root = target.descriptor.podRoot.replace('{namespace}', NS).replace('{pod}', name);
    assert.equal(existsSync(root), true, 'the pod root exists while the pod runs');
    // Watch first, then scale down: kwok deletes the pod within milliseconds.
    let abort: AbortController | undefined;
    const deleted = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pod ${name} still exists 30 s after scaling to 0`)), 30_000);
      new Watch(clients.kc)
        .watch(
          `/api/v1/namespaces/${NS}/pods`,
          { fieldSelector: `metadata.name=${name}`, resourceVersion: pod.metadata?.resourceVersion },
          (type) => {
            if (type === 'DELETED') {
              clearTimeout(timer);
              resolve();
            }
          },
          () => undefined,
        )
        .then((a) => {
          abort = a;
        }, reject);
    });
    try {
      await clients.apps.patchNamespacedDeployment(
        { name: 'app', namespace: NS, body: { spec: { replicas: 0 } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await deleted;
    } finally {
      abort?.abort();
    }
    // The companion removes the files when it sees the deletion.
    const deadline = Date.now() + 10_000;
    for (let delay = 20; existsSync(root); delay = Math.min(delay * 2, 500)) {
      assert.ok(Date.now() < deadline, `${root} still exists 10 s after the pod was deleted`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  });

  it('is closed to other users: every port on loopback, nothing served without credentials but the webhook', async (t) => {
    const verdicts = await probeWithoutCredentials(
      target.state.processes,
      readFileSync(target.descriptor.aws.caBundlePath as string, 'utf8'),
    );
    t.diagnostic(verdicts.map((v) => `${v.component} ${v.address}:${v.port}: ${v.got}`).join('\n'));
    assert.deepEqual(
      verdicts.filter((v) => v.address !== '127.0.0.1' && v.address !== '::1'),
      [],
      'every port listens on loopback only',
    );
    assert.deepEqual(openToStrangers(verdicts), [], 'a client without credentials is refused everywhere');
    const components = new Set(verdicts.map((v) => v.component));
    for (const c of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'moto'])
      assert.ok(components.has(c), `${c}'s ports were probed`);
    assert.equal(verdicts.filter((v) => v.component === 'etcd').length, 2, 'etcd: client and peer port');
    for (const v of verdicts.filter((x) => x.component === 'etcd' || x.component === 'kwok'))
      assert.match(v.got, /^TLS refused/, `${v.component} ${v.port} requires a client certificate`);
    assert.match(verdicts.find((v) => v.component === 'kwok')?.got ?? '', /plain HTTP 403/, 'kwok refuses plain HTTP');
  });

  // Last: it ends the environment (after() then checks that nothing is left).
  it('stops everything when a component dies', async () => {
    const kwok = target.state.processes.find((p) => p.name === 'kwok');
    assert.ok(kwok, 'kwok is one of the processes');
    process.kill(kwok.pid, 'SIGKILL');
    assert.equal(await died, 'kwok');
  });
});

describe('warm embedded environment', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 120_000,
}, () => {
  it('outlives the process that started it and is stopped from its state file', async () => {
    const stateFile = join(repoRoot, 'reports/logs/test-embedded-warm/env-state.json');
    mkdirSync(dirname(stateFile), { recursive: true });
    rmSync(stateFile, { force: true });
    // A separate process starts the environment and exits, as `irsa env up` would.
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { startEmbeddedTarget } = await import(${JSON.stringify(join(repoRoot, 'support/targets/embedded/index.ts'))});
         await startEmbeddedTarget({ logsDir: ${JSON.stringify(dirname(stateFile))}, discoveryBucket: 'irsa-warm',
           stateFile: ${JSON.stringify(stateFile)}, keepAliveAfterExit: true });
         process.exit(0);`,
      ],
      { cwd: repoRoot, encoding: 'utf8', timeout: 100_000 },
    );
    assert.equal(child.status, 0, `the starting process succeeded: ${child.stderr}`);
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as EnvState;
    try {
      const dead = state.processes.filter((p) => !groupAlive(p.pid)).map((p) => p.name);
      assert.deepEqual(dead, [], 'every component still runs after the starting process exited');
      const kc = new KubeConfig();
      kc.loadFromFile(state.descriptor.kubeconfigPath);
      const ns = await kc.makeApiClient(CoreV1Api).readNamespace({ name: 'default' });
      assert.equal(ns.metadata?.name, 'default', 'the API server answers');
    } finally {
      await stopEnvironmentFromState(stateFile);
    }
    await stopEnvironmentFromState(stateFile); // idempotent: nothing left to stop
    const alive = state.processes.filter((p) => groupAlive(p.pid)).map((p) => p.name);
    assert.deepEqual(alive, [], 'no component is left');
    const listening: string[] = [];
    for (const [name, port] of Object.entries(state.ports)) {
      if (await portListening(port)) listening.push(`${name}:${port}`);
    }
    assert.deepEqual(listening, [], 'no port is listening');
    assert.equal(existsSync(state.workDir), false, 'the temporary directory is removed');
    assert.equal(existsSync(stateFile), false, 'the state file is removed');
  });
});

describe('embedded target start failures', { timeout: 120_000 }, () => {
  it('names a missing binary with a hint, before starting anything', () => {
    assert.throws(
      () => resolveBinaries({ ...process.env, IRSA_KWOK_BIN: '/nonexistent/kwok' }),
      (e: unknown) =>
        isUsageError(e) &&
        /kwok not found/.test(e.message) &&
        /npm run conformance/.test(e.hint) &&
        /IRSA_KWOK_BIN/.test(e.hint),
    );
  });

  it('refuses a component that listens beyond loopback (a webhook binary named by IRSA_WEBHOOK_BIN)', {
    skip: missing ? `component binaries missing: ${missing}` : false,
  }, async () => {
    // Answers the webhook's health check, on every interface, as an unpatched v0.6.17 listens.
    const dir = mkdtempSync(join(tmpdir(), 'irsa-open-webhook-'));
    const fake = join(dir, 'webhook');
    writeFileSync(
      fake,
      [
        '#!/usr/bin/env python3',
        'import http.server, ssl, sys',
        "a = dict(x.lstrip('-').split('=', 1) for x in sys.argv[1:] if '=' in x)",
        "s = http.server.HTTPServer(('0.0.0.0', int(a['port'])), type('H', (http.server.BaseHTTPRequestHandler,), {'do_GET': lambda h: (h.send_response(200), h.end_headers())}))",
        'c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)',
        "c.load_cert_chain(a['tls-cert'], a['tls-key'])",
        's.socket = c.wrap_socket(s.socket, server_side=True)',
        's.serve_forever()',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const saved = process.env.IRSA_WEBHOOK_BIN;
    process.env.IRSA_WEBHOOK_BIN = fake;
    try {
      await assert.rejects(
        startEmbeddedTarget({
          logsDir: join(dir, 'logs'),
          discoveryBucket: 'irsa-open-webhook',
          envId: `openwebhook-${process.pid}`,
        }),
        (e: unknown) =>
          e instanceof StartError &&
          e.component === 'pod-identity-webhook' &&
          /listens on 0\.0\.0\.0:\d+, not on 127\.0\.0\.1 only/.test(e.message),
      );
    } finally {
      if (saved === undefined) delete process.env.IRSA_WEBHOOK_BIN;
      else process.env.IRSA_WEBHOOK_BIN = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a component that exits during start with its log tail, and leaves nothing behind', {
    skip: missing ? `component binaries missing: ${missing}` : false,
  }, async () => {
    const envId = `failtest-${process.pid}`;
    const saved = process.env.IRSA_WEBHOOK_BIN;
    process.env.IRSA_WEBHOOK_BIN = '/bin/false';
    try {
      await assert.rejects(
        startEmbeddedTarget({
          logsDir: join(repoRoot, 'reports/logs/test-embedded-failure'),
          discoveryBucket: 'irsa-failure',
          envId,
        }),
        (e: unknown) =>
          e instanceof StartError && e.component === 'pod-identity-webhook' && /exited during start/.test(e.message),
      );
    } finally {
      if (saved === undefined) delete process.env.IRSA_WEBHOOK_BIN;
      else process.env.IRSA_WEBHOOK_BIN = saved;
    }
    const marker = `irsa-${envId}-`;
    assert.deepEqual(
      readdirSync(tmpdir()).filter((d) => d.startsWith(marker)),
      [],
      'the temporary directory is removed',
    );
    const leftovers = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
        } catch {
          return false;
        }
      });
    assert.deepEqual(leftovers, [], 'no process of the environment is left');
  });
});
