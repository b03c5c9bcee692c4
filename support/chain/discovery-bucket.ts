/**
 * Who, besides its owner, may change what STS reads: the discovery bucket, its discovery document
 * and its keys.json. Whoever can replace keys.json (or the document that points at it) can sign
 * tokens that STS accepts for every role that trusts the cluster's identity provider.
 *
 * readDiscoveryBucket takes the bucket as S3 has it (reads only: its policy, ACLs, Block Public
 * Access, Object Ownership and the two documents). whoMayChange evaluates it for callers other than
 * the owner: an anonymous caller, a principal of the owner's account without permissions of its own,
 * and other accounts (one that the policy does not name, and every account it does name), for every
 * change of CHANGES. The bucket policy is evaluated with @cloud-copilot/iam-simulate
 * (simulateBucketPolicy); the ACLs by S3's rules: a grant to AllUsers reaches anonymous callers, a
 * grant to AuthenticatedUsers any signed caller of any account (both ignored under IgnorePublicAcls),
 * a grant to another canonical user that account; none counts when Object Ownership is
 * BucketOwnerEnforced. Every finding names the statement or the grant that allows the change.
 */
import {
  GetBucketAclCommand,
  GetBucketOwnershipControlsCommand,
  GetBucketPolicyCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetPublicAccessBlockCommand,
  type Grant,
  type Owner,
  type PublicAccessBlockConfiguration,
  type S3Client,
} from '@aws-sdk/client-s3';
import { s3BucketArn, s3ObjectArn } from '../aws/arn.ts';
import { isAwsError } from '../aws/errors.ts';
import { asList, parseIamDocument, statementsOf } from '../policy/document.ts';
import { type BucketCaller, simulateBucketPolicy } from '../policy/simulate.ts';

export interface Acl {
  owner?: Owner;
  grants: Grant[];
}

export interface DiscoveryObject {
  key: string;
  /** Undefined when the object does not exist. */
  body?: string;
  contentType?: string;
  acl?: Acl;
}

export interface DiscoveryBucketState {
  bucket: string;
  /** The account that owns the bucket. */
  accountId: string;
  objects: DiscoveryObject[];
  /** The bucket policy as S3 returns it; undefined: none. */
  policy?: string;
  acl: Acl;
  /** Undefined: no Block Public Access configuration on the bucket. */
  publicAccessBlock?: PublicAccessBlockConfiguration;
  /** Undefined: no ownership controls (ACLs count, the object's writer owns it). */
  objectOwnership?: string;
}

/** A change only the owner may make: the S3 operation, the IAM action it needs, and what it acts on. */
export interface Change {
  operation: string;
  action: string;
  on: 'object' | 'bucket';
}

export const CHANGES: Change[] = [
  { operation: 'PutObject', action: 's3:PutObject', on: 'object' },
  { operation: 'DeleteObject', action: 's3:DeleteObject', on: 'object' },
  { operation: 'PutObjectAcl', action: 's3:PutObjectAcl', on: 'object' },
  { operation: 'PutBucketPolicy', action: 's3:PutBucketPolicy', on: 'bucket' },
  { operation: 'DeleteBucketPolicy', action: 's3:DeleteBucketPolicy', on: 'bucket' },
  { operation: 'PutBucketAcl', action: 's3:PutBucketAcl', on: 'bucket' },
  { operation: 'PutPublicAccessBlock', action: 's3:PutBucketPublicAccessBlock', on: 'bucket' },
  { operation: 'DeletePublicAccessBlock', action: 's3:PutBucketPublicAccessBlock', on: 'bucket' },
  { operation: 'PutBucketOwnershipControls', action: 's3:PutBucketOwnershipControls', on: 'bucket' },
  { operation: 'DeleteBucket', action: 's3:DeleteBucket', on: 'bucket' },
];

/** Where a change acts: s3://bucket or s3://bucket/key. */
export function changeTarget(state: DiscoveryBucketState, change: Change, key?: string): string {
  return change.on === 'object' ? `s3://${state.bucket}/${key}` : `s3://${state.bucket}`;
}

/** Each change, with the objects it applies to (every object for an object change, none for the bucket's). */
export function changesOf(state: DiscoveryBucketState): { change: Change; key?: string }[] {
  return CHANGES.flatMap((change) =>
    change.on === 'object' ? state.objects.map((o) => ({ change, key: o.key })) : [{ change }],
  );
}

async function orUndefined<T>(read: Promise<T>, ...absent: string[]): Promise<T | undefined> {
  try {
    return await read;
  } catch (e) {
    if (isAwsError(e, ...absent)) return undefined;
    throw e;
  }
}

const aclOf = (r: { Owner?: Owner; Grants?: Grant[] }): Acl => ({
  ...(r.Owner ? { owner: r.Owner } : {}),
  grants: r.Grants ?? [],
});

