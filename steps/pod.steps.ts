/**
 * Steps about a team's pod: what the webhook injected into its spec, and what a process inside
 * it sees and can do. In-pod commands go through the exec subresource, the same call on every
 * target; the command line is the article's (the AWS CLI in the sample image).
 */
import assert from 'node:assert/strict';
import { Then, When } from '@cucumber/cucumber';
import type { V1Pod } from '@kubernetes/client-node';
import { isAssumedRoleArn, s3ObjectArn } from '../support/aws/arn.ts';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { diagnoseToken } from '../support/diagnose/token.ts';
import { diagnoseWebIdentity, readRoleOf } from '../support/diagnose/web-identity.ts';
import { preflightWebhookConfiguration } from '../support/diagnose/webhook.ts';
import { execInPod } from '../support/kube/ops.ts';
import { decodeTokenClaims } from '../support/oidc/token.ts';
import { simulatePermission } from '../support/policy/simulate.ts';
import { permissionPolicyFor } from '../support/provision/application.ts';
import { podCreateWebhooks, readIdentityProvider } from '../support/provision/infrastructure.ts';
import { registerSecret } from '../support/redact.ts';

function containersOf(pod: V1Pod) {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
}

function envOf(c: { env?: { name: string; value?: string }[] }, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.value;
}

/** The path a pod's file has for a process exec'd into it (differs from the spec on the embedded runtime). */
function inPodPath(world: IrsaWorld, pod: V1Pod, specPath: string): string {
  const root = world.state.target.podRoot
    .replace('{namespace}', pod.metadata?.namespace ?? '')
    .replace('{pod}', pod.metadata?.name ?? '');
  return `${root}${specPath}`;
}

/** Any refusal of the web identity by STS, as the AWS CLI prints it (the code is group 1). */
const WEB_IDENTITY_ERROR = /\(([A-Za-z]+)\) when calling the AssumeRoleWithWebIdentity operation/;

/**
 * Why an annotated ServiceAccount's pod came out unmutated, from what the cluster shows: no
 * configuration intercepting pod CREATE, or the pre-flight findings of those that do (the
 * admission version trap, failurePolicy Ignore hiding an outage).
 */
async function whyNotMutated(world: IrsaWorld): Promise<string> {
  const configs = await podCreateWebhooks(world.clients);
  if (configs.length === 0) return 'no MutatingWebhookConfiguration intercepts pod CREATE';
  const findings = configs.flatMap((cfg) =>
    preflightWebhookConfiguration(cfg, { webhookVersion: world.state.target.webhookVersion }).filter(
      (f) => f.severity !== 'info',
    ),
  );
  const names = configs.map((cfg) => cfg.metadata?.name).join(', ');
  return findings.length > 0
    ? `pre-flight of ${names}: ${findings.map((f) => f.message).join('; ')}`
    : `${names} intercept pod CREATE and pass the pre-flight; see the webhook log for its answer`;
}

Then('the pod of team {string} is Running', async function (this: IrsaWorld, label: string) {
  const pod = await this.podOf(label);
  assert.equal(pod.status?.phase, 'Running');
});

