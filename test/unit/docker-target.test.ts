/**
 * The docker target's configuration, checked without a container engine: images and their
 * overrides, the plan (issuer, endpoints, pod env, K3s flags), the emulator containers' settings,
 * the CoreDNS alias, the certificates (the CA verifies them, SANs right), the webhook deployment and
 * its registration from the setup's template (admission version pre-flight), the loopback port
 * binding, the tar reader, and the "no engine" error.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import type { V1Deployment, V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { loadConfig } from '../../support/config.ts';
import { preflightWebhookConfiguration } from '../../support/diagnose/webhook.ts';
import { isUsageError, UsageError } from '../../support/errors.ts';
import { loadSetup, renderYaml } from '../../support/setup/setup.ts';
import {
  CUSTOM_DNS_CONFIGMAP,
  corednsAliasConfigMap,
  K3S_API_AUDIENCES,
  k3sServerCommand,
  SA_KEY_PATH,
  SA_PUB_PATH,
} from '../../support/targets/docker/cluster.ts';
import { bindPortsToLoopback } from '../../support/targets/docker/containers.ts';
import { emulatorSpec, LOCALSTACK_POD_PORT, MOTO_POD_PORT } from '../../support/targets/docker/emulator.ts';
import {
  configuredImages,
  defaultImages,
  ECR_PUBLIC_REGISTRY,
  IMAGE_NAMES,
  imageEnvVar,
  imageTag,
  isImageReference,
  normalizeImageRef,
  resolveImages,
} from '../../support/targets/docker/images.ts';
import { dialectFromFlags, NETWORK_ALIASES, planDockerTarget } from '../../support/targets/docker/index.ts';
import {
  describeMissingRuntime,
  NO_DOCKER_HINT,
  requireContainerRuntime,
} from '../../support/targets/docker/runtime.ts';
import { firstFileOfTar } from '../../support/targets/docker/tar.ts';
import { createCa, issueServingCert } from '../../support/tls.ts';
import { readVersions } from '../../support/versions.ts';
import { issueWebhookTls, webhookClientConfig, webhookManifests } from '../../support/webhook-deploy.ts';

const versions = readVersions();
const setup = loadSetup('fixtures/setups/default');
const config = (env: Record<string, string> = {}) => loadConfig({ IRSA_TARGET: 'docker', ...env });

function plan(env: Record<string, string> = {}, runtimeHost = 'localhost') {
  return planDockerTarget({
    config: config(env),
    setup,
    env,
    runtimeHost,
    issuerPort: 41234,
    envId: 'envabc123',
    versions,
  });
}

test('default images: pinned, no registry host, shared versions from tools/versions.env', () => {
  const d = defaultImages(setup, versions);
  assert.equal(d.k3s, `rancher/k3s:${versions.KUBERNETES_VERSION}-k3s1`);
  assert.equal(d.moto, `motoserver/moto:${versions.MOTO_VERSION}`);
  // Published in the Amazon ECR Public gallery since v0.6.8, not on the default registry.
  assert.equal(
    d.webhook,
    `${ECR_PUBLIC_REGISTRY}/eks/amazon-eks-pod-identity-webhook:${versions.POD_IDENTITY_WEBHOOK_VERSION}`,
  );
  assert.equal(d.verify, d.app, 'the verify-only pod runs the app image');
  assert.equal(d.localstack, 'localstack/localstack:4.14.0');
  assert.equal(d.app, setup.spec.application.image, "the sample app is the setup's image");
  assert.match(d.app, /^amazon\/aws-cli:\d+\.\d+\.\d+$/, 'the default setup pins the AWS CLI image');
  for (const name of IMAGE_NAMES) {
    const ref = d[name];
    assert.ok(isImageReference(ref), `${name}: ${ref}`);
    assert.ok(imageTag(ref) && imageTag(ref) !== 'latest', `${name} is pinned: ${ref}`);
    const first = ref.split('/')[0] as string;
    if (name === 'webhook') assert.equal(first, ECR_PUBLIC_REGISTRY, 'the webhook names its gallery');
    else assert.ok(!first.includes('.') && !first.includes(':'), `${name} names no registry host: ${ref}`);
  }
});

test('image overrides: environment over config file over default, each named by its source', () => {
  const r = resolveImages(
    setup,
    { k3s: 'mirror.example:5000/rancher/k3s:v1.36.3-k3s1', app: 'mirror.example/amazon/aws-cli:2.27.50' },
    { IRSA_IMAGE_APP: 'other.example/aws-cli:2.27.50' },
    versions,
  );
  assert.deepEqual(r.k3s, { ref: 'mirror.example:5000/rancher/k3s:v1.36.3-k3s1', source: 'config' });
  assert.deepEqual(r.app, { ref: 'other.example/aws-cli:2.27.50', source: 'environment' });
  assert.equal(r.moto.source, 'default');
  assert.equal(imageEnvVar('webhook'), 'IRSA_IMAGE_WEBHOOK');
  // Through the configuration: IRSA_IMAGE_<NAME> lands in images.<name>, over the older docker.images.
  const c = config({ IRSA_IMAGE_WEBHOOK: 'mirror.example/eks/amazon-eks-pod-identity-webhook:v0.6.17' });
  assert.equal(c.images.webhook, 'mirror.example/eks/amazon-eks-pod-identity-webhook:v0.6.17');
  assert.deepEqual(
    configuredImages({
      images: { app: 'a.example/x:1' },
      docker: { images: { app: 'b.example/x:1', k3s: 'k.example/k3s:1' } },
    }),
    { app: 'a.example/x:1', k3s: 'k.example/k3s:1' },
  );
  // The verify-only pod follows the app image unless it has its own setting.
  assert.deepEqual(r.verify, { ref: 'other.example/aws-cli:2.27.50', source: 'app' });
  assert.equal(resolveImages(setup, { verify: 'v.example/cli:1' }, {}, versions).verify.source, 'config');
});

test('a bad override is a UsageError naming the setting', () => {
  assert.throws(
    () => resolveImages(setup, { kind: 'x:1' }, {}, versions),
    (e: unknown) => isUsageError(e) && /images\.kind/.test(e.message) && /k3s, localstack/.test(e.hint),
  );
  assert.throws(
    () => resolveImages(setup, {}, { IRSA_IMAGE_K3S: 'Not An Image' }, versions),
    (e: unknown) => isUsageError(e) && /IRSA_IMAGE_K3S/.test(e.message),
  );
});

test('normalizeImageRef gives the names containerd and the kubelet use', () => {
  assert.equal(normalizeImageRef('amazon/aws-cli:2.27.50'), 'docker.io/amazon/aws-cli:2.27.50');
  assert.equal(normalizeImageRef('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(normalizeImageRef('mirror.example:5000/amazon/aws-cli:2'), 'mirror.example:5000/amazon/aws-cli:2');
  assert.equal(normalizeImageRef('localhost/x:1'), 'localhost/x:1');
  const digest = `sha256:${'a'.repeat(64)}`;
  assert.equal(normalizeImageRef(`alpine@${digest}`), `docker.io/library/alpine@${digest}`);
});

test('plan: the issuer is the discovery bucket URL on 127.0.0.1:P, the admin endpoint is its origin', () => {
  const p = plan();
  assert.equal(p.discoveryBucket, 'irsa-oidc-envabc123');
  assert.equal(p.issuer, 'https://127.0.0.1:41234/irsa-oidc-envabc123');
  assert.equal(p.adminEndpoint, 'https://127.0.0.1:41234');
  assert.ok(p.issuer.startsWith(`${p.adminEndpoint}/`), 'the published bucket URL equals the issuer');
  assert.equal(p.loopback, true);
  assert.equal(p.emulator, 'moto', 'moto by default (IAM enforced)');
  assert.deepEqual(p.podAwsEnv, {
    AWS_ENDPOINT_URL: `http://${NETWORK_ALIASES.aws}:${MOTO_POD_PORT}`,
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
  });
  assert.deepEqual(p.emulatorCertNames, { ipSans: ['127.0.0.1'], dnsSans: ['localhost', NETWORK_ALIASES.aws] });
  assert.equal(p.webhook.version, versions.POD_IDENTITY_WEBHOOK_VERSION);
  assert.deepEqual(p.webhook.flags, setup.spec.webhook.flags);
  assert.deepEqual(p.dialect, dialectFromFlags(setup.spec.webhook.flags));
});

test('plan: LocalStack pods use port 4566; a remote engine host replaces 127.0.0.1 and joins the SANs', () => {
  const l = plan({ IRSA_DOCKER_AWS: 'localstack', IRSA_REGION: 'eu-west-1' });
  assert.equal(l.emulator, 'localstack');
  assert.equal(l.podAwsEnv.AWS_ENDPOINT_URL, `http://${NETWORK_ALIASES.aws}:${LOCALSTACK_POD_PORT}`);
  assert.equal(l.podAwsEnv.AWS_REGION, 'eu-west-1');
  const r = plan({}, '10.1.2.3');
  assert.equal(r.loopback, false);
  assert.equal(r.issuer, 'https://10.1.2.3:41234/irsa-oidc-envabc123');
  assert.deepEqual(r.emulatorCertNames.ipSans, ['127.0.0.1', '10.1.2.3']);
  assert.ok(r.k3sCommand.includes('--tls-san=10.1.2.3'));
  const named = plan({}, 'docker-host.internal');
  assert.ok(named.emulatorCertNames.dnsSans.includes('docker-host.internal'));
});

test('plan: the webhook version follows an override only when its tag is a release', () => {
  assert.equal(plan({ IRSA_IMAGE_WEBHOOK: 'mirror.example/webhook:v0.6.18' }).webhook.version, 'v0.6.18');
  assert.equal(plan({ IRSA_IMAGE_WEBHOOK: 'mirror.example/webhook:latest' }).webhook.version, undefined);
});

test('K3s flags: issuer, jwks_uri beside the discovery document, the harness key, K3s audiences only', () => {
  const issuer = 'https://127.0.0.1:41234/irsa-oidc-envabc123';
  const cmd = k3sServerCommand({ issuer });
  assert.equal(cmd[0], 'server');
  const api = (flag: string) =>
    cmd
      .filter((a) => a.startsWith(`--kube-apiserver-arg=${flag}=`))
      .map((a) => a.slice(`--kube-apiserver-arg=${flag}=`.length));
  assert.deepEqual(api('service-account-issuer'), [issuer]);
  assert.deepEqual(api('service-account-jwks-uri'), [`${issuer}/keys.json`]);
  assert.deepEqual(api('service-account-key-file'), [SA_PUB_PATH]);
  assert.deepEqual(api('service-account-signing-key-file'), [SA_KEY_PATH]);
  assert.deepEqual(api('api-audiences'), [K3S_API_AUDIENCES.join(',')]);
  assert.ok(!K3S_API_AUDIENCES.includes('sts.amazonaws.com'), 'the API server must not accept IRSA tokens');
  assert.ok(cmd.includes(`--kube-controller-manager-arg=service-account-private-key-file=${SA_KEY_PATH}`));
  const disabled =
    cmd
      .find((a) => a.startsWith('--disable='))
      ?.slice('--disable='.length)
      .split(',') ?? [];
  assert.ok(disabled.includes('traefik'));
  assert.ok(!disabled.includes('coredns'), 'pods resolve the emulator alias through CoreDNS');
  assert.equal(plan().k3sCommand.filter((a) => a.startsWith('--tls-san')).length, 0, 'K3sContainer adds the alias');
});

test('CoreDNS: a server block for the alias zone answering with the emulator address', () => {
  const cm = corednsAliasConfigMap('irsa-aws', '172.18.0.3');
  assert.equal(cm.metadata?.name, CUSTOM_DNS_CONFIGMAP);
  assert.equal(cm.metadata?.namespace, 'kube-system');
  const keys = Object.keys(cm.data ?? {});
  assert.equal(keys.length, 1);
  assert.match(keys[0] as string, /\.server$/, 'K3s imports /etc/coredns/custom/*.server at the top level');
  const block = cm.data?.[keys[0] as string] as string;
  assert.match(block, /^irsa-aws:53 \{/);
  assert.match(block, /answer "\{\{ \.Name \}\} 30 IN A 172\.18\.0\.3"/);
  const opens = block.split('{').length - 1;
  const closes = block.split('}').length - 1;
  // "{{ .Name }}" holds two of each: the block itself must balance.
  assert.equal(opens, closes);
});

test('emulator: moto runs the launcher logic with https on P and http for pods; LocalStack listens on both', () => {
  const m = emulatorSpec({
    kind: 'moto',
    image: 'motoserver/moto:5.2.1',
    alias: 'irsa-aws',
    region: 'eu-west-1',
    issuerPort: 41234,
    env: {},
  });
  assert.deepEqual(m.entrypoint, ['python3']);
  const arg = (name: string) => m.command?.[(m.command?.indexOf(name) ?? -2) + 1];
  assert.equal(arg('--https-port'), '41234');
  assert.equal(arg('--http-port'), String(MOTO_POD_PORT));
  assert.equal(arg('--host'), '0.0.0.0');
  assert.equal(arg('--region'), 'eu-west-1');
  assert.deepEqual(m.files.map((f) => f.target.split('/').pop()).sort(), [
    'launcher.py',
    'moto_in_container.py',
    'per_request_auth.py',
    'trust_policy.py',
    'web_identity.py',
  ]);
  const l = emulatorSpec({
    kind: 'localstack',
    image: 'localstack/localstack:4.14.0',
    alias: 'irsa-aws',
    region: 'us-east-1',
    issuerPort: 41234,
    env: { LOCALSTACK_AUTH_TOKEN: 'ls-token', ENFORCE_IAM: '1', AWS_SECRET_ACCESS_KEY: 'never' },
  });
  assert.equal(l.environment.GATEWAY_LISTEN, `0.0.0.0:${LOCALSTACK_POD_PORT},0.0.0.0:41234`);
  assert.equal(l.environment.CUSTOM_SSL_CERT_PATH, l.tls.certPath);
  assert.equal(l.tls.combined, true);
  assert.equal(l.environment.SKIP_SSL_CERT_DOWNLOAD, '1');
  assert.equal(l.environment.LOCALSTACK_AUTH_TOKEN, 'ls-token', 'the auth token is passed through');
  assert.equal(l.environment.ENFORCE_IAM, '1');
  assert.equal(l.environment.AWS_SECRET_ACCESS_KEY, undefined, 'nothing else of the environment leaks in');
  const none = emulatorSpec({
    kind: 'localstack',
    image: 'x:1',
    alias: 'a',
    region: 'us-east-1',
    issuerPort: 1,
    env: {},
  });
  assert.equal(none.environment.LOCALSTACK_AUTH_TOKEN, undefined);
});

test('certificates: the environment CA verifies the emulator certificate for every name it is reached by', async () => {
  const p = plan({}, '10.1.2.3');
  const ca = await createCa('irsa docker test');
  const issued = await issueServingCert(ca, p.emulatorCertNames);
  const cert = new X509Certificate(issued.certPem);
  const caCert = new X509Certificate(ca.certPem);
  assert.ok(cert.verify(caCert.publicKey), 'signed by the CA');
  assert.ok(cert.checkIssued(caCert));
  assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  assert.equal(cert.checkIP('10.1.2.3'), '10.1.2.3');
  assert.equal(cert.checkHost(NETWORK_ALIASES.aws), NETWORK_ALIASES.aws);
  assert.equal(cert.checkHost('localhost'), 'localhost');
  assert.equal(cert.checkHost('example.com'), undefined);
  assert.equal(cert.ca, false);
});

test('webhook: serving certificate for the Service names, manifests from webhook-deploy, registration passes pre-flight', async () => {
  const p = plan();
  const tls = await issueWebhookTls(p.webhook.namespace, p.webhook.name);
  const cert = new X509Certificate(tls.certPem);
  assert.ok(cert.verify(new X509Certificate(tls.caPem).publicKey));
  for (const name of [
    `${p.webhook.name}.${p.webhook.namespace}.svc`,
    `${p.webhook.name}.${p.webhook.namespace}.svc.cluster.local`,
  ])
    assert.equal(cert.checkHost(name), name);

  const objects = webhookManifests(
    {
      namespace: p.webhook.namespace,
      name: p.webhook.name,
      image: p.webhook.image,
      flags: p.webhook.flags,
      labels: { 'app.kubernetes.io/managed-by': 'irsa-conformance' },
      imagePullPolicy: 'IfNotPresent',
    },
    tls,
  );
  assert.deepEqual(
    objects.map((o) => o.kind),
    ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Secret', 'Deployment', 'Service'],
  );
  const dep = objects.find((o) => o.kind === 'Deployment') as V1Deployment;
  const c = dep.spec?.template.spec?.containers[0];
  assert.equal(c?.image, defaultImages(setup, versions).webhook);
  assert.equal(c?.imagePullPolicy, 'IfNotPresent', 'the image is loaded into K3s, never pulled there');
  for (const [k, v] of Object.entries(setup.spec.webhook.flags)) assert.ok(c?.args?.includes(`--${k}=${v}`), k);
  assert.ok(c?.args?.includes('--in-cluster=false'));

  // The registration the harness makes (registerWebhook) from the setup's template with this clientConfig.
  const clientConfig = webhookClientConfig(p.webhook, tls.caPem);
  assert.equal(clientConfig.service.path, '/mutate');
  const cfg = renderYaml<V1MutatingWebhookConfiguration>(setup, setup.spec.webhook.configuration, {
    name: 'pod-identity-webhook-test',
    runId: 'ictest',
    webhookClientConfig: JSON.stringify(clientConfig),
  });
  assert.deepEqual(cfg.webhooks?.[0]?.admissionReviewVersions, ['v1beta1']);
  const errors = preflightWebhookConfiguration(cfg, { webhookVersion: p.webhook.version }).filter(
    (f) => f.severity === 'error',
  );
  assert.deepEqual(errors, []);
  // The trap the pre-flight exists for: v1 first with this release is an error.
  const trap = structuredClone(cfg);
  (trap.webhooks?.[0] as { admissionReviewVersions: string[] }).admissionReviewVersions = ['v1', 'v1beta1'];
  assert.ok(
    preflightWebhookConfiguration(trap, { webhookVersion: p.webhook.version }).some((f) => f.severity === 'error'),
  );
});

test('published ports are bound to the loopback when asked', () => {
  const hostConfig: { PortBindings: Record<string, { HostIp?: string; HostPort?: string }[]> } = {
    PortBindings: { '4566/tcp': [{ HostPort: '0' }], '41234/tcp': [{ HostPort: '41234' }] },
  };
  bindPortsToLoopback(hostConfig);
  assert.deepEqual(hostConfig.PortBindings, {
    '4566/tcp': [{ HostPort: '0', HostIp: '127.0.0.1' }],
    '41234/tcp': [{ HostPort: '41234', HostIp: '127.0.0.1' }],
  });
});

test('tar: the first regular file of an archive, PAX headers skipped', () => {
  const block = (name: string, type: string, body: string) => {
    const h = Buffer.alloc(512);
    h.write(name, 0, 'ascii');
    h.write(`${Buffer.byteLength(body).toString(8).padStart(11, '0')}\0`, 124, 'ascii');
    h.write(type, 156, 'ascii');
    const data = Buffer.alloc(Math.ceil(Buffer.byteLength(body) / 512) * 512);
    data.write(body);
    return Buffer.concat([h, data]);
  };
  const tar = Buffer.concat([
    block('PaxHeaders/admin.json', 'x', '30 mtime=1700000000.123456789\n'),
    block('admin.json', '0', '{"accessKeyId":"AKIA"}'),
    Buffer.alloc(1024),
  ]);
  assert.equal(firstFileOfTar(tar), '{"accessKeyId":"AKIA"}');
  assert.throws(() => firstFileOfTar(Buffer.alloc(1024)), /no regular file/);
});

test('no engine: one line naming what was looked for, and the embedded target as the way out', async () => {
  assert.match(
    describeMissingRuntime({}, () => false),
    /^Docker is not running here: no engine socket \(\/var\/run\/docker\.sock/,
  );
  assert.equal(
    describeMissingRuntime({ DOCKER_HOST: 'tcp://10.0.0.1:2375' }),
    'no container engine answers at DOCKER_HOST=tcp://10.0.0.1:2375',
  );
  assert.match(
    describeMissingRuntime({}, (p) => p === '/var/run/docker.sock'),
    /no container engine answers on \/var\/run\/docker\.sock/,
  );
  assert.match(NO_DOCKER_HINT, /embedded/);
  let client: unknown;
  try {
    client = await requireContainerRuntime();
  } catch (e) {
    assert.ok(e instanceof UsageError, String(e));
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.match(e.message, /^the docker target needs a container engine: /);
    assert.equal(e.hint, NO_DOCKER_HINT);
    return;
  }
  assert.ok(client, 'an engine answers here: the UsageError path is covered by the cases above');
});
