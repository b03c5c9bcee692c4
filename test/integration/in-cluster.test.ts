/**
 * The harness run where teams run it at scale (issue 19), on the embedded target, against an IRSA
 * setup provisioned there first (the "existing setup" verify-only checks):
 *
 *   1. deploy/ is valid for the embedded kube-apiserver: every manifest passes a server-side dry
 *      run with strict field validation, the Job's and CronJob's pod and the Sonobuoy plugin's pod
 *      are admitted in namespaces that enforce Pod Security "restricted", the Job and the CronJob
 *      run the same pod, and every image reference is the version in package.json;
 *   2. the RBAC of deploy/rbac.yaml, applied, grants what verify-only needs and nothing that writes
 *      (SubjectAccessReviews);
 *   3. the entrypoint with Sonobuoy's environment (SONOBUOY_RESULTS_DIR), run on this machine
 *      against the embedded target through the live code path, hands over as Sonobuoy expects: the
 *      done file names irsa-conformance.tar.gz, which holds junit.xml with every check; a failed
 *      check is a failed test case and the exit code is still 0;
 *   with a real node (root, cgroup v1, overlayfs; skipped on kwok, saying why):
 *   4. the image (npm run image, imported by the node: IRSA_NODE_IMAGES) runs as the Job of
 *      deploy/job.yaml in the cluster against that cluster in verify-only mode, with the in-cluster
 *      configuration, deploy/rbac.yaml's permissions (RBAC is enforced) and IRSA for its own AWS
 *      credentials (a role with exactly docs/live.md's verify-only policy; moto enforces IAM), and
 *      its JUnit report has every check passed;
 *   5. the same image runs as the pod Sonobuoy makes of deploy/sonobuoy/irsa-conformance.yaml, and
 *      this test, in the Sonobuoy worker's place, finds the done file and the results it names.
 *
 * What the test changes in the manifests is what a user changes (the example names, the role ARN,
 * the image) plus what the embedded cluster needs: the host network (moto and the API server
 * listen on 127.0.0.1 only, and there is no kube-proxy, so KUBERNETES_SERVICE_HOST/PORT name the
 * API server itself), the emulator's endpoint and CA, and a host directory for the reports.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AttachRolePolicyCommand, CreatePolicyCommand, CreateRoleCommand } from '@aws-sdk/client-iam';
import { AuthorizationV1Api, type KubernetesObject, PatchStrategy, type V1PodSpec } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { SONOBUOY_TARBALL } from '../../support/cli/entrypoint.ts';
import { type Clients, createClients } from '../../support/clients.ts';
import { loadConfig } from '../../support/config.ts';
import { buildImage, type ImageBuildResult } from '../../support/image/build.ts';
import { type JUnitCase, readJUnit } from '../../support/junit.ts';
import { Ledger } from '../../support/ledger.ts';
import { awsTags, resourceName } from '../../support/names.ts';
import { repoRoot } from '../../support/paths.ts';
import {
  createNamespace,
  createServiceAccount,
  createTenantAwsResources,
  serviceAccountManifest,
  type Tenant,
  tenantNames,
  trustPolicyFor,
} from '../../support/provision/application.ts';
import type { ProvisionContext } from '../../support/provision/context.ts';
import { ensureInfrastructure } from '../../support/provision/ensure.ts';
import { createTaggedBucket } from '../../support/provision/infrastructure.ts';
import type { InfrastructureState } from '../../support/run-state.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { type EmbeddedTarget, startEmbeddedTarget } from '../../support/targets/embedded/index.ts';
import { POD_CA_BUNDLE, preflightRealNode } from '../../support/targets/embedded/real-node.ts';
import { binariesMissing } from '../support/binaries.ts';
import { embeddedTestOptions } from '../support/embedded-options.ts';

const missing = binariesMissing();
const noRealNode = (() => {
  try {
    preflightRealNode();
    return undefined;
  } catch (e) {
    return `no real node here: ${(e as Error).message}`;
  }
})();
const DEPLOY = path.join(repoRoot, 'deploy');
/** Manifests the others need to exist (in the order they are applied): dry-run, then created. */
const PREREQUISITES = ['sonobuoy/rbac.yaml', 'serviceaccount.yaml', 'namespace.yaml'];
const VERSION = (JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
/** The harness's ServiceAccounts: the Job's (deploy/serviceaccount.yaml) and the Sonobuoy plugin's. */
const HARNESS_SUBJECTS = [
  { namespace: 'irsa-conformance', serviceAccount: 'irsa-conformance' },
  { namespace: 'sonobuoy', serviceAccount: 'irsa-conformance' },
];

type K8sObject = KubernetesObject & Record<string, unknown>;

/** The path of a kind's collection (the kinds deploy/ uses). */
function collectionPath(o: KubernetesObject): string {
  const ns = o.metadata?.namespace;
  const core = (plural: string) => (ns ? `/api/v1/namespaces/${ns}/${plural}` : `/api/v1/${plural}`);
  const group = (g: string, plural: string) => (ns ? `/apis/${g}/namespaces/${ns}/${plural}` : `/apis/${g}/${plural}`);
  const paths: Record<string, () => string> = {
    Namespace: () => '/api/v1/namespaces',
    ServiceAccount: () => core('serviceaccounts'),
    ConfigMap: () => core('configmaps'),
    Pod: () => core('pods'),
    ClusterRole: () => '/apis/rbac.authorization.k8s.io/v1/clusterroles',
    ClusterRoleBinding: () => '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
    Role: () => group('rbac.authorization.k8s.io/v1', 'roles'),
    RoleBinding: () => group('rbac.authorization.k8s.io/v1', 'rolebindings'),
    Job: () => group('batch/v1', 'jobs'),
    CronJob: () => group('batch/v1', 'cronjobs'),
  };
  const p = paths[o.kind as string];
  assert.ok(p, `no collection path for kind ${o.kind}`);
  return p();
}

/** POST with ?dryRun=All&fieldValidation=Strict: the API server validates and admits, nothing is stored. */
async function serverDryRun(
  c: Clients,
  o: KubernetesObject,
): Promise<{ status: number; body: string; warning: string }> {
  const url = new URL(`${c.kc.getCurrentCluster()?.server}${collectionPath(o)}?dryRun=All&fieldValidation=Strict`);
  const opts: https.RequestOptions = { method: 'POST', headers: { 'Content-Type': 'application/json' } };
  await c.kc.applyToHTTPSOptions(opts);
  return await new Promise((resolve, reject) => {
    const req = https.request(url, opts, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, warning: String(res.headers.warning ?? '') }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(o));
  });
}

function yamlObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJSON() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

function deployFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const f of readdirSync(dir, { withFileTypes: true })) {
      if (f.isDirectory()) walk(path.join(dir, f.name));
      else if (f.name.endsWith('.yaml')) out.push(path.join(dir, f.name));
    }
  };
  walk(DEPLOY);
  return out.sort();
}

function podTemplateOf(o: K8sObject): V1PodSpec {
  const spec = o.spec as Record<string, unknown>;
  if (o.kind === 'CronJob')
    return (spec.jobTemplate as { spec: { template: { spec: V1PodSpec } } }).spec.template.spec as V1PodSpec;
  return (spec.template as { spec: V1PodSpec }).spec;
}

/** The pod Sonobuoy's Job driver makes of a plugin definition (its own worker container left out). */
function sonobuoyPod(
  plugin: Record<string, unknown>,
  namespace: string,
  resultsVolume: Record<string, unknown>,
): K8sObject {
  const podSpec = plugin.podSpec as V1PodSpec;
  const extra = (plugin['extra-volumes'] as Record<string, unknown>[] | undefined) ?? [];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `sonobuoy-irsa-conformance-job-${Date.now().toString(36)}`, namespace },
    spec: {
      ...podSpec,
      containers: [plugin.spec as V1PodSpec['containers'][number]],
      volumes: [{ name: 'results', ...resultsVolume }, ...extra],
    },
  };
}

