/**
 * Sweep (issue 6): on a real embedded environment (moto + kube-apiserver), resources planted with
 * the harness's run-id tag or label are found and deleted, with --dry-run, --run-id and
 * --older-than honoured; resources without the mark (or with a look-alike mark) are left alone.
 * One environment for the whole file; each test plants its own resources under its own run ids.
 * The cases that need no child process or listener are test/unit/sweep.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AttachRolePolicyCommand,
  CreateAccessKeyCommand,
  CreateOpenIDConnectProviderCommand,
  CreatePolicyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  GetOpenIDConnectProviderCommand,
  GetPolicyCommand,
  GetRoleCommand,
  GetUserCommand,
} from '@aws-sdk/client-iam';
import { CreateBucketCommand, HeadBucketCommand, PutBucketTaggingCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { runSweep } from '../../support/cli/sweep.ts';
import { type Clients, createClients } from '../../support/clients.ts';
import { isUsageError } from '../../support/errors.ts';
import { LABEL_RUN_ID, TAG_CREATED, TAG_RUN_ID } from '../../support/names.ts';
import { findLeftovers } from '../../support/sweep/sweep.ts';
import { type EmbeddedTarget, startEmbeddedTarget } from '../../support/targets/embedded/index.ts';
import { binariesMissing } from '../support/binaries.ts';
import { embeddedTestOptions } from '../support/embedded-options.ts';

const TRUST = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
});
const POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 's3:ListBucket', Resource: 'arn:aws:s3:::nothing' }],
});

interface Planted {
  bucket: string;
  roleName: string;
  policyArn: string;
  providerArn: string;
  userName: string;
  namespace: string;
  webhookConfiguration: string;
  configMap: { namespace: string; name: string };
}

/** Everything the sweep knows how to find, marked as run `runId` created at `created`. */
async function plant(c: Clients, runId: string, created: Date, accountId: string): Promise<Planted> {
  const tags = [
    { Key: TAG_RUN_ID, Value: runId },
    { Key: TAG_CREATED, Value: created.toISOString() },
  ];
  const labels = { [LABEL_RUN_ID]: runId };
  const p: Planted = {
    bucket: `sweep-${runId}-bucket`,
    roleName: `sweep-${runId}-role`,
    policyArn: `arn:aws:iam::${accountId}:policy/sweep-${runId}-policy`,
    providerArn: '',
    userName: `sweep-${runId}-user`,
    namespace: `sweep-${runId}-ns`,
    webhookConfiguration: `sweep-${runId}-webhook`,
    configMap: { namespace: 'default', name: `sweep-${runId}-cm` },
  };
  await c.s3.send(new CreateBucketCommand({ Bucket: p.bucket }));
  await c.s3.send(new PutBucketTaggingCommand({ Bucket: p.bucket, Tagging: { TagSet: tags } }));
  // Not empty: the sweep has to empty it first.
  await c.s3.send(new PutObjectCommand({ Bucket: p.bucket, Key: 'object.txt', Body: 'x' }));
  await c.iam.send(new CreateRoleCommand({ RoleName: p.roleName, AssumeRolePolicyDocument: TRUST, Tags: tags }));
  p.policyArn = (
    await c.iam.send(
      new CreatePolicyCommand({ PolicyName: `sweep-${runId}-policy`, PolicyDocument: POLICY, Tags: tags }),
    )
  ).Policy?.Arn as string;
  // Attached: the role must go (detached) before the policy can.
  await c.iam.send(new AttachRolePolicyCommand({ RoleName: p.roleName, PolicyArn: p.policyArn }));
  p.providerArn = (
    await c.iam.send(
      new CreateOpenIDConnectProviderCommand({
        Url: `https://sweep.example/${runId}`,
        ClientIDList: ['sts.amazonaws.com'],
        Tags: tags,
      }),
    )
  ).OpenIDConnectProviderArn as string;
  await c.iam.send(new CreateUserCommand({ UserName: p.userName, Tags: tags }));
  await c.iam.send(new CreateAccessKeyCommand({ UserName: p.userName }));
  await c.core.createNamespace({ body: { metadata: { name: p.namespace, labels } } });
  await c.core.createNamespacedConfigMap({
    namespace: p.namespace,
    body: { metadata: { name: 'inside', labels }, data: { a: 'b' } },
  });
  await c.core.createNamespacedConfigMap({
    namespace: p.configMap.namespace,
    body: { metadata: { name: p.configMap.name, labels }, data: { a: 'b' } },
  });
  await c.admission.createMutatingWebhookConfiguration({
    body: { metadata: { name: p.webhookConfiguration, labels }, webhooks: [] },
  });
  return p;
}

