/**
 * Steps of the verify-only feature: the path of the ServiceAccount and role the user names, from a
 * token to STS to S3, on the cluster and account as they are. Operations live in support/verify/
 * (the subject, bucket reads as the role, the one pod), support/kube/tokens.ts, support/aws/iam.ts
 * and support/aws/sts.ts; the clients refuse writes on a read-only target.
 */
import assert from 'node:assert/strict';
import { Given, Then, When } from '@cucumber/cucumber';
import type { V1Pod } from '@kubernetes/client-node';
import { isAssumedRoleArn } from '../support/aws/arn.ts';
import { describeAwsError } from '../support/aws/errors.ts';
import { readTrustPolicy } from '../support/aws/iam.ts';
import { exchangeToken, type RoleSession } from '../support/aws/sts.ts';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { diagnoseToken } from '../support/diagnose/token.ts';
import { execInPod, waitForReadyPod } from '../support/kube/ops.ts';
import { requestServiceAccountToken } from '../support/kube/tokens.ts';
import { issuerHostPath } from '../support/oidc/discovery.ts';
import { decodeTokenClaims } from '../support/oidc/token.ts';
import { simulateTrust } from '../support/policy/simulate.ts';
import { readIdentityProvider } from '../support/provision/infrastructure.ts';
import { listBucketAs } from '../support/verify/bucket.ts';
import { formatDetected } from '../support/verify/detected.ts';
import { VERIFY_POD_USER, verifyPodImage, verifyPodManifest } from '../support/verify/pod.ts';
import { type VerifySubject, verifySubject } from '../support/verify/subject.ts';

interface VerifyState {
  subject: VerifySubject;
  token?: string;
  session?: RoleSession;
  exchangeError?: string;
  pod?: V1Pod;
}
// Tokens and credentials stay in memory, per scenario, never on the world where a formatter could see them.
const states = new WeakMap<IrsaWorld, VerifyState>();

function state(world: IrsaWorld): VerifyState {
  const s = states.get(world);
  if (!s) throw new Error('the Background step "Given the ServiceAccount, role and buckets …" did not run');
  return s;
}

function token(world: IrsaWorld): string {
  const t = state(world).token;
  assert.ok(t, 'no token was requested in this scenario');
  return t;
}

function session(world: IrsaWorld): RoleSession {
  const s = state(world);
  assert.ok(s.session, `STS did not return credentials for ${s.subject.roleArn}: ${s.exchangeError ?? 'not tried'}`);
  return s.session;
}

Given('the ServiceAccount, role and buckets named in the verify-only settings', function (this: IrsaWorld) {
  const subject = verifySubject(this.state.config);
  states.set(this, { subject });
  this.attach(
    [
      `ServiceAccount: ${subject.namespace}/${subject.serviceAccount}`,
      `role: ${subject.roleArn}`,
      `allowed bucket: ${subject.allowedBucket}`,
      `denied bucket: ${subject.deniedBucket}`,
      `pod: ${subject.noPod ? 'none (IRSA_VERIFY_NO_POD)' : `at most one, in ${subject.namespace}`}`,
      `writes: ${this.state.target.readOnly ? 'refused by the clients (read-only target)' : 'ALLOWED (not a read-only target)'}`,
    ].join('\n'),
    { mediaType: 'text/plain', fileName: 'what is checked.txt' },
  );
});

Then(
  'the detected cluster dialect and where each value came from are attached to the report',
  function (this: IrsaWorld) {
    const detected = this.state.target.detected ?? [];
    assert.ok(detected.length > 0, `the ${this.state.target.name} target reported no detected values`);
    const d = this.state.target.dialect;
    this.attach(
      `${formatDetected(detected)}\n\ndialect in force: prefix ${d.annotationPrefix}, audience ${d.audience}, mount ${d.mountPath}/${d.tokenFileName}, expiration ${d.defaultExpirationSeconds} s`,
      { mediaType: 'text/plain', fileName: 'detected dialect.txt' },
    );
  },
);

