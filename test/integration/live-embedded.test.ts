/**
 * Integration test of the live target (issue 7, "Done when"): the embedded target driven through
 * the live target's code path, as if it were a real cluster and account: KUBECONFIG is the embedded
 * admin kubeconfig, the AWS endpoint and CA are its moto's, the admin credentials come through the
 * AWS default credential chain (environment variables). The cluster "brings its own" webhook: the
 * test registers a MutatingWebhookConfiguration named pod-identity-webhook for the embedded webhook,
 * as EKS and OpenShift have one.
 *
 *   1. provision mode runs the infrastructure feature end to end and cleans up;
 *   2. after a provisioning (infrastructure + one ServiceAccount, role and two buckets, recorded in a
 *      ledger this test deletes at the end), verify-only passes in a namespace locked down with Pod
 *      Security "restricted" and a quota that requires limits, writes nothing to AWS (the account's
 *      buckets, roles and identity providers are the same before and after) and writes the summary;
 *      with every check skipped it exits 1;
 *   3. on such a provisioned issuer, which serves its documents and has its identity provider as
 *      on EKS, provision mode takes it as a managed issuer: the infrastructure and application
 *      scenarios pass, and the issuer's documents and provider are left as they were;
 *   4. on a setup from the fault catalogue (06: discovery documents not public), verify-only fails
 *      the public-documents check;
 *   5. on fault 17 (anyone may put objects into the discovery bucket), verify-only finds it by
 *      evaluating the bucket policy, without trying a write.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListOpenIDConnectProvidersCommand, ListRolesCommand } from '@aws-sdk/client-iam';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { PatchStrategy } from '@kubernetes/client-node';
import { flushLedger } from '../../support/cleanup.ts';
import { type Clients, createClients } from '../../support/clients.ts';
import { loadConfig } from '../../support/config.ts';
import { Ledger } from '../../support/ledger.ts';
import { resourceName } from '../../support/names.ts';
import { readMessages, scenarioOutcomes } from '../../support/outcomes.ts';
import { repoRoot } from '../../support/paths.ts';
import {
  createNamespace,
  createServiceAccount,
  createTenantAwsResources,
  serviceAccountManifest,
  tenantNames,
} from '../../support/provision/application.ts';
import type { ProvisionContext } from '../../support/provision/context.ts';
import { ensureInfrastructure } from '../../support/provision/ensure.ts';
import { createTaggedBucket } from '../../support/provision/infrastructure.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { type EmbeddedTarget, startEmbeddedTarget } from '../../support/targets/embedded/index.ts';
import { connectLiveTarget } from '../../support/targets/live/index.ts';
import { binariesMissing } from '../support/binaries.ts';
import { embeddedTestOptions } from '../support/embedded-options.ts';

const missing = binariesMissing();
const DEFAULT_SETUP = path.join(repoRoot, 'fixtures/setups/default');
const FAULT_06 = path.join(repoRoot, 'fixtures/faults/06-discovery-not-public');
const FAULT_17 = path.join(repoRoot, 'fixtures/faults/17-discovery-bucket-anyone-writes');

describe('live target driven against the embedded target', {
  skip: missing ? `binaries missing: ${missing}` : false,
}, () => {
  let target: EmbeddedTarget;
  let admin: Clients;
  let work: string;
  const saved = { ...process.env };
  let liveEnv: Record<string, string>;

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'irsa-live-test-'));
    const envId = `envlive${Date.now().toString(36).slice(-4)}`;
    target = await startEmbeddedTarget(
      embeddedTestOptions(work, { logsDir: path.join(work, 'logs'), envId, startTimeoutMs: 120_000 }),
    );
    const d = target.descriptor;
    admin = createClients(d);
    assert.equal(d.webhook.mode, 'harness');
    if (d.webhook.mode !== 'harness') return;
    await admin.admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: 'pod-identity-webhook' },
        webhooks: [
          {
            name: 'pod-identity-webhook.amazonaws.com',
            admissionReviewVersions: ['v1beta1'],
            sideEffects: 'None',
            failurePolicy: 'Ignore',
            clientConfig: { url: d.webhook.url, caBundle: d.webhook.caBundle },
            objectSelector: {
              matchExpressions: [{ key: 'eks.amazonaws.com/skip-pod-identity-webhook', operator: 'DoesNotExist' }],
            },
            rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
          },
        ],
      },
    });
    // What a user of a real cluster sets; the admin credentials reach the harness through the default chain.
    liveEnv = {
      IRSA_TARGET: 'live',
      IRSA_KUBECONFIG: d.kubeconfigPath,
      IRSA_AWS_ENDPOINT: d.aws.endpoint as string,
      IRSA_AWS_CA_BUNDLE: d.aws.caBundlePath as string,
      IRSA_AWS_ACCOUNT_ID: d.aws.accountId,
      IRSA_REGION: d.aws.region,
      AWS_ACCESS_KEY_ID: d.aws.credentials?.accessKeyId as string,
      AWS_SECRET_ACCESS_KEY: d.aws.credentials?.secretAccessKey as string,
    };
    Object.assign(process.env, liveEnv);
    delete process.env.AWS_PROFILE;
  });

  after(async () => {
    admin?.destroy();
    await target?.stop();
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function runEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
    const reportsDir = path.join(work, `reports-${Object.keys(extra).length}-${Date.now().toString(36)}`);
    mkdirSync(reportsDir, { recursive: true });
    return { ...process.env, ...liveEnv, IRSA_REPORTS_DIR: reportsDir, ...extra };
  }

  async function accountInventory(): Promise<string[]> {
    const [buckets, roles, idps] = await Promise.all([
      admin.s3.send(new ListBucketsCommand({})),
      admin.iam.send(new ListRolesCommand({})),
      admin.iam.send(new ListOpenIDConnectProvidersCommand({})),
    ]);
    return [
      ...(buckets.Buckets ?? []).map((b) => `bucket ${b.Name}`),
      ...(roles.Roles ?? []).map((r) => `role ${r.RoleName}`),
      ...(idps.OpenIDConnectProviderList ?? []).map((p) => `idp ${p.Arn}`),
    ].sort();
  }

  /**
   * A run as a user starts it: `irsa conformance -p live` in its own process (a process loads the
   * cucumber support code once). Outcomes come from the run's cucumber.ndjson.
   */
  async function conformance(argv: string[], env: NodeJS.ProcessEnv) {
    const code = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', path.join(repoRoot, 'support/cli/main.ts'), 'conformance', ...argv],
        { cwd: repoRoot, env, stdio: ['ignore', 'ignore', 'inherit'] },
      );
      child.on('close', (c) => resolve(c ?? 1));
    });
    return {
      exitCode: code,
      scenarios: scenarioOutcomes(readMessages(path.join(env.IRSA_REPORTS_DIR as string, 'cucumber.ndjson'))),
    };
  }

  /** The "existing setup" of a verify-only run: provisioned through the live code path into a test-owned ledger. */
  async function provisionExisting(setupDir: string) {
    const env = runEnv({ IRSA_LIVE_MODE: 'provision', IRSA_SETUP: setupDir });
    const config = loadConfig(env);
    const setup = loadSetup(config.setupDir);
    const started = await connectLiveTarget(config, setup, () => undefined);
    const runId = `ictest${Math.floor(Math.random() * 1e4)}`;
    const runDir = mkdtempSync(path.join(work, 'run-'));
    const ledger = new Ledger(path.join(runDir, 'ledger.jsonl'));
    const clients = createClients(started.descriptor);
    const ctx: ProvisionContext = {
      clients,
      target: started.descriptor,
      setup,
      config,
      runId,
      ledger,
      scope: 'run',
      log: () => undefined,
    };
    const infra = await ensureInfrastructure(ctx, runDir);
    const tenant = tenantNames('verify', runId, 'v1');
    await createTenantAwsResources(ctx, tenant, infra);
    await createNamespace(ctx, tenant.namespace);
    // A locked-down tenant namespace: Pod Security "restricted" enforced, and a quota that admits
    // only pods with requests and limits.
    await admin.objects.patch(
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: {
          name: tenant.namespace,
          labels: {
            'pod-security.kubernetes.io/enforce': 'restricted',
            'pod-security.kubernetes.io/enforce-version': 'latest',
          },
        },
      },
      undefined,
      undefined,
      undefined,
      undefined,
      PatchStrategy.MergePatch,
    );
    await admin.core.createNamespacedResourceQuota({
      namespace: tenant.namespace,
      body: {
        metadata: { name: 'limits-required' },
        spec: { hard: { 'limits.cpu': '2', 'limits.memory': '1Gi', 'requests.cpu': '1', 'requests.memory': '512Mi' } },
      },
    });
    await createServiceAccount(
      ctx,
      serviceAccountManifest(ctx, tenant.namespace, tenant.serviceAccount, tenant.roleArn as string),
    );
    const denied = resourceName('irsa-verify-denied', runId);
    await createTaggedBucket(ctx, denied);
    const verifyEnv = {
      IRSA_LIVE_MODE: 'verify-only',
      IRSA_VERIFY_NAMESPACE: tenant.namespace,
      IRSA_VERIFY_SERVICE_ACCOUNT: tenant.serviceAccount,
      IRSA_VERIFY_ROLE_ARN: tenant.roleArn as string,
      IRSA_VERIFY_ALLOWED_BUCKET: tenant.appBucket,
      IRSA_VERIFY_DENIED_BUCKET: denied,
    };
    const teardown = async () => {
      const report = await flushLedger(clients, ledger, { timeoutSeconds: 60 });
      clients.destroy();
      await started.stop();
      assert.deepEqual(report.failed, [], 'the provisioned setup was deleted');
    };
    return { verifyEnv, teardown, namespace: tenant.namespace, serviceAccount: tenant.serviceAccount };
  }

  it('provision mode: the infrastructure feature passes and leaves nothing behind', async () => {
    const before = await accountInventory();
    const result = await conformance(['-p', 'live', '--tags', '@infrastructure'], runEnv({}));
    const failed = result.scenarios.filter((s) => s.status !== 'PASSED');
    assert.deepEqual(
      failed.map((s) => `${s.name}: ${s.status} ${s.message?.split('\n')[0] ?? ''}`),
      [],
      'every infrastructure scenario passes in provision mode',
    );
    assert.ok(result.scenarios.length >= 7, `ran the infrastructure scenarios (${result.scenarios.length})`);
    assert.equal(result.exitCode, 0);
    assert.deepEqual(await accountInventory(), before, 'the run deleted what it created in the account');
  });

  it('verify-only passes on a provisioned setup in a locked-down namespace, and writes nothing to AWS', async () => {
    const existing = await provisionExisting(DEFAULT_SETUP);
    try {
      // The namespace is locked down indeed: a pod as the setup's template has it is refused.
      await assert.rejects(
        admin.core.createNamespacedPod({
          namespace: existing.namespace,
          body: {
            metadata: { name: 'plain' },
            spec: {
              serviceAccountName: existing.serviceAccount,
              containers: [{ name: 'c', image: 'amazon/aws-cli:2.27.50', command: ['sleep', '60'] }],
            },
          },
        }),
        (e: unknown) => /violates PodSecurity|must specify limits/.test(String((e as Error).message)),
      );
      const before = await accountInventory();
      const env = runEnv(existing.verifyEnv);
      const result = await conformance(['-p', 'live'], env);
      const failed = result.scenarios.filter((s) => s.status !== 'PASSED');
      assert.deepEqual(
        failed.map((s) => `${s.name}: ${s.status} ${s.message?.split('\n')[0] ?? ''}`),
        [],
        'every scenario passes',
      );
      const names = result.scenarios.map((s) => s.name);
      assert.ok(names.includes('The discovery documents are public'), 'the infrastructure checks ran');
      assert.ok(names.includes('A pod of the ServiceAccount gets the role and uses it'), 'the pod check ran');
      assert.ok(
        !names.includes('The webhook injects the role and the token into the pod'),
        'provision scenarios excluded',
      );
      assert.equal(result.exitCode, 0);
      assert.deepEqual(await accountInventory(), before, 'verify-only changed nothing in the account');
      const summary = readFileSync(path.join(env.IRSA_REPORTS_DIR as string, 'verify-summary.md'), 'utf8');
      assert.match(summary, /\*\*Result: PASS\*\*/);
      assert.match(summary, /## Detected dialect/);
      assert.match(summary, /\| writes-allowed \| no \|/);

      // Every selected check skipped (no pod allowed, only the pod check selected): a verdict of
      // nothing, exit 1, never a pass.
      const noPod = runEnv({ ...existing.verifyEnv, IRSA_VERIFY_NO_POD: 'true' });
      const skipped = await conformance(['-p', 'live', '--name', 'A pod of the ServiceAccount gets the role'], noPod);
      assert.deepEqual(
        skipped.scenarios.map((s) => s.status),
        ['SKIPPED'],
      );
      assert.equal(skipped.exitCode, 1, 'no check ran: exit 1');
      const noChecks = readFileSync(path.join(noPod.IRSA_REPORTS_DIR as string, 'verify-summary.md'), 'utf8');
      assert.match(noChecks, /\*\*Result: NO CHECKS RAN \(1 skipped\)\*\*/);
    } finally {
      await existing.teardown();
    }
  });

  it('provision on a managed issuer (documents and identity provider already there, as on EKS): used as they are', async () => {
    // What EKS (or eksctl's associate-iam-oidc-provider) leaves: the issuer serves its documents,
    // the account has its identity provider. Provisioning must use both, and delete neither.
    const existing = await provisionExisting(DEFAULT_SETUP);
    try {
      const before = await accountInventory();
      const env = runEnv({ IRSA_LIVE_MODE: 'provision' });
      // The application scenarios whose checks do not look at files inside the pod: through the
      // live code path the embedded node's pods have no file system of their own (podRoot is '').
      const app = 'features/02-application.feature';
      const lines = readFileSync(path.join(repoRoot, app), 'utf8')
        .split('\n')
        .flatMap((l, i) =>
          /Scenario: (The webhook injects|From inside the pod, the AWS CLI|Writing to another bucket)/.test(l)
            ? [i + 1]
            : [],
        );
      assert.equal(lines.length, 3, 'the application scenarios are found');
      const result = await conformance(
        ['-p', 'live', 'features/01-infrastructure.feature', `${app}:${lines.join(':')}`],
        env,
      );
      const failed = result.scenarios.filter((s) => s.status !== 'PASSED');
      assert.deepEqual(
        failed.map((s) => `${s.name}: ${s.status} ${s.message?.split('\n')[0] ?? ''}`),
        [],
        'the infrastructure and application scenarios pass on the managed issuer',
      );
      assert.ok(
        result.scenarios.some((s) => s.name === 'Writing to another bucket is denied'),
        'the application ran',
      );
      assert.equal(result.exitCode, 0);
      assert.deepEqual(
        await accountInventory(),
        before,
        "the platform's documents and provider are there, nothing else",
      );
      const harnessLog = readFileSync(path.join(env.IRSA_REPORTS_DIR as string, 'logs', 'harness.log'), 'utf8');
      assert.match(harnessLog, /issuer control\s+managed: /);
      const messages = readFileSync(path.join(env.IRSA_REPORTS_DIR as string, 'cucumber.ndjson'), 'utf8');
      assert.match(messages, /using the account's identity provider arn:aws:iam::/);
    } finally {
      await existing.teardown();
    }
  });

  it('verify-only finds fault 17 (anyone may write the discovery bucket) by evaluating it, without writing', {
    skip: !existsSync(FAULT_17),
  }, async () => {
    const existing = await provisionExisting(FAULT_17);
    try {
      const before = await accountInventory();
      const result = await conformance(['-p', 'live'], runEnv(existing.verifyEnv));
      assert.equal(result.exitCode, 1);
      const evaluated = result.scenarios.find((s) =>
        s.name.startsWith('Nobody but the owner can change the discovery bucket or its documents, by its policy'),
      );
      assert.equal(evaluated?.status, 'FAILED');
      assert.match(evaluated?.message ?? '', /an anonymous caller, .* may PutObject .*\(Sid AnyoneMayPublishKeys\)/);
      assert.ok(
        !result.scenarios.some((s) => s.name.endsWith(', tried')),
        'the scenario that tries changes is not selected in verify-only',
      );
      assert.deepEqual(await accountInventory(), before, 'verify-only changed nothing in the account');
    } finally {
      await existing.teardown();
    }
  });

  it('verify-only fails on fault 06 (discovery documents not public)', { skip: !existsSync(FAULT_06) }, async () => {
    const existing = await provisionExisting(FAULT_06);
    try {
      const env = runEnv(existing.verifyEnv);
      const result = await conformance(['-p', 'live'], env);
      assert.equal(result.exitCode, 1);
      const pub = result.scenarios.find((s) => s.name === 'The discovery documents are public');
      assert.equal(pub?.status, 'FAILED');
      assert.match(pub?.message ?? '', /returned HTTP 403, expected 200/);
      const summary = readFileSync(path.join(env.IRSA_REPORTS_DIR as string, 'verify-summary.md'), 'utf8');
      assert.match(summary, /\*\*Result: FAIL/);
      assert.match(summary, /The discovery documents are public \| infrastructure \| \*\*FAIL\*\*/);
    } finally {
      await existing.teardown();
    }
  });
});
