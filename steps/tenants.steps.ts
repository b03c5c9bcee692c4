/**
 * Steps of the tenant isolation matrix (features/05-tenant-isolation.feature). Tenants are
 * run-scoped and shared between scenarios and worker threads (support/provision/tenants.ts); a
 * scenario only reads and uses them. "Every tenant" means tenants 1..`tenants` (IRSA_TENANTS).
 */
import assert from 'node:assert/strict';
import { GetPolicyCommand, GetPolicyVersionCommand } from '@aws-sdk/client-iam';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Given, Then, When } from '@cucumber/cucumber';
import { isAssumedRoleArn, s3ObjectArn } from '../support/aws/arn.ts';
import { awsErrorName, describeAwsError } from '../support/aws/errors.ts';
import { readTrustPolicy } from '../support/aws/iam.ts';
import { exchangeToken } from '../support/aws/sts.ts';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { explainUnmutatedPod } from '../support/diagnose/admission.ts';
import { batch } from '../support/kube/exec-batch.ts';
import { execInPod } from '../support/kube/ops.ts';
import { issuerHostPath } from '../support/oidc/discovery.ts';
import { parseIamDocument } from '../support/policy/document.ts';
import { simulatePermission, simulateTrust } from '../support/policy/simulate.ts';
import type { Tenant } from '../support/provision/application.ts';
import { ensureTenantAws, ensureTenantPod, matrixTenants, type TenantPod } from '../support/provision/tenants.ts';
import { registerSecret } from '../support/redact.ts';

interface MatrixState {
  pod?: TenantPod;
  ownWrite?: {
    key: string;
    identity: { exitCode: number; output: string };
    write: { exitCode: number; output: string };
  };
  attempts?: { bucket: string; owner: string; outcome: 'written' | string; message: string }[];
  sessionArn?: string;
}
const matrix = new WeakMap<IrsaWorld, MatrixState>();

function stateOf(world: IrsaWorld): MatrixState {
  const s = matrix.get(world) ?? {};
  matrix.set(world, s);
  return s;
}

async function allTenants(world: IrsaWorld): Promise<Tenant[]> {
  const infra = await world.infrastructure();
  return matrixTenants(world.state.runId, world.state.config.tenants, world.state.target.aws.accountId, infra);
}

async function tenantNumbered(world: IrsaWorld, n: number): Promise<Tenant> {
  const all = await allTenants(world);
  const t = all[n - 1];
  assert.ok(t, `tenant ${n} is outside the matrix of ${all.length} tenant(s) (IRSA_TENANTS)`);
  world.tenants.set(t.label, t);
  return t;
}

Given(
  'tenant {int} of the isolation matrix has its namespace, ServiceAccount, role, bucket and pod',
  async function (this: IrsaWorld, n: number) {
    const infra = await this.infrastructure();
    const tenant = await tenantNumbered(this, n);
    const ctx = this.provisionContext();
    const [, pod] = await Promise.all([
      ensureTenantAws(ctx, this.state.runDir, tenant, infra),
      ensureTenantPod(ctx, this.state.runDir, tenant),
    ]);
    stateOf(this).pod = pod;
    // Failure diagnostics dump the pods a scenario used.
    this.pods.set(tenant.label, { metadata: { namespace: pod.namespace, name: pod.name } });
    this.attach(
      `tenant ${n}: namespace ${tenant.namespace}, ServiceAccount ${tenant.serviceAccount}, bucket ${tenant.appBucket}, role ${tenant.roleArn}, pod ${pod.name} (Kubernetes part ready in ${pod.ms} ms)`,
      { mediaType: 'text/plain', fileName: `tenant ${n}.txt` },
    );
  },
);

Given('every tenant of the isolation matrix has its role and bucket', async function (this: IrsaWorld) {
  const infra = await this.infrastructure();
  const ctx = this.provisionContext();
  const all = await allTenants(this);
  await Promise.all(all.map((t) => ensureTenantAws(ctx, this.state.runDir, t, infra)));
});

/** The tenant's pod, which must carry the webhook's mutation: if not, the failure says why. */
async function requirePod(world: IrsaWorld, n: number): Promise<TenantPod> {
  const pod = stateOf(world).pod;
  assert.ok(pod, `tenant ${n} has no pod in this scenario`);
  if (!pod.mutated) {
    const current = await world.clients.core.readNamespacedPod({ namespace: pod.namespace, name: pod.name });
    const why = await explainUnmutatedPod(world.clients, current, world.state.target.webhookVersion);
    assert.fail(`the pod of tenant ${n} (${pod.namespace}/${pod.name}) was admitted without the role: ${why}`);
  }
  return pod;
}

