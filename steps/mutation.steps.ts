/**
 * Steps about what the pod identity webhook does at admission, beyond the article's happy path:
 * ServiceAccount and pod annotations, containers that opt out or bring their own env, init
 * containers, pods admitted before their ServiceAccount was annotated, and unannotated pods.
 * Pods are created directly and checked as the API server stored them; a dry-run create first
 * proves that the webhook's ServiceAccount cache knows the annotation, so no check races it.
 */
import assert from 'node:assert/strict';
import { Given, Then, When } from '@cucumber/cucumber';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { isAssumedRoleArn } from '../support/aws/arn.ts';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { explainUnmutatedPod } from '../support/diagnose/admission.ts';
import { OperationTimeout } from '../support/errors.ts';
import { isNotFound } from '../support/kube/errors.ts';
import { waitForPod } from '../support/kube/ops.ts';
import { createServiceAccount, serviceAccountManifest } from '../support/provision/application.ts';
import {
  allContainers,
  annotateServiceAccount,
  createPod,
  envValue,
  fixturePodManifest,
  isMutated,
  restartDeployment,
  samplePodManifest,
  waitUntilWebhookMutates,
} from '../support/provision/pods.ts';

function annotationKey(world: IrsaWorld, name: string): string {
  return `${world.state.target.dialect.annotationPrefix}/${name}`;
}

/** The webhook's annotations on the team's ServiceAccount, for messages that name the cause. */
async function serviceAccountAnnotations(world: IrsaWorld, label: string): Promise<Record<string, string>> {
  const tenant = world.tenant(label);
  const sa = await world.clients.core.readNamespacedServiceAccount({
    namespace: tenant.namespace,
    name: tenant.serviceAccount,
  });
  const prefix = `${world.state.target.dialect.annotationPrefix}/`;
  return Object.fromEntries(Object.entries(sa.metadata?.annotations ?? {}).filter(([k]) => k.startsWith(prefix)));
}

function describeAnnotations(a: Record<string, string>): string {
  const entries = Object.entries(a);
  return entries.length === 0 ? 'none' : entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ');
}

/** The pod of the team: the one this scenario created or saw admitted, else the first pod of its Deployment. */
async function admittedPod(world: IrsaWorld, label: string): Promise<V1Pod> {
  const known = world.pods.get(label);
  if (known) return known;
  const tenant = world.tenant(label);
  const pod = await waitForPod(
    world.clients,
    tenant.namespace,
    `app=${tenant.deployment}`,
    () => true,
    `a pod of Deployment ${tenant.deployment}`,
    world.state.config.timeouts.assertSeconds,
  );
  world.pods.set(label, pod);
  return pod;
}

function containerOf(pod: V1Pod, name: string): V1Container {
  const c = allContainers(pod).find((x) => x.name === name);
  assert.ok(
    c,
    `pod ${pod.metadata?.name} has no container ${name} (containers: ${allContainers(pod)
      .map((x) => x.name)
      .join(', ')})`,
  );
  return c;
}

async function assertMutated(world: IrsaWorld, label: string, pod: V1Pod, about: string): Promise<void> {
  if (isMutated(pod, world.state.target.dialect)) return;
  const a = await serviceAccountAnnotations(world, label);
  const why = await explainUnmutatedPod(world.clients, pod, world.state.target.webhookVersion);
  assert.fail(
    `the webhook did not mutate pod ${pod.metadata?.name} at all (ServiceAccount annotations: ${describeAnnotations(a)}), so nothing can be said about ${about}: ${why}`,
  );
}

async function createTeamServiceAccount(world: IrsaWorld, label: string, extra: Record<string, string>): Promise<void> {
  const tenant = world.tenant(label);
  const ctx = world.provisionContext();
  await world.ensureNamespace(tenant.namespace);
  const sa = serviceAccountManifest(ctx, tenant.namespace, tenant.serviceAccount, tenant.roleArn as string);
  sa.metadata = {
    ...sa.metadata,
    annotations: {
      ...sa.metadata?.annotations,
      ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [annotationKey(world, k), v])),
    },
  };
  await createServiceAccount(ctx, sa);
  await letWebhookCacheCatchUp(
    world,
    samplePodManifest(ctx, tenant.namespace, tenant.deployment, tenant.serviceAccount),
  );
}