Then(
  "every container of the pod of team {string} has AWS_ROLE_ARN set to the team's role ARN and AWS_WEB_IDENTITY_TOKEN_FILE set to the token path",
  async function (this: IrsaWorld, label: string) {
    const pod = await this.podOf(label);
    const tenant = this.tenant(label);
    const d = this.state.target.dialect;
    const sa = await this.clients.core.readNamespacedServiceAccount({
      namespace: tenant.namespace,
      name: tenant.serviceAccount,
    });
    const annotation = sa.metadata?.annotations?.[`${d.annotationPrefix}/role-arn`];
    const unmutated = containersOf(pod).some((c) => envOf(c, 'AWS_ROLE_ARN') === undefined);
    const why = async (roleArn: string | undefined): Promise<string> => {
      if (roleArn === tenant.roleArn) return '';
      if (unmutated)
        return annotation
          ? `env and token volume missing because the webhook did not mutate the pod: ${await whyNotMutated(this)}`
          : `env and token volume missing because the ServiceAccount ${tenant.namespace}/${tenant.serviceAccount} has no ${d.annotationPrefix}/role-arn annotation, so the webhook leaves the pod alone`;
      if (annotation !== roleArn)
        return `the container sets AWS_ROLE_ARN itself, so the webhook keeps it (the ServiceAccount's annotation is ${annotation})`;
      const role = await readRoleOf(this.clients, roleArn as string);
      return `the ServiceAccount ${tenant.namespace}/${tenant.serviceAccount} is annotated with ${roleArn}${'problem' in role ? `: ${role.problem}` : ', another role'}; team ${label}'s role is ${tenant.roleArn}`;
    };
    for (const c of containersOf(pod)) {
      const roleArn = envOf(c, 'AWS_ROLE_ARN');
      const tokenFile = envOf(c, 'AWS_WEB_IDENTITY_TOKEN_FILE');
      if (roleArn !== tenant.roleArn)
        assert.fail(
          `container ${c.name}: AWS_ROLE_ARN is ${JSON.stringify(roleArn)}, expected ${tenant.roleArn}: ${await why(roleArn)}`,
        );
      assert.equal(
        tokenFile,
        `${d.mountPath}/${d.tokenFileName}`,
        `container ${c.name}: AWS_WEB_IDENTITY_TOKEN_FILE is ${JSON.stringify(tokenFile)}`,
      );
    }
  },
);

Then(
  'the pod of team {string} has the projected token volume {string} with audience {string}, expiration {int} s and path {string}',
  async function (this: IrsaWorld, label: string, volume: string, audience: string, expiration: number, path: string) {
    const pod = await this.podOf(label);
    const v = pod.spec?.volumes?.find((x) => x.name === volume);
    assert.ok(
      v,
      `the pod has no volume ${volume} (volumes: ${(pod.spec?.volumes ?? []).map((x) => x.name).join(', ')}): the webhook did not mutate it`,
    );
    const source = v.projected?.sources?.find((s) => s.serviceAccountToken)?.serviceAccountToken;
    assert.ok(source, `volume ${volume} is not a projected service-account token`);
    assert.equal(
      source.audience,
      audience,
      `volume ${volume} requests audience ${source.audience}, expected ${audience}`,
    );
    assert.equal(
      source.expirationSeconds,
      expiration,
      `volume ${volume} requests expirationSeconds ${source.expirationSeconds}, expected ${expiration}`,
    );
    assert.equal(source.path, path, `volume ${volume} writes the token at ${source.path}, expected ${path}`);
  },
);

Then(
  'every container of the pod of team {string} mounts {string} read-only at {string}',
  async function (this: IrsaWorld, label: string, volume: string, mountPath: string) {
    const pod = await this.podOf(label);
    for (const c of containersOf(pod)) {
      const m = c.volumeMounts?.find((x) => x.name === volume);
      assert.ok(m, `container ${c.name} does not mount ${volume}`);
      assert.equal(m.mountPath, mountPath, `container ${c.name} mounts ${volume} at ${m.mountPath}`);
      assert.equal(m.readOnly, true, `container ${c.name} mounts ${volume} writable`);
    }
  },
);

Then(
  'inside the pod of team {string} the environment has AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE',
  async function (this: IrsaWorld, label: string) {
    const pod = await this.podOf(label);
    const tenant = this.tenant(label);
    await this.runInPod(label, 'env');
    assert.equal(this.lastExec?.exitCode, 0, `env failed in the pod: ${this.lastExec?.stderr}`);
    const env = new Map(
      (this.lastExec?.stdout ?? '')
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
    );
    assert.equal(
      env.get('AWS_ROLE_ARN'),
      tenant.roleArn,
      `inside the pod AWS_ROLE_ARN is ${JSON.stringify(env.get('AWS_ROLE_ARN'))}`,
    );
    const d = this.state.target.dialect;
    const expected = inPodPath(this, pod, `${d.mountPath}/${d.tokenFileName}`);
    assert.equal(
      env.get('AWS_WEB_IDENTITY_TOKEN_FILE'),
      expected,
      `inside the pod AWS_WEB_IDENTITY_TOKEN_FILE is ${JSON.stringify(env.get('AWS_WEB_IDENTITY_TOKEN_FILE'))}`,
    );
  },
);