/** The bucket and the objects `keys` as S3 has them now (reads only). */
export async function readDiscoveryBucket(
  s3: S3Client,
  bucket: string,
  keys: string[],
  accountId: string,
): Promise<DiscoveryBucketState> {
  const Bucket = bucket;
  const [policy, acl, block, ownership, objects] = await Promise.all([
    orUndefined(s3.send(new GetBucketPolicyCommand({ Bucket })), 'NoSuchBucketPolicy'),
    s3.send(new GetBucketAclCommand({ Bucket })),
    orUndefined(s3.send(new GetPublicAccessBlockCommand({ Bucket })), 'NoSuchPublicAccessBlockConfiguration'),
    orUndefined(s3.send(new GetBucketOwnershipControlsCommand({ Bucket })), 'OwnershipControlsNotFoundError'),
    Promise.all(
      keys.map(async (key): Promise<DiscoveryObject> => {
        const obj = await orUndefined(s3.send(new GetObjectCommand({ Bucket, Key: key })), 'NoSuchKey');
        if (!obj) return { key };
        const objectAcl = await s3.send(new GetObjectAclCommand({ Bucket, Key: key }));
        return {
          key,
          body: await (obj.Body as { transformToString(): Promise<string> }).transformToString(),
          ...(obj.ContentType ? { contentType: obj.ContentType } : {}),
          acl: aclOf(objectAcl),
        };
      }),
    ),
  ]);
  const rule = ownership?.OwnershipControls?.Rules?.[0]?.ObjectOwnership;
  return {
    bucket,
    accountId,
    objects,
    ...(policy?.Policy ? { policy: policy.Policy } : {}),
    acl: aclOf(acl),
    ...(block?.PublicAccessBlockConfiguration ? { publicAccessBlock: block.PublicAccessBlockConfiguration } : {}),
    ...(rule ? { objectOwnership: rule } : {}),
  };
}

/** A caller other than the owner, as whoMayChange evaluates it. */
export interface Outsider {
  /** How reports name it: "an anonymous caller", "a principal of account … without permissions", "account …". */
  label: string;
  caller: BucketCaller;
  /** Which ACL grantees reach it: AllUsers for everyone; AuthenticatedUsers and canonical users for signed callers. */
  kind: 'anonymous' | 'same-account' | 'other-account';
}

/** An account the bucket policy does not name, for "any other account": AWS's documentation example, or another. */
function unnamedAccount(own: string, named: string[]): string {
  return ['111122223333', '444455556666', '777788889999'].find((a) => a !== own && !named.includes(a)) as string;
}

/** The accounts the bucket policy names in an AWS principal (account ids, root or principal ARNs), other than `own`. */
function accountsNamed(policy: unknown, own: string): { account: string; principal: string }[] {
  const out = new Map<string, string>();
  for (const s of statementsOf(policy, 'bucket policy')) {
    for (const p of [s.statement.Principal, s.statement.NotPrincipal]) {
      if (!p || typeof p !== 'object') continue;
      for (const value of asList((p as Record<string, unknown>).AWS)) {
        const account = /^\d{12}$/.test(value) ? value : /^arn:[^:]+:(?:iam|sts)::(\d{12}):/.exec(value)?.[1];
        if (account && account !== own && !out.has(account)) out.set(account, value);
      }
    }
  }
  return [...out].map(([account, principal]) => ({ account, principal }));
}

/** The full-access identity policy an attacker gives itself in its own account. */
const OWN_ACCOUNT_ADMIN = {
  name: "the outsider's own policy (Allow * on *)",
  document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] },
};

/** Everyone whoMayChange asks about, for this bucket. */
export function outsiders(state: DiscoveryBucketState): Outsider[] {
  const policy = state.policy === undefined ? undefined : parseIamDocument(state.policy);
  const named = policy === undefined ? [] : accountsNamed(policy, state.accountId);
  const other = unnamedAccount(
    state.accountId,
    named.map((n) => n.account),
  );
  const principalOf = (account: string, principal?: string) =>
    principal && /:(user|role)\//.test(principal)
      ? principal
      : `arn:aws:iam::${account}:user/irsa-conformance-outsider`;
  return [
    { label: 'an anonymous caller', kind: 'anonymous', caller: { anonymous: true } },
    {
      label: `a principal of account ${state.accountId} without permissions of its own`,
      kind: 'same-account',
      caller: { arn: `arn:aws:iam::${state.accountId}:user/irsa-conformance-nobody`, identityPolicies: [] },
    },
    ...[{ account: other, principal: undefined }, ...named].map(
      ({ account, principal }): Outsider => ({
        label: principal
          ? `account ${account} (named in the bucket policy as ${principal})`
          : `another account (${account})`,
        kind: 'other-account',
        caller: { arn: principalOf(account, principal), identityPolicies: [OWN_ACCOUNT_ADMIN] },
      }),
    ),
  ];
}