/**
 * Gives the webhook's ServiceAccount cache a moment (dry-run creates, 3 s at most) so that no pod is
 * created before the webhook knows its annotation. Never fatal: on a setup that cannot mutate at
 * all, the checks that follow must run and name the cause.
 */
async function letWebhookCacheCatchUp(world: IrsaWorld, pod: V1Pod): Promise<void> {
  const ctx = world.provisionContext();
  const brief = { ...ctx, config: { ...ctx.config, timeouts: { ...ctx.config.timeouts, applySeconds: 3 } } };
  try {
    const attempts = await waitUntilWebhookMutates(brief, pod);
    world.log(
      `the webhook mutated a dry-run pod of ServiceAccount ${pod.spec?.serviceAccountName} after ${attempts} try(ies)`,
    );
  } catch (e) {
    if (!(e instanceof OperationTimeout)) throw e;
    world.log('the webhook did not mutate a dry-run pod within 3 s; going on (the checks say why)');
  }
}

Given(
  'team {string} has its namespace and its ServiceAccount annotated with the role ARN',
  async function (this: IrsaWorld, label: string) {
    await createTeamServiceAccount(this, label, {});
  },
);

Given(
  'team {string} has its namespace and its ServiceAccount annotated with the role ARN and {string} set to {string}',
  async function (this: IrsaWorld, label: string, annotation: string, value: string) {
    await createTeamServiceAccount(this, label, { [annotation]: value });
  },
);

async function createTeamPod(
  world: IrsaWorld,
  label: string,
  fixture: string | undefined,
  podAnnotations: Record<string, string>,
): Promise<void> {
  const tenant = world.tenant(label);
  const ctx = world.provisionContext();
  const name = `${tenant.deployment}-${fixture ?? 'pod'}`;
  const pod = fixture
    ? fixturePodManifest(ctx, fixture, tenant.namespace, name, tenant.serviceAccount)
    : samplePodManifest(ctx, tenant.namespace, name, tenant.serviceAccount);
  pod.metadata = {
    ...pod.metadata,
    annotations: {
      ...pod.metadata?.annotations,
      ...Object.fromEntries(Object.entries(podAnnotations).map(([k, v]) => [annotationKey(world, k), v])),
    },
  };
  const admitted = await createPod(ctx, pod);
  world.pods.set(label, admitted);
  const summary = allContainers(admitted).map(
    (c) =>
      `${c.name}: env ${(c.env ?? []).map((e) => e.name).join(', ') || 'none'}; mounts ${(c.volumeMounts ?? []).map((m) => `${m.name}@${m.mountPath}`).join(', ') || 'none'}`,
  );
  world.attach(`pod ${admitted.metadata?.name} as admitted:\n  ${summary.join('\n  ')}`, {
    mediaType: 'text/plain',
    fileName: 'pod as admitted.txt',
  });
}

When('team {string} creates a pod of the sample app', async function (this: IrsaWorld, label: string) {
  await createTeamPod(this, label, undefined, {});
});

When(
  'team {string} creates a pod of the sample app with the pod annotation {string} set to {string}',
  async function (this: IrsaWorld, label: string, annotation: string, value: string) {
    await createTeamPod(this, label, undefined, { [annotation]: value });
  },
);

When('team {string} creates the pod {string}', async function (this: IrsaWorld, label: string, fixture: string) {
  await createTeamPod(this, label, fixture, {});
});

When(
  'team {string} creates the pod {string} with the pod annotation {string} set to {string}',
  async function (this: IrsaWorld, label: string, fixture: string, annotation: string, value: string) {
    await createTeamPod(this, label, fixture, { [annotation]: value });
  },
);

