/**
 * Steps of the infrastructure team: set-up once per run, then one check per scenario.
 * Each assertion names what differs and both values, so a failure reads as a diagnosis.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Given, Then } from '@cucumber/cucumber';
import { formatCapabilityMatrix } from '../support/capabilities.ts';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { preflightWebhookConfiguration } from '../support/diagnose/webhook.ts';
import { buildDiscoveryDocument, issuerHostPath, validateDiscoveryDocument } from '../support/oidc/discovery.ts';
import type { Jwk } from '../support/oidc/jwks.ts';
import { jwkForKey } from '../support/oidc/jwks.ts';
import { decodeTokenHeader } from '../support/oidc/token.ts';
import { repoRoot } from '../support/paths.ts';
import type { InfrastructureRecord } from '../support/provision/context.ts';
import { ensureInfrastructure } from '../support/provision/ensure.ts';
import {
  podCreateWebhooks,
  readClusterSigningKeys,
  readIdentityProvider,
} from '../support/provision/infrastructure.ts';

export async function infrastructure(world: IrsaWorld): Promise<InfrastructureRecord> {
  return ensureInfrastructure(world.provisionContext('run'), world.state.runDir);
}

Given(
  'the infrastructure team has set up IRSA for the cluster as the setup description says',
  async function (this: IrsaWorld) {
    const infra = await infrastructure(this);
    this.attach(
      [
        `setup: ${path.relative(repoRoot, this.shared.setup.dir) || this.shared.setup.dir}`,
        `cluster issuer: ${infra.clusterIssuer}`,
        `signing keys read from: ${infra.clusterKeySource} (kids: ${infra.clusterKids.join(', ')})`,
        'created for this run:',
        ...infra.created.map((c) => `  - ${c}`),
      ].join('\n'),
      { mediaType: 'text/plain', fileName: 'infrastructure.txt' },
    );
  },
);

Then('the capability matrix of the target is attached to the report', function (this: IrsaWorld) {
  const caps = this.state.target.capabilities;
  assert.ok(caps, 'the coordinator did not probe the target capabilities');
  this.attach(formatCapabilityMatrix(this.state.target.name, caps), {
    mediaType: 'text/plain',
    fileName: 'capabilities.txt',
  });
});

/** keys.json as published; without a bucket (verify-only, issuer not an S3 URL) the JWKS fetched from jwks_uri. */
export async function publishedKeysJson(world: IrsaWorld, infra: InfrastructureRecord): Promise<{ keys: Jwk[] }> {
  if (!infra.discoveryBucket) return infra.jwks as { keys: Jwk[] };
  const obj = await world.clients.s3.send(new GetObjectCommand({ Bucket: infra.discoveryBucket, Key: 'keys.json' }));
  return JSON.parse(await (obj.Body as { transformToString(): Promise<string> }).transformToString()) as {
    keys: Jwk[];
  };
}

Then(
  'keys.json holds every current signing key of the cluster, as an RS256 key with the kid the cluster puts in its tokens',
  async function (this: IrsaWorld) {
    const infra = await infrastructure(this);
    const c = this.clients;
    const published = await publishedKeysJson(this, infra);
    const kids = published.keys.map((k) => k.kid);
    // The keys as the cluster has them now (a rotation since set-up would show here).
    const current = await readClusterSigningKeys(c);
    for (const { kid, key } of current.keys) {
      const expected = jwkForKey(key, kid);
      const found = published.keys.find((k) => k.kid === kid);
      assert.ok(
        found,
        `kid ${kid} of the cluster's signing key (from ${current.source}) not found in keys.json (kids: ${kids.map((k) => JSON.stringify(k)).join(', ')})`,
      );
      assert.equal(found.n, expected.n, `keys.json entry ${kid} has a different modulus than the cluster's key`);
      assert.equal(found.alg, 'RS256', `keys.json entry ${kid} has alg ${found.alg}, STS needs RS256`);
      assert.equal(found.use, 'sig', `keys.json entry ${kid} has use ${found.use}, expected sig`);
      assert.equal(found.kty, 'RSA', `keys.json entry ${kid} has kty ${found.kty}, expected RSA`);
    }
    // And the kid of a token the cluster issues right now.
    const tr = await c.core.createNamespacedServiceAccountToken({
      name: 'default',
      namespace: 'default',
      body: { spec: { audiences: ['irsa-conformance-kid-check'], expirationSeconds: 600 } },
    });
    const header = decodeTokenHeader(tr.status?.token as string);
    assert.ok(
      kids.includes(header.kid ?? ''),
      `the cluster signs tokens with kid ${header.kid}, which is not in keys.json (kids: ${kids.join(', ')})`,
    );
    this.attach(
      `cluster kids (${current.source}): ${current.keys.map((k) => k.kid).join(', ')}\nkeys.json kids: ${kids.map((k) => JSON.stringify(k)).join(', ')}\ntoken kid: ${header.kid}`,
      { mediaType: 'text/plain', fileName: 'key ids.txt' },
    );
  },
);