/** One change an outsider may make, and what allows it. */
export interface ChangeRight {
  outsider: string;
  kind: Outsider['kind'];
  operation: string;
  action: string;
  target: string;
  /** "bucket policy statement 1 (Sid AnyoneMayPublish)", "the bucket ACL's grant of WRITE to AllUsers (…)". */
  allowedBy: string;
}

const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';
const AUTHENTICATED_USERS = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';

/** The ACL permission a change needs, on the bucket's ACL or the object's own. */
const ACL_NEEDS: Record<string, { acl: 'bucket' | 'object'; permission: string }> = {
  PutObject: { acl: 'bucket', permission: 'WRITE' },
  DeleteObject: { acl: 'bucket', permission: 'WRITE' },
  PutBucketAcl: { acl: 'bucket', permission: 'WRITE_ACP' },
  PutObjectAcl: { acl: 'object', permission: 'WRITE_ACP' },
};

function granteeName(g: Grant): string {
  const grantee = g.Grantee;
  if (grantee?.URI) return `${grantee.URI.split('/').pop()} (${grantee.URI})`;
  if (grantee?.ID) return `canonical user ${grantee.ID}`;
  return grantee?.EmailAddress ? `the account of ${grantee.EmailAddress}` : 'an unnamed grantee';
}

/** Whether an ACL grant reaches this outsider, by S3's rules. */
function grantReaches(g: Grant, outsider: Outsider, owner: Owner | undefined, ignorePublicAcls: boolean): boolean {
  const uri = g.Grantee?.URI;
  if (uri === ALL_USERS) return !ignorePublicAcls;
  if (uri === AUTHENTICATED_USERS) return !ignorePublicAcls && outsider.kind !== 'anonymous';
  if (uri) return false; // LogDelivery: S3's log delivery only
  const id = g.Grantee?.ID;
  return outsider.kind === 'other-account' && id !== undefined && id !== owner?.ID;
}

function aclRights(state: DiscoveryBucketState, outsider: Outsider, operation: string, key?: string): string[] {
  if (state.objectOwnership === 'BucketOwnerEnforced') return [];
  const needs = ACL_NEEDS[operation];
  if (!needs) return [];
  const acl = needs.acl === 'bucket' ? state.acl : state.objects.find((o) => o.key === key)?.acl;
  if (!acl) return [];
  const ignore = state.publicAccessBlock?.IgnorePublicAcls === true;
  const where = needs.acl === 'bucket' ? 'the bucket ACL' : `the ACL of ${key}`;
  return acl.grants
    .filter(
      (g) =>
        (g.Permission === needs.permission || g.Permission === 'FULL_CONTROL') &&
        grantReaches(g, outsider, acl.owner, ignore),
    )
    .map((g) => `${where}'s grant of ${g.Permission} to ${granteeName(g)}`);
}

/**
 * Every change of CHANGES on the bucket and its documents that a caller other than the owner may
 * make, with what allows it. Empty when only the owner can change what STS reads.
 */
export async function whoMayChange(state: DiscoveryBucketState): Promise<ChangeRight[]> {
  const policy = state.policy === undefined ? undefined : parseIamDocument(state.policy);
  const restrict = state.publicAccessBlock?.RestrictPublicBuckets === true;
  const rights: ChangeRight[] = [];
  for (const outsider of outsiders(state)) {
    for (const { change, key } of changesOf(state)) {
      const resource = change.on === 'object' ? s3ObjectArn(state.bucket, key as string) : s3BucketArn(state.bucket);
      const target = changeTarget(state, change, key);
      const right = (allowedBy: string) =>
        rights.push({
          outsider: outsider.label,
          kind: outsider.kind,
          operation: change.operation,
          action: change.action,
          target,
          allowedBy,
        });
      if (policy !== undefined) {
        const sim = await simulateBucketPolicy({
          bucketPolicy: policy,
          caller: outsider.caller,
          action: change.action,
          resource,
          bucketAccountId: state.accountId,
          restrictPublicBuckets: restrict,
        });
        if (sim.decision === 'Allowed' && sim.allowingStatements.length > 0) {
          const when = sim.conditions ? ` when ${sim.conditions}` : '';
          right(`bucket policy ${sim.allowingStatements.join(', ')}${when}`);
        }
      }
      for (const grant of aclRights(state, outsider, change.operation, key)) right(grant);
    }
  }
  return rights;
}

/** One line per change and what allows it: "<outsider>, <outsider> may <operation> <target> (<action>): <what allows it>". */
export function describeRights(rights: ChangeRight[]): string[] {
  const byChange = new Map<string, string[]>();
  for (const r of rights) {
    const change = `${r.operation} ${r.target} (${r.action}): ${r.allowedBy}`;
    byChange.set(change, [...(byChange.get(change) ?? []), r.outsider]);
  }
  return [...byChange].map(([change, who]) => `${who.join(', ')} may ${change}`);
}