When('the pod of tenant {int} writes to its own bucket', async function (this: IrsaWorld, n: number) {
  const tenant = await tenantNumbered(this, n);
  const pod = await requirePod(this, n);
  const key = `irsa-matrix/${this.scopeId}.txt`;
  const b = batch({
    identity: 'aws sts get-caller-identity --output json',
    write: `echo "${this.uploadBody()}" | aws s3 cp - s3://${tenant.appBucket}/${key}`,
  });
  const r = await execInPod(
    this.clients,
    pod.namespace,
    pod.name,
    pod.container,
    ['sh', '-c', b.script],
    this.state.config.timeouts.assertSeconds,
  );
  const out = b.parse(r.stdout);
  const missing = { exitCode: -1, output: `no result (exec exit ${r.exitCode}: ${r.stderr.trim().slice(0, 300)})` };
  const identity = out.get('identity') ?? missing;
  const write = out.get('write') ?? missing;
  this.lastExec = {
    ...r,
    label: `tenant ${n}`,
    command: `in pod ${pod.namespace}/${pod.name}: get-caller-identity; aws s3 cp - s3://${tenant.appBucket}/${key}`,
  };
  this.log(
    `get-caller-identity (exit ${identity.exitCode}):\n${identity.output}\naws s3 cp (exit ${write.exitCode}):\n${write.output}`,
  );
  stateOf(this).ownWrite = { key, identity, write };
});

Then('tenant {int} wrote its own bucket as a session of its own role', async function (this: IrsaWorld, n: number) {
  const tenant = await tenantNumbered(this, n);
  const w = stateOf(this).ownWrite;
  assert.ok(w, 'the pod wrote nothing in this scenario');
  assert.equal(
    w.identity.exitCode,
    0,
    `aws sts get-caller-identity failed in the pod of tenant ${n}: ${w.identity.output.slice(0, 400)}`,
  );
  const arn = (JSON.parse(w.identity.output) as { Arn?: string }).Arn ?? '';
  assert.ok(
    isAssumedRoleArn(arn, tenant.roleName),
    `the pod of tenant ${n} acts as ${arn}, not as a session of its role ${tenant.roleName}`,
  );
  assert.equal(
    w.write.exitCode,
    0,
    `the pod of tenant ${n} could not write s3://${tenant.appBucket}/${w.key}: ${w.write.output.slice(0, 400)}`,
  );
  const obj = await this.clients.s3.send(new GetObjectCommand({ Bucket: tenant.appBucket, Key: w.key }));
  const body = (await (obj.Body as { transformToString(): Promise<string> }).transformToString()).trim();
  assert.equal(
    body,
    this.uploadBody(),
    `s3://${tenant.appBucket}/${w.key} does not hold what the pod of tenant ${n} wrote`,
  );
});

When(
  "tenant {int} tries to write to every other tenant's bucket with the session its pod gets",
  async function (this: IrsaWorld, n: number) {
    const tenant = await tenantNumbered(this, n);
    const pod = await requirePod(this, n);
    // What the pod's credential chain does with its env: AssumeRoleWithWebIdentity with the pod's
    // AWS_ROLE_ARN and the token in AWS_WEB_IDENTITY_TOKEN_FILE, as read inside the pod (a shell
    // read: no AWS CLI start per tenant). The token and the session's secrets are never logged.
    const r = await execInPod(
      this.clients,
      pod.namespace,
      pod.name,
      pod.container,
      ['sh', '-c', 'printf "%s\\n" "$AWS_ROLE_ARN" && cat "$AWS_WEB_IDENTITY_TOKEN_FILE"'],
      this.state.config.timeouts.assertSeconds,
    );
    const [roleArn = '', token = ''] = r.stdout.split('\n').map((l) => l.trim());
    if (token) registerSecret(token);
    assert.ok(
      r.exitCode === 0 && roleArn && token,
      `the pod of tenant ${n} has no AWS_ROLE_ARN or no readable AWS_WEB_IDENTITY_TOKEN_FILE (exit ${r.exitCode}): ${r.stderr.trim().slice(0, 400)}`,
    );
    const session = await exchangeToken(this.clients, token, roleArn, `irsa-matrix-${this.scopeId}`).catch(
      (e: unknown) =>
        assert.fail(`the pod of tenant ${n} could not get a session of ${roleArn}: ${describeAwsError(e)}`),
    );
    stateOf(this).sessionArn = session.assumedRoleArn;
    // Shares the worker's connection pool (awsClientOptions): not destroyed here.
    const s3 = new S3Client({
      ...this.clients.awsClientOptions(session.credentials),
      forcePathStyle: this.state.target.aws.forcePathStyle,
    });
    const others = (await allTenants(this)).filter((t) => t.label !== tenant.label);
    const key = `irsa-matrix/from-tenant-${n}-${this.scopeId}.txt`;
    stateOf(this).attempts = await Promise.all(
      others.map(async (o) => {
        try {
          await s3.send(new PutObjectCommand({ Bucket: o.appBucket, Key: key, Body: this.uploadBody() }));
          return { bucket: o.appBucket, owner: o.label, outcome: 'written', message: 'PutObject succeeded' };
        } catch (e) {
          return {
            bucket: o.appBucket,
            owner: o.label,
            outcome: awsErrorName(e) ?? 'error',
            message: describeAwsError(e),
          };
        }
      }),
    );
    this.attach(
      `session ${stateOf(this).sessionArn}\n${(stateOf(this).attempts ?? []).map((a) => `PutObject s3://${a.bucket}/${key} (${a.owner}): ${a.message}`).join('\n')}`,
      { mediaType: 'text/plain', fileName: 'write attempts.txt' },
    );
  },
);