Then(
  'the discovery document names the issuer, a jwks_uri under it, and the fields STS needs',
  async function (this: IrsaWorld) {
    const infra = await infrastructure(this);
    const doc = infra.discoveryDocument;
    const v = validateDiscoveryDocument(doc);
    assert.deepEqual(v.problems, [], `the discovery document is not usable by STS: ${v.problems.join('; ')}`);
    const expected = buildDiscoveryDocument(String(doc.issuer));
    assert.equal(
      doc.jwks_uri,
      expected.jwks_uri,
      `jwks_uri is ${JSON.stringify(doc.jwks_uri)}, expected ${JSON.stringify(expected.jwks_uri)} (keys.json beside the discovery document)`,
    );
    for (const w of v.warnings)
      this.attach(`warning: ${w}`, { mediaType: 'text/plain', fileName: 'discovery document warnings.txt' });
  },
);

async function anonymousJson(world: IrsaWorld, key: string): Promise<{ url: string; status: number; body: unknown }> {
  const infra = await infrastructure(world);
  const url = `${infra.discoveryUrl}/${key}`;
  return { url, ...(await world.clients.anonymousGetJson(url)) };
}

Then(
  'an anonymous GET of {string} returns the published discovery document',
  async function (this: IrsaWorld, key: string) {
    const infra = await infrastructure(this);
    const r = await anonymousJson(this, key);
    assert.equal(
      r.status,
      200,
      `anonymous GET ${r.url} returned HTTP ${r.status}, expected 200: the discovery document is not publicly readable (check the bucket policy)`,
    );
    assert.deepEqual(
      r.body,
      infra.discoveryDocument,
      `anonymous GET ${r.url} returned a different document than the one published`,
    );
  },
);

Then('an anonymous GET of {string} returns the published JWKS', async function (this: IrsaWorld, key: string) {
  const infra = await infrastructure(this);
  const r = await anonymousJson(this, key);
  assert.equal(
    r.status,
    200,
    `anonymous GET ${r.url} returned HTTP ${r.status}, expected 200: the JWKS is not publicly readable (check the bucket policy)`,
  );
  assert.deepEqual(r.body, infra.jwks, `anonymous GET ${r.url} returned a different JWKS than the one published`);
});

Then(
  "the issuer in the discovery document, the cluster's service-account issuer and the identity provider URL are the same string",
  async function (this: IrsaWorld) {
    const infra = await infrastructure(this);
    const idp = await readIdentityProvider(this.clients, infra.identityProviderArn);
    const docIssuer = String(infra.discoveryDocument.issuer);
    const table = `cluster issuer (token iss): ${JSON.stringify(infra.clusterIssuer)}\ndiscovery document issuer:  ${JSON.stringify(docIssuer)}\nidentity provider URL:      ${JSON.stringify(idp.url)} (IAM stores it without the scheme)`;
    this.attach(table, { mediaType: 'text/plain', fileName: 'issuers.txt' });
    assert.equal(
      docIssuer,
      infra.clusterIssuer,
      `the discovery document's issuer ${JSON.stringify(docIssuer)} differs from the cluster's issuer ${JSON.stringify(infra.clusterIssuer)}: STS rejects tokens whose iss does not match exactly`,
    );
    assert.equal(
      idp.url,
      issuerHostPath(infra.clusterIssuer),
      `the identity provider URL ${JSON.stringify(idp.url)} differs from the cluster's issuer ${JSON.stringify(issuerHostPath(infra.clusterIssuer))} (without scheme): STS finds no provider for the tokens`,
    );
  },
);