/**
 * The token a process in the pod reads from $AWS_WEB_IDENTITY_TOKEN_FILE. It is a secret: it stays
 * in memory, registered for redaction, and is never logged.
 */
async function readPodToken(
  world: IrsaWorld,
  label: string,
): Promise<{ token: string; exitCode: number; stderr: string }> {
  const pod = await world.podOf(label);
  const container = pod.spec?.containers[0]?.name as string;
  const r = await execInPod(
    world.clients,
    pod.metadata?.namespace as string,
    pod.metadata?.name as string,
    container,
    ['sh', '-c', 'cat "$AWS_WEB_IDENTITY_TOKEN_FILE"'],
    world.state.config.timeouts.assertSeconds,
  );
  const token = r.stdout.trim();
  if (token) registerSecret(token);
  return { token, exitCode: r.exitCode, stderr: r.stderr };
}

/** Why STS refuses the web identity of the pod of team `label`, from its role, token and trust policy. */
async function explainRefusal(world: IrsaWorld, label: string): Promise<string> {
  const pod = await world.podOf(label);
  const roleArn = pod.spec?.containers.map((c) => envOf(c, 'AWS_ROLE_ARN')).find((v) => v !== undefined);
  if (!roleArn) return 'the pod has no AWS_ROLE_ARN';
  const infra = await world.infrastructure();
  const token = (await readPodToken(world, label)).token;
  const d = await diagnoseWebIdentity({
    clients: world.clients,
    roleArn,
    team: label,
    teamRoleArn: world.tenants.get(label)?.roleArn,
    token: token || undefined,
    identityProviderArn: infra.identityProviderArn,
  });
  world.attach(`web identity diagnosis: ${d.explanation}`, {
    mediaType: 'text/plain',
    fileName: 'web identity diagnosis.txt',
  });
  return d.admits
    ? `the diagnosis finds nothing wrong (${d.explanation}), but the target refused it: the target and the diagnosis disagree`
    : d.explanation;
}

Then('inside the pod of team {string} the token file is readable', async function (this: IrsaWorld, label: string) {
  const { token, exitCode, stderr } = await readPodToken(this, label);
  assert.equal(exitCode, 0, `reading $AWS_WEB_IDENTITY_TOKEN_FILE failed: ${stderr.trim()}`);
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the token file does not hold a JWT');
  this.tokens.set(label, token);
});

Then(
  "the token of team {string} has iss equal to the cluster's issuer, aud {string}, the sub of its ServiceAccount and a lifetime of {int} s",
  async function (this: IrsaWorld, label: string, audience: string, lifetime: number) {
    const infra = await this.infrastructure();
    const tenant = this.tenant(label);
    const token = this.tokens.get(label);
    assert.ok(token, 'no token was read');
    const claims = decodeTokenClaims(token);
    this.attachJson('token claims', claims);
    assert.equal(
      claims.iss,
      infra.clusterIssuer,
      `token iss ${JSON.stringify(claims.iss)} differs from the cluster issuer ${JSON.stringify(infra.clusterIssuer)}`,
    );
    assert.deepEqual(
      claims.aud,
      [audience],
      `token aud is ${JSON.stringify(claims.aud)}, expected [${JSON.stringify(audience)}]`,
    );
    assert.equal(
      claims.sub,
      `system:serviceaccount:${tenant.namespace}:${tenant.serviceAccount}`,
      `token sub is ${claims.sub}`,
    );
    assert.equal(
      (claims.exp ?? 0) - (claims.iat ?? 0),
      lifetime,
      `token lifetime is ${(claims.exp ?? 0) - (claims.iat ?? 0)} s, expected ${lifetime} s`,
    );
  },
);

Then(
  'the token of team {string} verifies against the published discovery documents and the identity provider, as STS checks it',
  async function (this: IrsaWorld, label: string) {
    const infra = await this.infrastructure();
    const token = this.tokens.get(label);
    assert.ok(token, 'no token was read');
    const idp = await readIdentityProvider(this.clients, infra.identityProviderArn);
    const diagnosis = await diagnoseToken({
      token,
      fetchJson: this.clients.anonymousGetJson,
      identityProvider: { url: idp.url, clientIds: idp.clientIds },
    });
    this.attach(
      diagnosis.checks.map((c) => `${c.ok ? 'ok  ' : c.skipped ? 'skip' : 'FAIL'} ${c.name}: ${c.detail}`).join('\n'),
      { mediaType: 'text/plain', fileName: 'token diagnosis.txt' },
    );
    assert.ok(diagnosis.ok, `STS would refuse the pod's token: ${diagnosis.firstFailure}`);
  },
);