/** Which of the planted resources still exist, by kind. */
async function existing(c: Clients, p: Planted): Promise<string[]> {
  const probe = async (name: string, fn: () => Promise<unknown>): Promise<string | undefined> => {
    try {
      await fn();
      return name;
    } catch (e) {
      const status =
        (e as { $metadata?: { httpStatusCode?: number }; code?: number }).$metadata?.httpStatusCode ??
        (e as { code?: number }).code;
      if (status === 404 || (e as Error).name === 'NoSuchEntity' || (e as Error).name === 'NotFound') return undefined;
      throw e;
    }
  };
  // Terminating counts as still there: the sweep confirms namespaces are gone.
  const ns = await probe('namespace', () => c.core.readNamespace({ name: p.namespace }));
  const found = await Promise.all([
    probe('bucket', () => c.s3.send(new HeadBucketCommand({ Bucket: p.bucket }))),
    probe('role', () => c.iam.send(new GetRoleCommand({ RoleName: p.roleName }))),
    probe('policy', () => c.iam.send(new GetPolicyCommand({ PolicyArn: p.policyArn }))),
    probe('provider', () =>
      c.iam.send(new GetOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: p.providerArn })),
    ),
    probe('user', () => c.iam.send(new GetUserCommand({ UserName: p.userName }))),
    probe('webhook configuration', () =>
      c.admission.readMutatingWebhookConfiguration({ name: p.webhookConfiguration }),
    ),
    probe('config map', () => c.core.readNamespacedConfigMap(p.configMap)),
  ]);
  return [ns, ...found].filter((x): x is string => x !== undefined).sort();
}

const ALL = ['bucket', 'config map', 'namespace', 'policy', 'provider', 'role', 'user', 'webhook configuration'];

const missing = binariesMissing();