Then(
  'every container of the pod of team {string} has {word} set to {string}',
  async function (this: IrsaWorld, label: string, name: string, value: string) {
    const pod = await admittedPod(this, label);
    await assertMutated(this, label, pod, name);
    const a = await serviceAccountAnnotations(this, label);
    for (const c of allContainers(pod)) {
      assert.equal(
        envValue(c, name),
        value,
        `container ${c.name}: ${name} is ${JSON.stringify(envValue(c, name))}, expected ${JSON.stringify(value)} (ServiceAccount annotations: ${describeAnnotations(a)})`,
      );
    }
  },
);

Then(
  'every container of the pod of team {string} has {word} unset',
  async function (this: IrsaWorld, label: string, name: string) {
    const pod = await admittedPod(this, label);
    await assertMutated(this, label, pod, name);
    const a = await serviceAccountAnnotations(this, label);
    for (const c of allContainers(pod)) {
      assert.equal(
        envValue(c, name),
        undefined,
        `container ${c.name} has ${name}=${JSON.stringify(envValue(c, name))}, expected it unset (ServiceAccount annotations: ${describeAnnotations(a)}; a webhook flag such as --sts-regional-endpoint sets it for every pod)`,
      );
    }
  },
);

Then(
  "container {string} of the pod of team {string} has AWS_ROLE_ARN set to the team's role ARN and mounts {string}",
  async function (this: IrsaWorld, name: string, label: string, volume: string) {
    const pod = await admittedPod(this, label);
    await assertMutated(this, label, pod, `container ${name}`);
    const c = containerOf(pod, name);
    const roleArn = this.tenant(label).roleArn;
    assert.equal(
      envValue(c, 'AWS_ROLE_ARN'),
      roleArn,
      `container ${name}: AWS_ROLE_ARN is ${JSON.stringify(envValue(c, 'AWS_ROLE_ARN'))}, expected ${roleArn}`,
    );
    assert.ok(
      (c.volumeMounts ?? []).some((m) => m.name === volume),
      `container ${name} does not mount ${volume} (mounts: ${(c.volumeMounts ?? []).map((m) => m.name).join(', ') || 'none'})`,
    );
  },
);

Then(
  'container {string} of the pod of team {string} has neither AWS_ROLE_ARN nor AWS_WEB_IDENTITY_TOKEN_FILE, and does not mount {string}',
  async function (this: IrsaWorld, name: string, label: string, volume: string) {
    const pod = await admittedPod(this, label);
    await assertMutated(this, label, pod, `the skipped container ${name}`);
    const c = containerOf(pod, name);
    const skip = pod.metadata?.annotations?.[annotationKey(this, 'skip-containers')];
    for (const v of ['AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE']) {
      assert.equal(
        envValue(c, v),
        undefined,
        `container ${name} got ${v} although the pod annotation ${annotationKey(this, 'skip-containers')}=${JSON.stringify(skip)} lists it`,
      );
    }
    assert.ok(
      !(c.volumeMounts ?? []).some((m) => m.name === volume),
      `container ${name} mounts ${volume} although the pod annotation ${annotationKey(this, 'skip-containers')}=${JSON.stringify(skip)} lists it`,
    );
  },
);

Then(
  'the pod of team {string} has the volume {string}',
  async function (this: IrsaWorld, label: string, volume: string) {
    const pod = await admittedPod(this, label);
    await assertMutated(this, label, pod, `the volume ${volume}`);
    const names = (pod.spec?.volumes ?? []).map((v) => v.name);
    assert.ok(
      names.includes(volume),
      `pod ${pod.metadata?.name} has no volume ${volume} (volumes: ${names.join(', ') || 'none'})`,
    );
  },
);