describe('the harness where teams run it at scale: deploy/, the image, Sonobuoy', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 1_800_000,
}, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'irsa-in-cluster-'));
  const setup = loadSetup(path.join(repoRoot, 'fixtures/setups/default'));
  let image: ImageBuildResult | undefined;
  let target: EmbeddedTarget;
  let admin: Clients;
  let infra: InfrastructureState;
  let verified: Tenant;
  let denied: string;
  let harnessRoleArn: string;
  let apiserverPort: number;
  /** The example values of deploy/ and what this cluster has instead (what a user edits). */
  let edits: [string, string][];

  before(async () => {
    if (!noRealNode) {
      image = await buildImage({ projectDir: repoRoot, onProgress: (l) => process.stderr.write(`[image] ${l}\n`) });
      process.stderr.write(`[image] ${image.ref} ${image.digest} in ${image.seconds.toFixed(1)} s\n`);
    }
    const envId = `envscale${Date.now().toString(36).slice(-4)}`;
    target = await startEmbeddedTarget(
      embeddedTestOptions(work, {
        logsDir: path.join(work, 'logs'),
        envId,
        startTimeoutMs: 180_000,
        settings: noRealNode
          ? { kubeNode: 'kwok' }
          : { kubeNode: 'kubelet', nodeImages: [(image as ImageBuildResult).archive] },
      }),
    );
    admin = createClients(target.descriptor);
    apiserverPort = target.state.ports.apiserver as number;

    // The existing setup: infrastructure (discovery documents, identity provider, the webhook's
    // registration), a ServiceAccount with its role and bucket, and a bucket it must not read.
    const runId = `icscale${Math.floor(Math.random() * 1e4)}`;
    const runDir = mkdtempSync(path.join(work, 'run-'));
    const ctx: ProvisionContext = {
      clients: admin,
      target: target.descriptor,
      setup,
      config: loadConfig({}),
      runId,
      ledger: new Ledger(path.join(runDir, 'ledger.jsonl')),
      scope: 'run',
      log: () => undefined,
    };
    infra = await ensureInfrastructure(ctx, runDir);
    verified = tenantNames('verify', runId, 'v1');
    await createTenantAwsResources(ctx, verified, infra);
    await createNamespace(ctx, verified.namespace);
    await createServiceAccount(
      ctx,
      serviceAccountManifest(ctx, verified.namespace, verified.serviceAccount, verified.roleArn as string),
    );
    denied = resourceName('irsa-verify-denied', runId);
    await createTaggedBucket(ctx, denied);

    // The harness's own role: trusted by its ServiceAccounts, with docs/live.md's verify-only
    // policy, taken from the document as it is with its example values replaced.
    const docs = readFileSync(path.join(repoRoot, 'docs/live.md'), 'utf8');
    const section = docs.slice(docs.indexOf('### AWS: verify-only mode'));
    const policy = (/```json\n([\s\S]*?)```/.exec(section) as RegExpExecArray)[1] as string;
    const roleName = resourceName('irsa-harness-verify', runId, undefined, 64);
    const subject = (s: { namespace: string; serviceAccount: string }) =>
      `system:serviceaccount:${s.namespace}:${s.serviceAccount}`;
    const trust = JSON.stringify(trustPolicyFor(ctx, verified, infra, HARNESS_SUBJECTS[0])).replace(
      JSON.stringify(subject(HARNESS_SUBJECTS[0] as (typeof HARNESS_SUBJECTS)[number])),
      JSON.stringify(HARNESS_SUBJECTS.map(subject)),
    );
    const created = await admin.iam.send(
      new CreateRoleCommand({ RoleName: roleName, AssumeRolePolicyDocument: trust, Tags: awsTags(runId) }),
    );
    harnessRoleArn = created.Role?.Arn as string;
    const p = await admin.iam.send(
      new CreatePolicyCommand({
        PolicyName: `${roleName}-policy`,
        PolicyDocument: policy
          .replaceAll('arn:aws:iam::123456789012:role/payments-s3-reader', verified.roleArn as string)
          .replaceAll('<discovery bucket>', infra.discoveryBucket),
        Tags: awsTags(runId),
      }),
    );
    await admin.iam.send(new AttachRolePolicyCommand({ RoleName: roleName, PolicyArn: p.Policy?.Arn }));

    const account = target.descriptor.aws.accountId;
    edits = [
      ['arn:aws:iam::111122223333:role/irsa-conformance-verify', harnessRoleArn],
      ['arn:aws:iam::111122223333:role/payments-s3-reader', verified.roleArn as string],
      ['"111122223333"', `"${account}"`],
      ['payments-data', verified.appBucket],
      ['billing-data', denied],
      ['s3-reader', verified.serviceAccount],
      ['payments', verified.namespace],
      ['us-east-1', target.descriptor.aws.region],
      [`image: irsa-conformance:${VERSION}`, `image: ${image?.ref ?? `irsa-conformance:${VERSION}`}`],
    ];
    // Namespaces the manifests name that this cluster lacks (on a real one they exist).
    // (irsa-conformance comes from deploy/namespace.yaml.)
    for (const [name, labels] of [
      ['sonobuoy', { 'pod-security.kubernetes.io/enforce': 'restricted' }],
      ['pod-identity-webhook', {}],
      ['openshift-kube-apiserver', {}],
    ] as const)
      await admin.core.createNamespace({ body: { metadata: { name, labels } } });
  });

  after(async () => {
    admin?.destroy();
    await target?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** A manifest of deploy/ with the example values replaced, as a user would. */
  const manifest = (rel: string): K8sObject[] => {
    let text = readFileSync(path.join(DEPLOY, rel), 'utf8');
    for (const [from, to] of edits) text = text.replaceAll(from, to);
    return yamlObjects(text);
  };

  const apply = async (objects: K8sObject[]) => {
    for (const o of objects) await admin.objects.create(o);
  };

  it('deploy/: every manifest passes a strict server-side dry run; the pods are admitted under Pod Security "restricted"; one image version', async () => {
    const failures: string[] = [];
    const kinds = new Set<string>();
    // The namespace first, dry and then for real: the rest lives in it.
    const files = deployFiles()
      .map((f) => path.relative(DEPLOY, f))
      .filter((rel) => rel !== 'kustomization.yaml' && rel !== 'sonobuoy/irsa-conformance.yaml')
      .sort((a, b) => PREREQUISITES.indexOf(b) - PREREQUISITES.indexOf(a));
    for (const rel of files) {
      for (const o of manifest(rel)) {
        kinds.add(o.kind as string);
        const r = await serverDryRun(admin, o);
        if (r.status >= 300 || r.warning)
          failures.push(
            `${rel} ${o.kind} ${o.metadata?.name ?? o.metadata?.generateName}: HTTP ${r.status}${r.warning ? ` warning ${r.warning}` : ''} ${r.status >= 300 ? r.body.slice(0, 300) : ''}`,
          );
      }
      // What a pod's admission needs (its namespace and ServiceAccount) is then created for real.
      if (PREREQUISITES.includes(rel)) await apply(manifest(rel));
    }
    assert.deepEqual(failures, []);
    for (const k of [
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'Role',
      'RoleBinding',
      'ConfigMap',
      'CronJob',
      'Job',
    ])
      assert.ok(kinds.has(k), `deploy/ has a ${k}`);

    // The pods themselves, in namespaces enforcing "restricted": the workload objects above only warn.
    const [cronJob] = manifest('cronjob.yaml');
    const [job] = manifest('job.yaml');
    assert.deepEqual(
      podTemplateOf(job as K8sObject),
      podTemplateOf(cronJob as K8sObject),
      "the Job runs the CronJob's pod",
    );
    const pod: K8sObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'irsa-conformance-verify-dry-run', namespace: 'irsa-conformance' },
      spec: podTemplateOf(cronJob as K8sObject),
    };
    const admitted = await serverDryRun(admin, pod);
    assert.equal(
      admitted.status,
      201,
      `the CronJob's pod is admitted under restricted: ${admitted.body.slice(0, 400)}`,
    );

    const [plugin] = parseAllDocuments(readFileSync(path.join(DEPLOY, 'sonobuoy/irsa-conformance.yaml'), 'utf8')).map(
      (d) => d.toJSON() as Record<string, unknown>,
    );
    const config = (plugin as Record<string, Record<string, unknown>>)['sonobuoy-config'] as Record<string, unknown>;
    assert.deepEqual(
      [config.driver, config['plugin-name'], config['result-format']],
      ['Job', 'irsa-conformance', 'junit'],
    );
    assert.deepEqual(config['result-files'], ['junit.xml']);
    const container = (plugin as Record<string, V1PodSpec['containers'][number]>)
      .spec as V1PodSpec['containers'][number];
    const resultsEnv = container.env?.find((e) => e.name === 'SONOBUOY_RESULTS_DIR')?.value;
    assert.equal(
      container.volumeMounts?.find((m) => m.name === 'results')?.mountPath,
      resultsEnv,
      'the results volume is mounted where SONOBUOY_RESULTS_DIR says',
    );
    const pluginPod = sonobuoyPod(plugin as Record<string, unknown>, 'sonobuoy', { emptyDir: {} });
    const pluginAdmitted = await serverDryRun(admin, pluginPod);
    assert.equal(
      pluginAdmitted.status,
      201,
      `the plugin's pod is admitted under restricted: ${pluginAdmitted.body.slice(0, 400)}`,
    );

    const images = [
      ...[cronJob, job].map((o) => podTemplateOf(o as K8sObject).containers[0]?.image),
      container.image,
    ].map((i) => (i ?? '').replace(image?.ref ?? '\0', `irsa-conformance:${VERSION}`));
    assert.deepEqual(
      images,
      Array(3).fill(`irsa-conformance:${VERSION}`),
      'every manifest runs the image of this version',
    );
    assert.match(
      readFileSync(path.join(DEPLOY, 'kustomization.yaml'), 'utf8'),
      new RegExp(`newTag: ${VERSION.replaceAll('.', '\\.')}\\n`),
    );
  });

  it('deploy/rbac.yaml grants verify-only what it needs and nothing that writes', async () => {
    await apply([...manifest('rbac.yaml'), ...manifest('settings.yaml')]);
    const authz = admin.kc.makeApiClient(AuthorizationV1Api);
    const user = 'system:serviceaccount:irsa-conformance:irsa-conformance';
    const can = async (attrs: {
      verb: string;
      resource?: string;
      subresource?: string;
      group?: string;
      namespace?: string;
      name?: string;
      path?: string;
    }) => {
      const r = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user,
            groups: ['system:serviceaccounts', 'system:serviceaccounts:irsa-conformance', 'system:authenticated'],
            ...(attrs.path
              ? { nonResourceAttributes: { verb: attrs.verb, path: attrs.path } }
              : {
                  resourceAttributes: {
                    verb: attrs.verb,
                    resource: attrs.resource,
                    ...(attrs.subresource ? { subresource: attrs.subresource } : {}),
                    group: attrs.group ?? '',
                    ...(attrs.namespace ? { namespace: attrs.namespace } : {}),
                    ...(attrs.name ? { name: attrs.name } : {}),
                  },
                }),
          },
        },
      });
      return r.status?.allowed === true;
    };
    const ns = verified.namespace;
    const allowed = [
      { verb: 'list', resource: 'mutatingwebhookconfigurations', group: 'admissionregistration.k8s.io' },
      { verb: 'get', resource: 'nodes' },
      { verb: 'get', path: '/openid/v1/jwks' },
      { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: 'default', name: 'default' },
      { verb: 'get', resource: 'serviceaccounts', namespace: ns, name: verified.serviceAccount },
      {
        verb: 'create',
        resource: 'serviceaccounts',
        subresource: 'token',
        namespace: ns,
        name: verified.serviceAccount,
      },
      { verb: 'create', resource: 'pods', namespace: ns },
      { verb: 'delete', resource: 'pods', namespace: ns, name: 'verify-pod' },
      { verb: 'create', resource: 'pods', subresource: 'exec', namespace: ns, name: 'verify-pod' },
    ];
    const refused = [
      { verb: 'create', resource: 'pods', namespace: 'default' },
      { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: ns, name: 'another' },
      { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: 'kube-system', name: 'default' },
      { verb: 'get', resource: 'secrets', namespace: ns },
      { verb: 'list', resource: 'secrets' },
      { verb: 'update', resource: 'serviceaccounts', namespace: ns, name: verified.serviceAccount },
      { verb: 'patch', resource: 'mutatingwebhookconfigurations', group: 'admissionregistration.k8s.io' },
      { verb: 'create', resource: 'namespaces' },
      { verb: 'delete', resource: 'namespaces', name: ns },
      { verb: 'create', resource: 'configmaps', namespace: 'irsa-conformance' },
      { verb: 'list', resource: 'deployments', group: 'apps' },
    ];
    const wrong: string[] = [];
    for (const a of allowed) if (!(await can(a))) wrong.push(`refused but needed: ${JSON.stringify(a)}`);
    for (const a of refused) if (await can(a)) wrong.push(`allowed but not needed: ${JSON.stringify(a)}`);
    assert.deepEqual(wrong, []);
  });

  /** The live code path's environment against this target (what a user of a real cluster sets). */
  const liveEnv = (): Record<string, string> => ({
    IRSA_KUBECONFIG: target.descriptor.kubeconfigPath,
    IRSA_AWS_ENDPOINT: target.descriptor.aws.endpoint as string,
    IRSA_AWS_CA_BUNDLE: target.descriptor.aws.caBundlePath as string,
    IRSA_AWS_ACCOUNT_ID: target.descriptor.aws.accountId,
    IRSA_REGION: target.descriptor.aws.region,
    AWS_ACCESS_KEY_ID: target.descriptor.aws.credentials?.accessKeyId as string,
    AWS_SECRET_ACCESS_KEY: target.descriptor.aws.credentials?.secretAccessKey as string,
    IRSA_VERIFY_NAMESPACE: verified.namespace,
    IRSA_VERIFY_SERVICE_ACCOUNT: verified.serviceAccount,
    IRSA_VERIFY_ROLE_ARN: verified.roleArn as string,
    IRSA_VERIFY_ALLOWED_BUCKET: verified.appBucket,
    // The in-pod check's pod would need the setup's image, which a real node here does not have.
    IRSA_VERIFY_NO_POD: 'true',
  });

  const junitCases = (file: string): JUnitCase[] => readJUnit(readFileSync(file, 'utf8')).flatMap((s) => s.cases);

  it('the entrypoint under Sonobuoy (SONOBUOY_RESULTS_DIR), on this machine: done file, tarball, junit.xml; a failed check is a failed test case and the exit code 0', async () => {
    const results = path.join(work, 'host-results');
    mkdirSync(results, { recursive: true });
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: work,
      ...liveEnv(),
      // The role may list this one: the check that it is denied fails.
      IRSA_VERIFY_DENIED_BUCKET: verified.appBucket,
      SONOBUOY_RESULTS_DIR: results,
    };
    let stderr = '';
    const code = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', path.join(repoRoot, 'support/cli/entrypoint.ts'), 'verify'],
        {
          cwd: repoRoot,
          env,
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      child.on('close', (c) => resolve(c ?? 1));
    });
    assert.equal(code, 0, `exit 0 under Sonobuoy whatever the checks found:\n${stderr.slice(-2000)}`);
    const tarball = path.join(results, SONOBUOY_TARBALL);
    assert.equal(readFileSync(path.join(results, 'done'), 'utf8'), tarball, 'the done file names the tarball');
    const unpacked = path.join(work, 'host-unpacked');
    mkdirSync(unpacked);
    await new Promise<void>((resolve, reject) =>
      spawn('tar', ['-xzf', tarball, '-C', unpacked]).on('close', (c) =>
        c === 0 ? resolve() : reject(new Error(`tar ${c}`)),
      ),
    );
    const cases = junitCases(path.join(unpacked, 'irsa-conformance', 'junit.xml'));
    const byName = new Map(cases.map((c) => [c.name, c]));
    assert.equal(
      byName.get('The discovery documents are public')?.status,
      'passed',
      'the infrastructure checks are there',
    );
    assert.equal(byName.get("STS exchanges the token for the role's credentials")?.status, 'passed');
    const deniedCheck = byName.get('The role may read the allowed bucket and is denied the other');
    assert.equal(deniedCheck?.status, 'failed', 'the failed check is a failed test case');
    assert.ok(
      existsSync(path.join(unpacked, 'irsa-conformance', 'verify-summary.md')),
      'the other reports travel with it',
    );
  });

  /** Waits until `done()` returns a value, polling; fails with `describe()` after the timeout. */
  const waitFor = async <T>(
    what: string,
    timeoutMs: number,
    done: () => Promise<T | undefined>,
    describe: () => Promise<string>,
  ) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await done();
      if (v !== undefined) return v;
      if (Date.now() > deadline) assert.fail(`${what} within ${timeoutMs / 1000} s: ${await describe()}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  };

  const podDiagnosis = async (namespace: string, selector?: string, name?: string) => {
    const pods = (
      await admin.core.listNamespacedPod({ namespace, ...(selector ? { labelSelector: selector } : {}) })
    ).items.filter((p) => !name || p.metadata?.name === name);
    const parts: string[] = [];
    for (const p of pods) {
      parts.push(
        `pod ${p.metadata?.name}: ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((s) => s.state))}`,
      );
      const log = await admin.core
        .readNamespacedPodLog({
          namespace,
          name: p.metadata?.name as string,
          container: p.spec?.containers[0]?.name as string,
        })
        .catch((e: unknown) => `(no log: ${(e as Error).message})`);
      const text = String(log);
      // The lines that say what happened (the entrypoint's, the run's errors and totals), then the end.
      parts.push(
        text
          .split('\n')
          .filter((l) =>
            /^(\[entrypoint\]|irsa:|hint:|Scenarios:|irsa-conformance run|\*\*Result:)|Error|forbidden/.test(l),
          )
          .join('\n'),
        text.slice(-3000),
      );
    }
    return parts.join('\n') || 'no pod';
  };

  /** What the embedded cluster needs of a pod of the harness (see the header). */
  const forThisCluster = (spec: V1PodSpec, hostDir: string, mountPath: string, volume: string) => {
    spec.hostNetwork = true;
    const c = spec.containers[0] as V1PodSpec['containers'][number];
    c.imagePullPolicy = 'Never';
    c.env = [
      ...(c.env ?? []),
      { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' },
      { name: 'KUBERNETES_SERVICE_PORT', value: String(apiserverPort) },
      { name: 'IRSA_AWS_ENDPOINT', value: target.descriptor.aws.endpoint as string },
      { name: 'IRSA_AWS_CA_BUNDLE', value: POD_CA_BUNDLE },
      // The AWS SDK's own exchange of the IRSA token (the credential chain's STS call).
      { name: 'AWS_ENDPOINT_URL', value: target.descriptor.aws.endpoint as string },
      { name: 'NODE_EXTRA_CA_CERTS', value: POD_CA_BUNDLE },
      { name: 'AWS_REGION', value: target.descriptor.aws.region },
      { name: 'IRSA_VERIFY_NO_POD', value: 'true' },
    ];
    mkdirSync(hostDir, { recursive: true });
    chmodSync(hostDir, 0o777);
    spec.volumes = (spec.volumes ?? []).map((v) =>
      v.name === volume ? { name: volume, hostPath: { path: hostDir, type: 'Directory' } } : v,
    );
    assert.ok(
      c.volumeMounts?.some((m) => m.name === volume && m.mountPath === mountPath),
      `the pod mounts ${volume} at ${mountPath}`,
    );
  };

  const relaxPodSecurity = (namespace: string) =>
    admin.objects.patch(
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } },
      },
      undefined,
      undefined,
      undefined,
      undefined,
      PatchStrategy.MergePatch,
    );

  it('the image runs as deploy/job.yaml in the cluster, against it, in verify-only mode: in-cluster configuration, least-privilege RBAC, IRSA for its own credentials; every check in its JUnit passes', {
    skip: noRealNode,
  }, async () => {
    const [job] = manifest('job.yaml') as [K8sObject];
    const spec = podTemplateOf(job);
    const reports = path.join(work, 'job-reports');
    forThisCluster(spec, reports, '/reports', 'reports');
    // Host network and a host directory are not "restricted": allowed here for this test only.
    await relaxPodSecurity('irsa-conformance');
    const created = (await admin.objects.create(job)) as K8sObject;
    const name = created.metadata?.name as string;
    const selector = `job-name=${name}`;
    const finished = await waitFor(
      `the Job ${name} finishes`,
      600_000,
      async () => {
        const j = await admin.objects.read({
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: { name, namespace: 'irsa-conformance' },
        });
        const s = (j as { status?: { succeeded?: number; failed?: number } }).status;
        return s?.succeeded ? 'succeeded' : s?.failed ? 'failed' : undefined;
      },
      () => podDiagnosis('irsa-conformance', selector),
    );
    const logs = await podDiagnosis('irsa-conformance', selector);
    assert.equal(finished, 'succeeded', `the Job succeeded (every check passed):\n${logs}`);
    assert.match(logs, /\[entrypoint\] in a pod \(ServiceAccount irsa-conformance\/irsa-conformance\)/);
    assert.match(
      logs,
      new RegExp(`GetCallerIdentity \\(arn:aws:sts::\\d+:assumed-role/${harnessRoleArn.split('/').pop()}/`),
      'IRSA: the harness is a session of its own role (the summary names the caller)',
    );
    assert.match(logs, /\*\*Result: PASS\*\*/, 'the log ends with the verify summary');
    const cases = junitCases(path.join(reports, 'junit.xml'));
    const notPassed = cases.filter((c) => c.status !== 'passed');
    assert.deepEqual(
      notPassed.map((c) => `${c.name}: ${c.status}`),
      ['A pod of the ServiceAccount gets the role and uses it: skipped'],
      'every check passes (the in-pod one is not run: IRSA_VERIFY_NO_POD)',
    );
    for (const n of [
      'The discovery documents are public',
      'One issuer, the same string everywhere',
      "STS exchanges the token for the role's credentials",
      'The role may read the allowed bucket and is denied the other',
    ])
      assert.ok(
        cases.some((c) => c.name === n),
        `the report has "${n}"`,
      );
  });

  it('the image runs as the pod Sonobuoy makes of deploy/sonobuoy/irsa-conformance.yaml, and hands over its results as a plugin must', {
    skip: noRealNode,
  }, async () => {
    await relaxPodSecurity('sonobuoy');
    const text = readFileSync(path.join(DEPLOY, 'sonobuoy/irsa-conformance.yaml'), 'utf8');
    let edited = text;
    for (const [from, to] of edits) edited = edited.replaceAll(from, to);
    const plugin = parseAllDocuments(edited)[0]?.toJSON() as Record<string, unknown>;
    const results = path.join(work, 'sonobuoy-results');
    const pod = sonobuoyPod(plugin, 'sonobuoy', { emptyDir: {} });
    forThisCluster(pod.spec as V1PodSpec, results, '/tmp/sonobuoy/results', 'results');
    const name = pod.metadata?.name as string;
    await admin.objects.create(pod);
    // In the Sonobuoy worker's place: wait for the done file, read the file it names.
    const done = await waitFor(
      'the plugin writes the done file',
      600_000,
      async () =>
        existsSync(path.join(results, 'done')) ? readFileSync(path.join(results, 'done'), 'utf8') : undefined,
      () => podDiagnosis('sonobuoy', undefined, name),
    );
    assert.equal(
      done,
      `/tmp/sonobuoy/results/${SONOBUOY_TARBALL}`,
      'the done file names the tarball, as the container sees it',
    );
    const unpacked = path.join(work, 'sonobuoy-unpacked');
    mkdirSync(unpacked);
    await new Promise<void>((resolve, reject) =>
      spawn('tar', ['-xzf', path.join(results, SONOBUOY_TARBALL), '-C', unpacked]).on('close', (c) =>
        c === 0 ? resolve() : reject(new Error(`tar ${c}`)),
      ),
    );
    const cases = junitCases(path.join(unpacked, 'irsa-conformance', 'junit.xml'));
    assert.deepEqual(
      cases.filter((c) => c.status === 'failed').map((c) => `${c.name}: ${c.message?.split('\n')[0]}`),
      [],
      `no check fails:\n${await podDiagnosis('sonobuoy', undefined, name)}`,
    );
    assert.ok(cases.length >= 10, `the checks are there (${cases.length})`);
    const phase = await waitFor(
      'the plugin container exits',
      120_000,
      async () => {
        const p = await admin.core.readNamespacedPod({ namespace: 'sonobuoy', name });
        return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p.status.phase : undefined;
      },
      () => podDiagnosis('sonobuoy', undefined, name),
    );
    assert.equal(phase, 'Succeeded', 'the plugin container exits 0 (a failure would be a plugin error, not a result)');
  });
});
