/**
 * Steps of the identity chain's integrity: who, besides its owner, could change what STS reads or
 * trusts. The discovery bucket is tried (as an anonymous caller and as an IAM user without
 * permissions, where the harness may write) and evaluated (its policy, ACLs and Block Public Access,
 * for everyone else, on every target); keys.json is compared with the cluster's keys; the identity
 * provider's client IDs with the audiences in use.
 */
import assert from 'node:assert/strict';
import { CreateAccessKeyCommand, CreateUserCommand } from '@aws-sdk/client-iam';
import { GetObjectCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { Then, When } from '@cucumber/cucumber';
import { anonymousS3Client } from '../support/aws/anonymous.ts';
import { describeAwsError, isAwsError } from '../support/aws/errors.ts';
import { retryIamPropagation } from '../support/aws/propagation.ts';
import {
  type ChangeRight,
  type DiscoveryBucketState,
  describeRights,
  readDiscoveryBucket,
  whoMayChange,
} from '../support/chain/discovery-bucket.ts';
import { type ChangeAttempt, changedSince, tryChanges } from '../support/chain/tamper.ts';
import type { IrsaWorld } from '../support/cucumber/world.ts';
import { awsTags, resourceName } from '../support/names.ts';
import { foreignKeys, jwkThumbprint, keysFromJwks } from '../support/oidc/jwks.ts';
import { serviceAccountManifest } from '../support/provision/application.ts';
import type { InfrastructureRecord } from '../support/provision/context.ts';
import { readClusterSigningKeys, readIdentityProvider } from '../support/provision/infrastructure.ts';
import { registerSecret } from '../support/redact.ts';
import { publishedKeysJson } from '../support/scenario/discovery.ts';
import { strictProfile } from '../support/scenario/lint.ts';

const DISCOVERY_KEY = '.well-known/openid-configuration';

/** What STS reads: the discovery document, and keys.json where jwks_uri points inside the bucket. */
function documentKeys(infra: InfrastructureRecord): string[] {
  const jwksUri = String(infra.discoveryDocument.jwks_uri ?? '');
  const base = `${infra.discoveryUrl}/`;
  return [DISCOVERY_KEY, jwksUri.startsWith(base) ? jwksUri.slice(base.length) : 'keys.json'];
}

async function readBucket(world: IrsaWorld, infra: InfrastructureRecord): Promise<DiscoveryBucketState> {
  try {
    return await readDiscoveryBucket(
      world.clients.s3,
      infra.discoveryBucket,
      documentKeys(infra),
      world.state.target.aws.accountId,
    );
  } catch (e) {
    throw new Error(
      `cannot read who may change the discovery bucket ${infra.discoveryBucket} (its policy, ACLs, Block Public Access, Object Ownership, documents): ${describeAwsError(e)}`,
    );
  }
}

interface Caller {
  label: string;
  outsider: 'anonymous' | 'same-account';
  attempts: ChangeAttempt[];
}
interface Tried {
  /** The bucket as it was before the scenario's first attempt. */
  before: DiscoveryBucketState;
  callers: Caller[];
}
const tried = new WeakMap<IrsaWorld, Tried>();

async function tryAs(world: IrsaWorld, who: string, outsider: Caller['outsider'], s3: S3Client): Promise<void> {
  const infra = await world.infrastructure();
  const state = tried.get(world)?.before ?? (await readBucket(world, infra));
  const attempts = await tryChanges(s3, world.clients.s3, state, world.state.runId);
  tried.set(world, {
    before: state,
    callers: [...(tried.get(world)?.callers ?? []), { label: who, outsider, attempts }],
  });
  if (attempts.some((a) => a.outcome !== 'refused')) {
    // What succeeded was put back: make sure, now, whatever the scenario's next step.
    const changed = await changedSince(world.clients.s3, state);
    assert.deepEqual(
      changed,
      [],
      `${who} changed the discovery bucket, and it could not be restored: ${changed.join(', ')}`,
    );
  }
  world.attach(
    [
      `${who}, on the discovery bucket and its documents:`,
      ...attempts.map(
        (a) => `  ${a.operation.padEnd(26)} ${a.target.padEnd(60)} ${a.outcome}${a.error ? ` (${a.error})` : ''}`,
      ),
    ].join('\n'),
    { mediaType: 'text/plain', fileName: 'attempted changes.txt' },
  );
}

When(
  'an anonymous caller tries every change to the discovery bucket and its two documents',
  async function (this: IrsaWorld) {
    const c = this.clients;
    const anonymous = anonymousS3Client({
      ...c.awsClientOptions(),
      forcePathStyle: this.state.target.aws.forcePathStyle,
    });
    // Positive control: this client's unsigned requests reach the bucket and get what the bucket
    // policy allows everyone, the public read; else a refused change would prove nothing.
    const infra = await this.infrastructure();
    await anonymous.send(new GetObjectCommand({ Bucket: infra.discoveryBucket, Key: DISCOVERY_KEY })).then(
      (read) => read.Body?.transformToString(),
      (e: unknown) =>
        assert.fail(
          `an anonymous read of the discovery document failed (${describeAwsError(e)}): without a public read that works, a refused anonymous change proves nothing`,
        ),
    );
    await tryAs(this, 'an anonymous caller', 'anonymous', anonymous);
  },
);

When(
  'an IAM user of the account without permissions tries every change to the discovery bucket and its two documents',
  async function (this: IrsaWorld) {
    const c = this.clients;
    const UserName = resourceName('irsa-outsider', this.state.runId, this.scopeId, 64);
    await c.iam.send(new CreateUserCommand({ UserName, Tags: awsTags(this.state.runId) }));
    this.shared.ledger.record(this.scopeId, { kind: 'iam-user', userName: UserName });
    const key = await c.iam.send(new CreateAccessKeyCommand({ UserName }));
    const credentials = {
      accessKeyId: key.AccessKey?.AccessKeyId as string,
      secretAccessKey: key.AccessKey?.SecretAccessKey as string,
    };
    registerSecret(credentials.secretAccessKey);
    const s3 = new S3Client({
      ...c.awsClientOptions(credentials),
      forcePathStyle: this.state.target.aws.forcePathStyle,
    });
    // Positive control: S3 knows the new key (IAM is eventually consistent on AWS) and refuses its
    // ListBuckets, so that AccessDenied below is about the bucket and not about an unknown key.
    await retryIamPropagation(
      () =>
        s3.send(new ListBucketsCommand({})).then(
          () => assert.fail(`the IAM user ${UserName}, without any policy, may list buckets: IAM is not enforced`),
          (e: unknown) => {
            if (!isAwsError(e, 'AccessDenied')) throw e;
          },
        ),
      {
        operation: `a ListBuckets of the new IAM user ${UserName}`,
        codes: ['InvalidAccessKeyId', 'InvalidClientTokenId'],
        timeoutSeconds: this.state.config.timeouts.applySeconds,
        log: (line) => this.log(line),
      },
    );
    await tryAs(this, `the IAM user ${UserName} (no permissions)`, 'same-account', s3);
  },
);

/** What allows a change the caller made, as the evaluation of the bucket finds it. */
function explanation(rights: ChangeRight[], a: ChangeAttempt, outsider: 'anonymous' | 'same-account'): string {
  const why = rights
    .filter((r) => r.kind === outsider && r.operation === a.operation && r.target === a.target)
    .map((r) => r.allowedBy);
  return why.length > 0
    ? `allowed by ${why.join('; ')}`
    : 'the bucket policy and ACLs as read do not explain it: the target and the diagnosis disagree';
}

Then('S3 refuses every one of these changes with AccessDenied', async function (this: IrsaWorld) {
  const t = tried.get(this);
  assert.ok(t && t.callers.length > 0, 'no change was tried in this scenario');
  const found: string[] = [];
  const rights = await whoMayChange(t.before);
  for (const caller of t.callers) {
    const allowed = caller.attempts.filter((a) => a.outcome !== 'refused');
    if (allowed.length === 0) continue;
    const lines = allowed.map(
      (a) =>
        `${a.operation} on ${a.target} ${a.outcome === 'succeeded' ? 'succeeded' : `was answered ${a.error} instead of AccessDenied (S3 let it through to the request's own checks)`}, ${explanation(rights, a, caller.outsider)}`,
    );
    found.push(`${caller.label} may change what STS reads: ${lines.join('; ')}`);
  }
  assert.deepEqual(
    found,
    [],
    `${found.join('; and ')}. Whoever can replace keys.json or the discovery document can sign tokens that STS accepts for every role that trusts this identity provider`,
  );
});

Then('the discovery bucket and its two documents are as they were before', async function (this: IrsaWorld) {
  const before = tried.get(this)?.before;
  assert.ok(before, 'no change was tried in this scenario');
  const changed = await changedSince(this.clients.s3, before);
  assert.deepEqual(
    changed,
    [],
    `the attempts left the discovery bucket ${before.bucket} changed: ${changed.join(', ')}`,
  );
});

Then(
  'the policy, ACLs and Block Public Access of the discovery bucket let no caller but the owner change it or its two documents',
  async function (this: IrsaWorld) {
    const infra = await this.infrastructure();
    if (!infra.discoveryBucket) {
      this.attach(
        `Skipped: the issuer ${infra.issuer} is not the URL of an S3 bucket the harness can read, so who may change the documents cannot be evaluated`,
        { mediaType: 'text/plain', fileName: 'skipped.txt' },
      );
      return 'skipped';
    }
    const state = await readBucket(this, infra);
    const rights = await whoMayChange(state);
    const block = state.publicAccessBlock;
    this.attach(
      [
        `discovery bucket ${state.bucket} (account ${state.accountId})`,
        `  bucket policy: ${state.policy === undefined ? 'none' : 'present'}`,
        `  Block Public Access: ${
          block
            ? Object.entries(block)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ')
            : 'none'
        }`,
        `  Object Ownership: ${state.objectOwnership ?? 'not set (ACLs count)'}`,
        `  bucket ACL: ${state.acl.grants.map((g) => `${g.Grantee?.URI ?? g.Grantee?.ID} ${g.Permission}`).join(', ')}`,
        'evaluated for: an anonymous caller, a principal of the account without permissions, another account and every account the policy names',
        ...(rights.length > 0 ? ['changes they may make:', ...describeRights(rights).map((r) => `  ${r}`)] : []),
      ].join('\n'),
      { mediaType: 'text/plain', fileName: 'discovery bucket evaluation.txt' },
    );
    assert.deepEqual(
      describeRights(rights),
      [],
      `callers other than the owner may change what STS reads: ${describeRights(rights).join('; ')}`,
    );
    return undefined;
  },
);

Then('every key in keys.json is one the cluster signs tokens with or publishes', async function (this: IrsaWorld) {
  const infra = await this.infrastructure();
  const published = await publishedKeysJson(this, infra);
  const cluster = await readClusterSigningKeys(this.clients);
  const foreign = foreignKeys(
    published,
    cluster.keys.map((k) => k.key),
  );
  this.attach(
    [
      `the cluster's keys (${cluster.source}):`,
      ...cluster.keys.map((k) => `  kid ${k.kid}  thumbprint ${jwkThumbprint(k.key)}`),
      'keys.json:',
      ...keysOf(published).map((k) => `  ${k}`),
    ].join('\n'),
    { mediaType: 'text/plain', fileName: 'keys.txt' },
  );
  assert.deepEqual(
    foreign,
    [],
    `keys.json holds ${foreign.length} key(s) the cluster neither signs with nor publishes (${cluster.source}): ${foreign
      .map(
        (f) =>
          `keys[${f.index}] kid ${JSON.stringify(f.kid)} ${f.thumbprint ? `(RFC 7638 thumbprint ${f.thumbprint})` : `(${f.problem})`}`,
      )
      .join(
        '; ',
      )}. Whoever holds the private half of such a key can sign tokens that STS accepts for every role that trusts this identity provider`,
  );
});

/** One line per published key: kid and thumbprint (or why it is not a key). */
function keysOf(jwks: unknown): string[] {
  try {
    return keysFromJwks(jwks, 'keys.json').map(
      (k) => `kid ${JSON.stringify(k.kid)}  thumbprint ${jwkThumbprint(k.key)}`,
    );
  } catch (e) {
    return [(e as Error).message];
  }
}

/** The audiences tokens for AWS carry here: the webhook's, and any the setup's ServiceAccount sets by annotation. */
function audiencesInUse(world: IrsaWorld): { audience: string; from: string }[] {
  const dialect = world.state.target.dialect;
  const used = [{ audience: dialect.audience, from: "the webhook's token audience" }];
  const sa = serviceAccountManifest(world.provisionContext(), 'namespace', 'name', 'arn:aws:iam::000000000000:role/x');
  const annotated = sa.metadata?.annotations?.[`${dialect.annotationPrefix}/audience`];
  if (annotated && annotated !== dialect.audience)
    used.push({ audience: annotated, from: "the setup's ServiceAccount annotation" });
  return used;
}

Then(
  "the identity provider's client IDs are the audiences the webhook and the setup put into tokens, and no other",
  async function (this: IrsaWorld) {
    const infra = await this.infrastructure();
    const idp = await readIdentityProvider(this.clients, infra.identityProviderArn);
    const used = audiencesInUse(this);
    const names = used.map((u) => `${JSON.stringify(u.audience)} (${u.from})`).join(', ');
    this.attach(
      `identity provider ${idp.arn}\n  client IDs: ${JSON.stringify(idp.clientIds)}\n  audiences in use: ${names}`,
      { mediaType: 'text/plain', fileName: 'identity provider client IDs.txt' },
    );
    const missing = used.filter((u) => !idp.clientIds.includes(u.audience));
    assert.deepEqual(
      missing.map((u) => u.audience),
      [],
      `the identity provider's client IDs ${JSON.stringify(idp.clientIds)} lack ${missing.map((u) => `${JSON.stringify(u.audience)} (${u.from})`).join(', ')}: STS refuses such tokens`,
    );
    const extra = idp.clientIds.filter((id) => !used.some((u) => u.audience === id));
    if (extra.length === 0) return;
    const finding = `the identity provider also accepts client ID(s) ${JSON.stringify(extra)}, which neither the webhook nor the setup puts into tokens (audiences in use: ${names}): STS accepts any token of this issuer with such an audience (a token anyone who may create a ServiceAccount token can request for it) for every role that trusts the provider and has no :aud condition`;
    const strict = strictProfile(this);
    this.attach(`${strict ? 'error' : 'warning'}: ${finding}`, {
      mediaType: 'text/plain',
      fileName: 'identity provider finding.txt',
    });
    assert.ok(!strict, finding);
  },
);