async function permissionPolicyInIam(world: IrsaWorld, policyArn: string): Promise<unknown> {
  const p = await world.clients.iam.send(new GetPolicyCommand({ PolicyArn: policyArn }));
  const v = await world.clients.iam.send(
    new GetPolicyVersionCommand({ PolicyArn: policyArn, VersionId: p.Policy?.DefaultVersionId }),
  );
  return parseIamDocument(v.PolicyVersion?.Document ?? '');
}

async function policyArnOf(world: IrsaWorld, tenant: Tenant): Promise<string> {
  const infra = await world.infrastructure();
  return (await ensureTenantAws(world.provisionContext(), world.state.runDir, tenant, infra)).policyArn;
}

Then("tenant {int} is denied every other tenant's bucket", async function (this: IrsaWorld, n: number) {
  const tenant = await tenantNumbered(this, n);
  const s = stateOf(this);
  assert.ok(s.attempts, 'no write to another tenant was attempted in this scenario');
  assert.ok(
    s.sessionArn && isAssumedRoleArn(s.sessionArn, tenant.roleName),
    `the pod of tenant ${n} got a session of ${s.sessionArn}, not of its role ${tenant.roleName}`,
  );
  const problems: string[] = [];
  const policy = {
    name: tenant.policyName,
    document: await permissionPolicyInIam(this, await policyArnOf(this, tenant)),
  };
  for (const a of s.attempts) {
    if (a.outcome === 'AccessDenied') continue;
    if (a.outcome === 'written') {
      const sim = await simulatePermission({
        policies: [policy],
        principalArn: tenant.roleArn as string,
        action: 's3:PutObject',
        resource: s3ObjectArn(a.bucket, 'x', this.partition),
      });
      problems.push(
        `tenant ${n} wrote the bucket ${a.bucket} of ${a.owner}: allowed by ${sim.allowingStatements.join(', ') || `no statement of its policy (${sim.explanation}); look for a bucket policy of ${a.bucket}`}`,
      );
    } else problems.push(`writing the bucket ${a.bucket} of ${a.owner} failed with ${a.message}, not AccessDenied`);
  }
  assert.deepEqual(problems, [], `tenant ${n} is not isolated from the other tenants`);
});

Then(
  "the trust policy of tenant {int} admits its own ServiceAccount and no other tenant's",
  async function (this: IrsaWorld, n: number) {
    const infra = await this.infrastructure();
    const tenant = await tenantNumbered(this, n);
    const trustPolicy = await readTrustPolicy(this.clients, tenant.roleName);
    const audience = this.state.target.dialect.audience;
    const simulate = (t: Tenant) =>
      simulateTrust({
        trustPolicy,
        identityProviderArn: infra.identityProviderArn,
        claims: { sub: `system:serviceaccount:${t.namespace}:${t.serviceAccount}`, aud: audience },
        issuerHostPath: issuerHostPath(infra.issuer),
        roleArn: tenant.roleArn as string,
      });
    const own = await simulate(tenant);
    assert.equal(
      own.decision,
      'Allowed',
      `the trust policy of tenant ${n} does not admit its own ServiceAccount: ${own.explanation}`,
    );
    const problems: string[] = [];
    for (const other of (await allTenants(this)).filter((t) => t.label !== tenant.label)) {
      const sim = await simulate(other);
      if (sim.decision === 'Allowed')
        problems.push(`it admits ${other.label} (${other.namespace}/${other.serviceAccount}): ${sim.explanation}`);
    }
    assert.deepEqual(problems, [], `the trust policy of tenant ${n} (${tenant.roleName}) admits other tenants`);
  },
);

Then(
  "the permission policy of tenant {int} allows writing its own bucket and no other tenant's",
  async function (this: IrsaWorld, n: number) {
    const tenant = await tenantNumbered(this, n);
    const policy = {
      name: tenant.policyName,
      document: await permissionPolicyInIam(this, await policyArnOf(this, tenant)),
    };
    const simulate = (bucket: string) =>
      simulatePermission({
        policies: [policy],
        principalArn: tenant.roleArn as string,
        action: 's3:PutObject',
        resource: s3ObjectArn(bucket, 'x', this.partition),
      });
    const own = await simulate(tenant.appBucket);
    assert.equal(
      own.decision,
      'Allowed',
      `the permission policy of tenant ${n} does not allow writing its own bucket: ${own.explanation}`,
    );
    const problems: string[] = [];
    for (const other of (await allTenants(this)).filter((t) => t.label !== tenant.label)) {
      const sim = await simulate(other.appBucket);
      if (sim.decision === 'Allowed')
        problems.push(`it allows s3:PutObject on ${other.appBucket} of ${other.label}: ${sim.explanation}`);
    }
    assert.deepEqual(
      problems,
      [],
      `the permission policy ${tenant.policyName} of tenant ${n} reaches other tenants' buckets`,
    );
  },
);