describe('sweep', { skip: missing ? `component binaries missing: ${missing}` : false, timeout: 180_000 }, () => {
  let target: EmbeddedTarget;
  let c: Clients;
  const work = join(tmpdir(), `irsa-sweep-test-${process.pid}`);
  const lines: string[] = [];
  const sweep = (...argv: string[]) =>
    runSweep(['--attach', target.statePath, ...argv], {
      env: { IRSA_REPORTS_DIR: join(work, 'reports') },
      out: (l) => lines.push(l),
    });

  before(async () => {
    mkdirSync(work, { recursive: true });
    target = await startEmbeddedTarget(
      embeddedTestOptions(work, {
        logsDir: join(work, 'logs'),
        discoveryBucket: 'irsa-sweep-test-discovery',
        envId: 'sweeptest',
      }),
    );
    c = createClients(target.descriptor);
  });

  after(async () => {
    c?.destroy();
    await target?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('deletes what carries the mark, in dependency order, and leaves unmarked look-alikes alone', async () => {
    const account = target.descriptor.aws.accountId;
    const old = await plant(c, 'icswold', new Date(Date.now() - 3 * 3600_000), account);
    const fresh = await plant(c, 'icswnew', new Date(), account);
    // Look-alikes: the same kinds and name patterns without the run-id mark (one with only the created tag).
    await c.s3.send(new CreateBucketCommand({ Bucket: 'sweep-untagged-bucket' }));
    await c.s3.send(new CreateBucketCommand({ Bucket: 'sweep-other-tag-bucket' }));
    await c.s3.send(
      new PutBucketTaggingCommand({
        Bucket: 'sweep-other-tag-bucket',
        Tagging: {
          TagSet: [
            { Key: TAG_CREATED, Value: new Date(0).toISOString() },
            { Key: 'run-id', Value: 'icswold' },
          ],
        },
      }),
    );
    await c.iam.send(new CreateRoleCommand({ RoleName: 'sweep-untagged-role', AssumeRolePolicyDocument: TRUST }));
    await c.core.createNamespace({
      body: { metadata: { name: 'sweep-untagged-ns', labels: { 'app.kubernetes.io/managed-by': 'irsa-conformance' } } },
    });

    // --dry-run lists, deletes nothing.
    lines.length = 0;
    assert.equal(await sweep('--dry-run'), 0);
    const listed = lines.filter((l) => l.startsWith('would delete'));
    for (const name of [old.bucket, old.roleName, old.policyArn, old.providerArn, old.userName, old.namespace])
      assert.ok(
        listed.some((l) => l.includes(name)),
        `dry run lists ${name}:\n${lines.join('\n')}`,
      );
    assert.ok(
      !lines.some((l) => /untagged|other-tag/.test(l)),
      `unmarked resources are not listed:\n${lines.join('\n')}`,
    );
    assert.ok(
      listed.some((l) => l.includes(`${old.configMap.namespace}/${old.configMap.name}`)),
      'a marked object outside marked namespaces is listed',
    );
    assert.ok(!listed.some((l) => l.includes('/inside')), 'objects inside a marked namespace go with the namespace');
    assert.deepEqual(await existing(c, old), ALL, 'a dry run deletes nothing');

    // Dependency order: webhook configurations, namespaced objects, namespaces, roles, users, policies, providers, buckets.
    const kinds = listed.map((l) => l.replace(/^would delete /, '').split(' ')[0]);
    const rank = (k: string | undefined) =>
      ['MutatingWebhookConfiguration', 'ConfigMap', 'namespace', 'IAM', 'S3'].indexOf(k ?? '');
    const ranks = kinds.map(rank).filter((r) => r >= 0);
    assert.deepEqual(
      ranks,
      [...ranks].sort((a, b) => a - b),
      `deletion order:\n${listed.join('\n')}`,
    );
    const iam = listed.filter((l) => l.includes(' IAM ')).map((l) => l.split(' ')[3]);
    assert.ok(iam.lastIndexOf('role') < iam.indexOf('policy'), `roles before policies: ${iam.join(', ')}`);
    assert.ok(iam.lastIndexOf('policy') < iam.indexOf('OIDC'), `policies before providers: ${iam.join(', ')}`);

    // --older-than: AWS resources are aged by their created tag (planted 3 h ago for the old run),
    // Kubernetes objects by their creationTimestamp (just now): only the old run's AWS side goes.
    lines.length = 0;
    assert.equal(await sweep('--older-than', '1h'), 0, lines.join('\n'));
    assert.deepEqual(
      await existing(c, old),
      ['config map', 'namespace', 'webhook configuration'],
      `the old run's AWS resources are gone, its young Kubernetes objects stay:\n${lines.join('\n')}`,
    );
    assert.deepEqual(await existing(c, fresh), ALL, 'the fresh run is kept');
    assert.ok(
      lines.some((l) => l.startsWith('kept') && l.includes(fresh.roleName)),
      'says why it kept it',
    );
    // Two hours later the Kubernetes objects are old enough too.
    const later = await findLeftovers(c, target.descriptor, {
      olderThanMs: 3600_000,
      now: new Date(Date.now() + 2 * 3600_000),
    });
    assert.deepEqual(
      later.found
        .filter((l) => l.runId === 'icswold')
        .map((l) => l.ref.kind)
        .sort(),
      ['k8s-cluster-object', 'k8s-namespace', 'k8s-namespaced-object'],
    );
    assert.equal(await sweep('--run-id', 'icswold'), 0);
    assert.deepEqual(await existing(c, old), []);

    // --run-id: only that run.
    const third = await plant(c, 'icswthree', new Date(), account);
    lines.length = 0;
    assert.equal(await sweep('--run-id', 'icswnew'), 0, lines.join('\n'));
    assert.deepEqual(await existing(c, fresh), [], 'the named run is gone');
    assert.deepEqual(await existing(c, third), ALL, 'another run is untouched');

    // Everything marked, and nothing else.
    assert.equal(await sweep(), 0);
    assert.deepEqual(await existing(c, third), []);
    await c.s3.send(new HeadBucketCommand({ Bucket: 'sweep-untagged-bucket' }));
    await c.s3.send(new HeadBucketCommand({ Bucket: 'sweep-other-tag-bucket' }));
    await c.iam.send(new GetRoleCommand({ RoleName: 'sweep-untagged-role' }));
    await c.core.readNamespace({ name: 'sweep-untagged-ns' });
    lines.length = 0;
    assert.equal(await sweep(), 0);
    assert.match(lines.join('\n'), /nothing to sweep/);
  });

  it('keeps runs that have a run directory on this machine unless named', async () => {
    const p = await plant(c, 'icswlocal', new Date(), target.descriptor.aws.accountId);
    const kept = await findLeftovers(c, target.descriptor, { protectedRunIds: new Set(['icswlocal']) });
    assert.equal(kept.found.filter((l) => l.runId === 'icswlocal').length, 0);
    assert.ok(kept.skipped.some((s) => /run directory/.test(s.why)));
    const named = await findLeftovers(c, target.descriptor, {
      runId: 'icswlocal',
      protectedRunIds: new Set(['icswlocal']),
    });
    assert.equal(named.found.length, 8, named.found.map((l) => l.what).join('\n'));
    assert.equal(await sweep('--run-id', 'icswlocal'), 0);
    assert.deepEqual(await existing(c, p), []);
  });

  it('sweeps a live target (the live connection settings pointed at this environment), only in the confirmed account', async () => {
    const p = await plant(c, 'icswlive', new Date(), target.descriptor.aws.accountId);
    const aws = target.descriptor.aws;
    const env = {
      IRSA_TARGET: 'live',
      IRSA_KUBECONFIG: target.descriptor.kubeconfigPath,
      IRSA_AWS_ENDPOINT: aws.endpoint as string,
      IRSA_AWS_CA_BUNDLE: aws.caBundlePath as string,
      IRSA_REPORTS_DIR: join(work, 'reports'),
    };
    // The live target takes AWS credentials from the default chain, i.e. this process's environment.
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = aws.credentials?.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = aws.credentials?.secretAccessKey;
    try {
      await assert.rejects(
        runSweep(['--run-id', 'icswlive'], { env, out: () => undefined }),
        (e: unknown) => isUsageError(e) && /IRSA_AWS_ACCOUNT_ID is not set/.test(e.message),
        'no deletion without the confirmed account',
      );
      assert.deepEqual(await existing(c, p), ALL);
      const out: string[] = [];
      assert.equal(
        await runSweep(['--run-id', 'icswlive'], {
          env: { ...env, IRSA_AWS_ACCOUNT_ID: aws.accountId },
          out: (l) => out.push(l),
        }),
        0,
        out.join('\n'),
      );
      assert.deepEqual(await existing(c, p), []);
    } finally {
      for (const [k, v] of [
        ['AWS_ACCESS_KEY_ID', saved.id],
        ['AWS_SECRET_ACCESS_KEY', saved.secret],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
  });

  it('refuses bad options with a usage error', async () => {
    await assert.rejects(sweep('--older-than', 'soon'), (e: unknown) => isUsageError(e));
    await assert.rejects(sweep('--bogus'), (e: unknown) => isUsageError(e) && /unknown option/.test(e.message));
    await assert.rejects(
      runSweep(['--attach', join(work, 'no-such-state.json')], { env: {}, out: () => undefined }),
      (e: unknown) => isUsageError(e) && /no warm environment state/.test(e.message),
    );
  });
});