Then('the identity provider lists the client ID {string}', async function (this: IrsaWorld, clientId: string) {
  const infra = await infrastructure(this);
  const idp = await readIdentityProvider(this.clients, infra.identityProviderArn);
  assert.ok(
    idp.clientIds.includes(clientId),
    `the identity provider's client IDs ${JSON.stringify(idp.clientIds)} do not include ${JSON.stringify(clientId)}`,
  );
});

Then('the identity provider lists the audience the webhook puts into tokens', async function (this: IrsaWorld) {
  const infra = await infrastructure(this);
  const idp = await readIdentityProvider(this.clients, infra.identityProviderArn);
  const audience = this.state.target.dialect.audience;
  assert.ok(
    idp.clientIds.includes(audience),
    `the webhook puts audience ${JSON.stringify(audience)} into tokens, but the identity provider's client IDs are ${JSON.stringify(idp.clientIds)}: STS refuses such tokens`,
  );
});

Then('a mutating webhook for pod CREATE is registered for the pod identity webhook', async function (this: IrsaWorld) {
  const infra = await infrastructure(this);
  const configs = await podCreateWebhooks(this.clients);
  const names = configs.map((c) => c.metadata?.name);
  const expected = infra.webhookConfigurationName;
  assert.ok(
    expected,
    'the setup registers no MutatingWebhookConfiguration for the pod identity webhook (webhook.configuration: none): pods will not be mutated',
  );
  assert.ok(
    names.includes(expected),
    `no MutatingWebhookConfiguration ${expected} intercepts pod CREATE (registered for pods: ${names.join(', ') || 'none'})`,
  );
});

Then('the pod identity webhook is serving', async function (this: IrsaWorld) {
  const reg = this.state.target.webhook;
  if (reg.mode === 'harness') {
    const origin = new URL(reg.url).origin;
    const res = await this.clients
      .anonymousGet(`${origin}/healthz`)
      .catch((e: Error) => ({ status: 0, body: e.message }));
    assert.equal(
      res.status,
      200,
      `the webhook at ${origin} does not answer /healthz with 200 (got ${res.status} ${String(res.body).slice(0, 200)})`,
    );
  } else {
    let ns = reg.mode === 'harness-service' ? reg.namespace : undefined;
    let name = reg.mode === 'harness-service' ? reg.serviceName : undefined;
    if (reg.mode === 'existing' && reg.configurationName) {
      // The cluster's own webhook (OpenShift, EKS, verify-only): the Service its configuration calls.
      const cfg = await this.clients.admission.readMutatingWebhookConfiguration({ name: reg.configurationName });
      const svc = cfg.webhooks?.find((w) => w.clientConfig?.service)?.clientConfig?.service;
      ns = svc?.namespace;
      name = svc?.name;
    }
    if (ns && name) {
      const slices = await this.clients.kc
        .makeApiClient((await import('@kubernetes/client-node')).DiscoveryV1Api)
        .listNamespacedEndpointSlice({ namespace: ns, labelSelector: `kubernetes.io/service-name=${name}` });
      const ready = slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready);
      assert.ok(ready.length > 0, `the webhook Service ${ns}/${name} has no ready endpoint`);
    }
  }
});

Then('the webhook configuration passes the pre-flight checks', async function (this: IrsaWorld) {
  const infra = await infrastructure(this);
  const name = infra.webhookConfigurationName;
  assert.ok(name, 'no webhook configuration to check');
  const cfg = await this.clients.admission.readMutatingWebhookConfiguration({ name });
  const findings = preflightWebhookConfiguration(cfg, { webhookVersion: this.state.target.webhookVersion });
  for (const f of findings)
    this.attach(`${f.severity}: ${f.message}`, {
      mediaType: 'text/plain',
      fileName: 'webhook pre-flight findings.txt',
    });
  const errors = findings.filter(
    (f) => f.severity === 'error' || (this.state.config.lintProfile === 'strict' && f.severity === 'warning'),
  );
  assert.deepEqual(
    errors.map((e) => e.message),
    [],
    `the webhook configuration ${name} fails the pre-flight checks`,
  );
});