Then(
  'container {string} of the pod of team {string} keeps AWS_ROLE_ARN {string} and gets no AWS_WEB_IDENTITY_TOKEN_FILE',
  async function (this: IrsaWorld, name: string, label: string, roleArn: string) {
    const pod = await admittedPod(this, label);
    await assertMutated(this, label, pod, `container ${name}'s own AWS_ROLE_ARN`);
    const c = containerOf(pod, name);
    const values = (c.env ?? []).filter((e) => e.name === 'AWS_ROLE_ARN').map((e) => e.value);
    assert.deepEqual(
      values,
      [roleArn],
      `container ${name} has AWS_ROLE_ARN ${JSON.stringify(values)}: the webhook must leave the container's own ${roleArn} alone`,
    );
    assert.equal(
      envValue(c, 'AWS_WEB_IDENTITY_TOKEN_FILE'),
      undefined,
      `container ${name} got AWS_WEB_IDENTITY_TOKEN_FILE although it sets AWS_ROLE_ARN itself (upstream adds neither variable then)`,
    );
  },
);

Then(
  "container {string} of the pod of team {string} mounts {string} read-only at the webhook's mount path",
  async function (this: IrsaWorld, name: string, label: string, volume: string) {
    const pod = await admittedPod(this, label);
    await assertMutated(this, label, pod, `container ${name}`);
    const c = containerOf(pod, name);
    const mountPath = this.state.target.dialect.mountPath;
    const m = (c.volumeMounts ?? []).find((x) => x.name === volume);
    assert.ok(m, `container ${name} does not mount ${volume}`);
    assert.equal(m.mountPath.replace(/\/+$/, ''), mountPath, `container ${name} mounts ${volume} at ${m.mountPath}`);
    assert.equal(m.readOnly, true, `container ${name} mounts ${volume} writable`);
  },
);

Then(
  'the pod of team {string} has the init container {string}',
  async function (this: IrsaWorld, label: string, name: string) {
    const pod = await admittedPod(this, label);
    const names = (pod.spec?.initContainers ?? []).map((c) => c.name);
    assert.ok(
      names.includes(name),
      `pod ${pod.metadata?.name} has no init container ${name} (init containers: ${names.join(', ') || 'none'})`,
    );
  },
);

Then(
  'the pod of team {string} is admitted without AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE or the token volume {string}',
  async function (this: IrsaWorld, label: string, volume: string) {
    const pod = await admittedPod(this, label);
    const a = await serviceAccountAnnotations(this, label);
    const cause = a[annotationKey(this, 'role-arn')]
      ? `this pod must have been admitted without the pod identity webhook's mutation (ServiceAccount annotations: ${describeAnnotations(a)}), so a mutating webhook answered that should not have`
      : `its ServiceAccount has no ${annotationKey(this, 'role-arn')} annotation (annotations: ${describeAnnotations(a)}): something other than the pod identity webhook injects it (another mutating webhook, or the workload's own manifest)`;
    for (const c of allContainers(pod)) {
      for (const v of ['AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE']) {
        assert.equal(
          envValue(c, v),
          undefined,
          `container ${c.name} of pod ${pod.metadata?.name} has ${v}, but ${cause}`,
        );
      }
    }
    const names = (pod.spec?.volumes ?? []).map((v) => v.name);
    assert.ok(!names.includes(volume), `pod ${pod.metadata?.name} has the volume ${volume}, but ${cause}`);
  },
);

Then(
  'inside the pod of team {string} the AWS default credential chain finds no web-identity credentials',
  async function (this: IrsaWorld, label: string) {
    await this.podOf(label);
    const tenant = this.tenant(label);
    await this.runInPod(label, 'env');
    assert.equal(this.lastExec?.exitCode, 0, `env failed in the pod: ${this.lastExec?.stderr.trim()}`);
    const names = (this.lastExec?.stdout ?? '').split('\n').map((l) => l.slice(0, l.indexOf('=')));
    for (const v of ['AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE']) {
      assert.ok(!names.includes(v), `inside the pod ${v} is set, although its ServiceAccount has no role annotation`);
    }
    await this.runInPod(label, 'aws sts get-caller-identity --output json');
    const e = this.lastExec;
    assert.ok(e, 'no command ran');
    if (e.exitCode === 0) {
      const arn = (JSON.parse(e.stdout || '{}') as { Arn?: string }).Arn ?? '(no Arn)';
      assert.ok(
        !isAssumedRoleArn(arn, tenant.roleName),
        `a pod without the role annotation assumed the team's role (caller ${arn}): the role is reachable without IRSA`,
      );
      assert.fail(
        `the AWS default credential chain found credentials in a pod without a role annotation: caller ${arn} (from env variables, a mounted AWS config, or the node's instance metadata); pods without IRSA must get no AWS identity`,
      );
    }
    assert.match(
      e.stderr,
      /Unable to locate credentials/,
      `aws sts get-caller-identity failed, but not for lack of credentials, so whether the chain found any is unknown: ${e.stderr.trim().slice(0, 400)}`,
    );
  },
);