When('the pod of team {string} runs {string}', async function (this: IrsaWorld, label: string, command: string) {
  await this.runInPod(label, command);
});

When(
  'the pod of team {string} uploads {string} to the app bucket of team {string}',
  async function (this: IrsaWorld, label: string, key: string, owner: string) {
    const bucket = this.tenant(owner).appBucket;
    await this.runInPod(label, `echo "${this.uploadBody()}" | aws s3 cp - s3://${bucket}/${key}`);
  },
);

When(
  'the pod of team {string} uploads {string} to the bucket {string}',
  async function (this: IrsaWorld, label: string, key: string, name: string) {
    const bucket = this.bucket(name);
    await this.runInPod(label, `echo "${this.uploadBody()}" | aws s3 cp - s3://${bucket}/${key}`);
    this.lastUpload = { label, bucket, key };
  },
);

Then('the command succeeds', async function (this: IrsaWorld) {
  const e = this.lastExec;
  assert.ok(e, 'no command ran');
  if (e.exitCode === 0) return;
  const refusal = WEB_IDENTITY_ERROR.exec(e.stderr)?.[1];
  const why = refusal ? `; why STS refuses the pod's web identity: ${await explainRefusal(this, e.label)}` : '';
  assert.fail(`\`${e.command}\` exited ${e.exitCode}: ${e.stderr.trim().slice(0, 500)}${why}`);
});

Then('the command fails with AccessDenied', async function (this: IrsaWorld) {
  const e = this.lastExec;
  assert.ok(e, 'no command ran');
  if (e.exitCode === 0 && this.lastUpload) {
    // Say which statement let it through, so the report names the configuration to fix.
    const { label, bucket, key } = this.lastUpload;
    const tenant = this.tenant(label);
    const sim = await simulatePermission({
      policies: [{ name: tenant.policyName, document: permissionPolicyFor(this.provisionContext(), tenant) }],
      principalArn: tenant.roleArn as string,
      action: 's3:PutObject',
      resource: s3ObjectArn(bucket, key, this.partition),
    });
    assert.fail(
      `\`${e.command}\` succeeded, but the role must not write to ${bucket}: allowed by ${sim.allowingStatements.join(', ') || sim.explanation}`,
    );
  }
  assert.notEqual(e.exitCode, 0, `\`${e.command}\` succeeded, but the role's policy must not allow it`);
  // A denial of the web identity is not the denial this step is about: the pod never got the role.
  if (WEB_IDENTITY_ERROR.test(e.stderr))
    assert.fail(
      `\`${e.command}\` failed before it reached the bucket, at AssumeRoleWithWebIdentity: ${e.stderr.trim().slice(0, 300)}; why STS refuses the pod's web identity: ${await explainRefusal(this, e.label)}`,
    );
  assert.match(
    e.stderr,
    /AccessDenied/,
    `\`${e.command}\` failed, but not with AccessDenied: ${e.stderr.trim().slice(0, 500)}`,
  );
});

Then('the caller is a session of the role of team {string}', function (this: IrsaWorld, label: string) {
  const tenant = this.tenant(label);
  const out = JSON.parse(this.lastExec?.stdout ?? '{}') as { Arn?: string };
  assert.ok(
    out.Arn && isAssumedRoleArn(out.Arn, tenant.roleName),
    `the caller is ${out.Arn}, expected a session arn:${this.partition}:sts::<account>:assumed-role/${tenant.roleName}/...`,
  );
});

Then('the output lists the app bucket of team {string}', function (this: IrsaWorld, label: string) {
  const bucket = this.tenant(label).appBucket;
  const names = (this.lastExec?.stdout ?? '').split('\n').map((l) => l.trim().split(/\s+/).pop());
  assert.ok(names.includes(bucket), `aws s3 ls does not list ${bucket}: ${this.lastExec?.stdout.slice(0, 500)}`);
});