Then(
  "the ServiceAccount has the role-arn annotation of the webhook's prefix, set to the named role ARN",
  async function (this: IrsaWorld) {
    const { subject } = state(this);
    const prefix = this.state.target.dialect.annotationPrefix;
    const sa = await this.clients.core.readNamespacedServiceAccount({
      namespace: subject.namespace,
      name: subject.serviceAccount,
    });
    const annotations = sa.metadata?.annotations ?? {};
    const key = `${prefix}/role-arn`;
    const others = Object.keys(annotations).filter((k) => k.endsWith('/role-arn') && k !== key);
    assert.equal(
      annotations[key],
      subject.roleArn,
      `ServiceAccount ${subject.namespace}/${subject.serviceAccount} has ${key}=${JSON.stringify(annotations[key])}, expected ${subject.roleArn}${others.length ? ` (it has ${others.join(', ')}: another prefix than the webhook's ${prefix})` : ''}`,
    );
  },
);

When("the cluster issues a token for the ServiceAccount with the webhook's audience", async function (this: IrsaWorld) {
  const s = state(this);
  s.token = await requestServiceAccountToken(this.clients, s.subject, this.state.target.dialect.audience);
  this.attachJson('token claims', decodeTokenClaims(s.token));
});

Then(
  'the token verifies against the published discovery documents and the identity provider, as STS checks it',
  async function (this: IrsaWorld) {
    const infra = await this.infrastructure();
    let identityProvider: { url: string; clientIds: string[] } | undefined;
    try {
      identityProvider = await readIdentityProvider(this.clients, infra.identityProviderArn);
    } catch (e) {
      this.attach(`identity provider ${infra.identityProviderArn}: ${describeAwsError(e)}`, {
        mediaType: 'text/plain',
        fileName: 'identity provider.txt',
      });
    }
    const diagnosis = await diagnoseToken({
      token: token(this),
      fetchJson: this.clients.anonymousGetJson,
      ...(identityProvider ? { identityProvider } : {}),
    });
    this.attach(
      diagnosis.checks.map((c) => `${c.ok ? 'ok  ' : c.skipped ? 'skip' : 'FAIL'} ${c.name}: ${c.detail}`).join('\n'),
      { mediaType: 'text/plain', fileName: 'token diagnosis.txt' },
    );
    assert.ok(identityProvider, `no IAM OIDC identity provider ${infra.identityProviderArn}: STS refuses every token`);
    assert.ok(diagnosis.ok, `STS would refuse the ServiceAccount's token: ${diagnosis.firstFailure}`);
  },
);

Then("the named role's trust policy admits the token", async function (this: IrsaWorld) {
  const s = state(this);
  const infra = await this.infrastructure();
  const claims = decodeTokenClaims(token(this));
  const trustPolicy = await readTrustPolicy(this.clients, s.subject.roleName);
  this.attachJson('trust policy', trustPolicy);
  const sim = await simulateTrust({
    trustPolicy,
    identityProviderArn: infra.identityProviderArn,
    claims: { sub: claims.sub ?? '', aud: claims.aud[0] ?? '' },
    issuerHostPath: issuerHostPath(claims.iss ?? ''),
    roleArn: s.subject.roleArn,
  });
  this.attach(`trust policy simulation: ${sim.decision}: ${sim.explanation}`, {
    mediaType: 'text/plain',
    fileName: 'trust policy simulation.txt',
  });
  assert.equal(
    sim.decision,
    'Allowed',
    `the trust policy of ${s.subject.roleArn} does not admit the token: ${sim.explanation}`,
  );
});

When('the token is exchanged at STS for credentials of the named role', async function (this: IrsaWorld) {
  const s = state(this);
  try {
    s.session = await exchangeToken(this.clients, token(this), s.subject.roleArn);
    this.attach(`AssumeRoleWithWebIdentity: ${s.session.assumedRoleArn}`, {
      mediaType: 'text/plain',
      fileName: 'STS exchange.txt',
    });
  } catch (e) {
    // The next step says what failed; a diagnosis is in the token scenario.
    s.exchangeError = describeAwsError(e);
    this.attach(`AssumeRoleWithWebIdentity failed: ${s.exchangeError}`, {
      mediaType: 'text/plain',
      fileName: 'STS exchange.txt',
    });
  }
});

Then('the credentials are those of a session of the named role', function (this: IrsaWorld) {
  const s = state(this);
  const arn = session(this).assumedRoleArn;
  assert.ok(
    isAssumedRoleArn(arn, s.subject.roleName),
    `STS returned a session ${arn}, not of role ${s.subject.roleName}`,
  );
});

Then("with the role's credentials, listing the allowed bucket succeeds", async function (this: IrsaWorld) {
  const s = state(this);
  const r = await listBucketAs(this.clients, this.state.target, session(this), s.subject.allowedBucket);
  assert.ok(
    r.ok,
    `listing s3://${s.subject.allowedBucket} with ${s.subject.roleName}'s credentials failed: ${r.ok ? '' : r.detail}`,
  );
});

Then(
  "with the role's credentials, listing the denied bucket fails with AccessDenied",
  async function (this: IrsaWorld) {
    const s = state(this);
    const r = await listBucketAs(this.clients, this.state.target, session(this), s.subject.deniedBucket);
    assert.ok(
      !r.ok,
      `listing s3://${s.subject.deniedBucket} with ${s.subject.roleName}'s credentials succeeded: the role is not least privilege (or the bucket is public)`,
    );
    assert.equal(
      r.code,
      'AccessDenied',
      `listing s3://${s.subject.deniedBucket} failed with ${r.detail}, expected AccessDenied`,
    );
  },
);

Given('one short-lived pod of the ServiceAccount in its namespace', async function (this: IrsaWorld) {
  const s = state(this);
  if (s.subject.noPod) {
    this.attach('Skipped: IRSA_VERIFY_NO_POD is set, so verify-only creates no pod', {
      mediaType: 'text/plain',
      fileName: 'skip reason.txt',
    });
    return 'skipped';
  }
  const name = `irsa-verify-${this.state.runId}`;
  const ctx = this.provisionContext();
  const body = verifyPodManifest({
    name,
    subject: s.subject,
    image: verifyPodImage(this.shared.setup, this.state.config),
    runId: this.state.runId,
    // OpenShift's restricted SCC assigns the user from the namespace's range, and refuses any other.
    ...(this.state.target.openshift ? {} : { runAsUser: VERIFY_POD_USER }),
    env: this.state.target.podAwsEnv,
  });
  await this.clients.core.createNamespacedPod({ namespace: s.subject.namespace, body });
  ctx.ledger.record(ctx.scope, {
    kind: 'k8s-namespaced-object',
    apiVersion: 'v1',
    k8sKind: 'Pod',
    namespace: s.subject.namespace,
    name,
  });
  s.pod = await waitForReadyPod(
    this.clients,
    s.subject.namespace,
    `app=${name}`,
    this.state.config.timeouts.assertSeconds,
  );
  return undefined;
});

function verifyPod(world: IrsaWorld): V1Pod {
  const p = state(world).pod;
  assert.ok(p, 'no pod was created in this scenario');
  return p;
}

async function inPod(world: IrsaWorld, command: string) {
  const pod = verifyPod(world);
  const r = await execInPod(
    world.clients,
    pod.metadata?.namespace as string,
    pod.metadata?.name as string,
    pod.spec?.containers[0]?.name as string,
    ['sh', '-c', command],
    world.state.config.timeouts.assertSeconds,
  );
  world.log(
    `$ ${command}\n(exit ${r.exitCode})\n${r.stdout.slice(0, 2000)}${r.stderr ? `\nstderr: ${r.stderr.slice(0, 2000)}` : ''}`,
  );
  return r;
}

Then(
  'the webhook injected the role ARN, the token file and the projected token volume into the pod',
  function (this: IrsaWorld) {
    const s = state(this);
    const pod = verifyPod(this);
    const d = this.state.target.dialect;
    for (const c of pod.spec?.containers ?? []) {
      const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(
        env.get('AWS_ROLE_ARN'),
        s.subject.roleArn,
        `container ${c.name}: AWS_ROLE_ARN is ${JSON.stringify(env.get('AWS_ROLE_ARN'))}: the webhook did not mutate the pod (is it registered and answering? is the ServiceAccount annotated with ${d.annotationPrefix}/role-arn?)`,
      );
      assert.equal(env.get('AWS_WEB_IDENTITY_TOKEN_FILE'), `${d.mountPath}/${d.tokenFileName}`);
    }
    const source = (pod.spec?.volumes ?? [])
      .flatMap((v) => v.projected?.sources ?? [])
      .find((p) => p.serviceAccountToken?.audience !== undefined)?.serviceAccountToken;
    assert.ok(source, 'the pod has no projected service-account token volume');
    assert.equal(
      source.audience,
      d.audience,
      `the projected token has audience ${source.audience}, expected ${d.audience}`,
    );
  },
);

Then('inside the pod the AWS CLI runs as a session of the named role', async function (this: IrsaWorld) {
  const s = state(this);
  const r = await inPod(this, 'aws sts get-caller-identity --output json');
  assert.equal(r.exitCode, 0, `aws sts get-caller-identity failed in the pod: ${r.stderr.trim().slice(0, 500)}`);
  const arn = (JSON.parse(r.stdout) as { Arn?: string }).Arn ?? '';
  assert.ok(
    isAssumedRoleArn(arn, s.subject.roleName),
    `inside the pod the caller is ${arn}, not a session of ${s.subject.roleName}`,
  );
});

Then('inside the pod the AWS CLI lists the allowed bucket', async function (this: IrsaWorld) {
  const s = state(this);
  const r = await inPod(
    this,
    `aws s3api list-objects-v2 --bucket '${s.subject.allowedBucket}' --max-items 1 --output json`,
  );
  assert.equal(r.exitCode, 0, `listing ${s.subject.allowedBucket} in the pod failed: ${r.stderr.trim().slice(0, 500)}`);
});

Then(
  'inside the pod the AWS CLI is denied listing the denied bucket with AccessDenied',
  async function (this: IrsaWorld) {
    const s = state(this);
    const r = await inPod(
      this,
      `aws s3api list-objects-v2 --bucket '${s.subject.deniedBucket}' --max-items 1 --output json`,
    );
    assert.notEqual(
      r.exitCode,
      0,
      `listing ${s.subject.deniedBucket} in the pod succeeded: the role is not least privilege`,
    );
    assert.match(
      r.stderr,
      /AccessDenied/,
      `listing ${s.subject.deniedBucket} failed, but not with AccessDenied: ${r.stderr.trim().slice(0, 500)}`,
    );
  },
);