When(
  'the ServiceAccount of team {string} is annotated with the role ARN',
  async function (this: IrsaWorld, label: string) {
    const tenant = this.tenant(label);
    await annotateServiceAccount(this.clients, tenant.namespace, tenant.serviceAccount, {
      [annotationKey(this, 'role-arn')]: tenant.roleArn as string,
    });
  },
);

Then(
  'the webhook mutates new pods of the ServiceAccount of team {string}',
  async function (this: IrsaWorld, label: string) {
    const tenant = this.tenant(label);
    const ctx = this.provisionContext();
    const pod = samplePodManifest(ctx, tenant.namespace, tenant.deployment, tenant.serviceAccount);
    let attempts: number;
    try {
      attempts = await waitUntilWebhookMutates(ctx, pod);
    } catch (e) {
      if (!(e instanceof OperationTimeout)) throw e;
      const probe = await this.clients.core.createNamespacedPod({
        namespace: tenant.namespace,
        body: { ...pod, metadata: { ...pod.metadata, name: `${pod.metadata?.name}-dry-run` } },
        dryRun: 'All',
      });
      const why = await explainUnmutatedPod(this.clients, probe, this.state.target.webhookVersion);
      assert.fail(`${e.message}: new pods of ${tenant.namespace}/${tenant.serviceAccount} are not mutated: ${why}`);
    }
    if (attempts === 0) {
      this.attach(
        'Skipped: the API server refuses dry-run creates here, so the webhook cannot be asked without creating a pod',
        { mediaType: 'text/plain', fileName: 'skip reason.txt' },
      );
      return 'skipped';
    }
    this.attach(
      `a dry-run pod of ${tenant.namespace}/${tenant.serviceAccount} was mutated after ${attempts} try(ies)`,
      { mediaType: 'text/plain', fileName: 'dry-run pod.txt' },
    );
    return undefined;
  },
);

Then(
  'the pod of team {string} created before the annotation is still without AWS_ROLE_ARN',
  async function (this: IrsaWorld, label: string) {
    const before = await admittedPod(this, label);
    const ns = before.metadata?.namespace as string;
    const name = before.metadata?.name as string;
    let now: V1Pod;
    try {
      now = await this.clients.core.readNamespacedPod({ namespace: ns, name });
    } catch (e) {
      if (isNotFound(e))
        assert.fail(`pod ${ns}/${name} is gone: something replaced it when the ServiceAccount was annotated`);
      throw e;
    }
    assert.equal(now.metadata?.uid, before.metadata?.uid, `pod ${ns}/${name} was replaced`);
    assert.ok(
      !isMutated(now, this.state.target.dialect),
      `pod ${ns}/${name}, created before the annotation, now has the webhook's env or mount: pods are immutable there, so the suite's model of the webhook is wrong`,
    );
  },
);

When('the sample app of team {string} is restarted', async function (this: IrsaWorld, label: string) {
  const tenant = this.tenant(label);
  const before = await admittedPod(this, label);
  await restartDeployment(this.clients, tenant.namespace, tenant.deployment);
  const pod = await waitForPod(
    this.clients,
    tenant.namespace,
    `app=${tenant.deployment}`,
    (p) =>
      p.metadata?.uid !== before.metadata?.uid &&
      p.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt'] !== undefined,
    `a pod of the restarted Deployment ${tenant.deployment}`,
    this.state.config.timeouts.assertSeconds,
  );
  this.pods.set(label, pod);
});
