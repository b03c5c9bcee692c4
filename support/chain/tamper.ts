/**
 * Tries every change of CHANGES on the discovery bucket and its documents as a caller other than
 * the owner, the way an attacker would, and expects each to be refused with AccessDenied.
 *
 * Each attempt would leave the bucket as it is if it succeeded: an object is written with the bytes
 * and content type it has, a policy, ACL, Block Public Access or ownership setting is put back with
 * the value it has (readDiscoveryBucket took them first). What an attempt removes when it succeeds
 * (an object, the policy, the Block Public Access configuration) is restored right away with the
 * owner's client, as is the owner and ACL of an object another caller wrote. DeleteBucket cannot
 * succeed on a bucket that holds the documents: S3 answering BucketNotEmpty instead of AccessDenied
 * shows the caller was allowed to try.
 */
import {
  DeleteBucketCommand,
  DeleteBucketOwnershipControlsCommand,
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  DeletePublicAccessBlockCommand,
  type ObjectOwnership,
  PutBucketAclCommand,
  PutBucketOwnershipControlsCommand,
  PutBucketPolicyCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { awsErrorName, describeAwsError } from '../aws/errors.ts';
import {
  type Change,
  changesOf,
  changeTarget,
  type DiscoveryBucketState,
  readDiscoveryBucket,
} from './discovery-bucket.ts';

export interface ChangeAttempt {
  operation: string;
  action: string;
  target: string;
  /** "refused": AccessDenied; otherwise the caller was allowed (succeeded, or S3 answered something else). */
  outcome: 'refused' | 'succeeded' | 'answered';
  /** The AWS error, for "refused" and "answered". */
  error?: string;
}

/** A bucket policy that changes nothing, for a bucket that has none: it denies reading an object that does not exist. */
function inertPolicy(bucket: string, runId: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'IrsaConformanceInert',
        Effect: 'Deny',
        Principal: '*',
        Action: 's3:GetObject',
        Resource: `arn:aws:s3:::${bucket}/irsa-conformance-no-such-object-${runId}`,
      },
    ],
  });
}

const OPEN_BLOCK = {
  BlockPublicAcls: false,
  IgnorePublicAcls: false,
  BlockPublicPolicy: false,
  RestrictPublicBuckets: false,
};

/** The request of one change, carrying what the bucket has now (so that a success changes nothing). */
function attempt(state: DiscoveryBucketState, change: Change, key: string | undefined, runId: string) {
  const Bucket = state.bucket;
  const object = state.objects.find((o) => o.key === key);
  const acl = (a = state.acl) => ({ Owner: a.owner, Grants: a.grants });
  return (s3: S3Client): Promise<unknown> => {
    switch (change.operation) {
      case 'PutObject':
        return s3.send(
          new PutObjectCommand({ Bucket, Key: key, Body: object?.body ?? '', ContentType: object?.contentType }),
        );
      case 'DeleteObject':
        return s3.send(new DeleteObjectCommand({ Bucket, Key: key }));
      case 'PutObjectAcl':
        return s3.send(new PutObjectAclCommand({ Bucket, Key: key, AccessControlPolicy: acl(object?.acl) }));
      case 'PutBucketPolicy':
        return s3.send(new PutBucketPolicyCommand({ Bucket, Policy: state.policy ?? inertPolicy(Bucket, runId) }));
      case 'DeleteBucketPolicy':
        return s3.send(new DeleteBucketPolicyCommand({ Bucket }));
      case 'PutBucketAcl':
        return s3.send(new PutBucketAclCommand({ Bucket, AccessControlPolicy: acl() }));
      case 'PutPublicAccessBlock':
        return s3.send(
          new PutPublicAccessBlockCommand({
            Bucket,
            PublicAccessBlockConfiguration: state.publicAccessBlock ?? OPEN_BLOCK,
          }),
        );
      case 'DeletePublicAccessBlock':
        return s3.send(new DeletePublicAccessBlockCommand({ Bucket }));
      case 'PutBucketOwnershipControls':
        return s3.send(ownershipCommand(Bucket, state.objectOwnership ?? 'ObjectWriter'));
      case 'DeleteBucket':
        return s3.send(new DeleteBucketCommand({ Bucket }));
      default:
        throw new Error(`no request for ${change.operation}`);
    }
  };
}

function ownershipCommand(Bucket: string, ownership: string) {
  return new PutBucketOwnershipControlsCommand({
    Bucket,
    OwnershipControls: { Rules: [{ ObjectOwnership: ownership as ObjectOwnership }] },
  });
}

/** Puts back, as the owner, what a successful change may have altered. */
async function restore(owner: S3Client, state: DiscoveryBucketState, change: Change, key?: string): Promise<void> {
  const Bucket = state.bucket;
  const object = state.objects.find((o) => o.key === key);
  const aclsCount = state.objectOwnership !== 'BucketOwnerEnforced';
  switch (change.operation) {
    case 'PutObject':
    case 'DeleteObject':
    case 'PutObjectAcl':
      if (object?.body === undefined) {
        await owner.send(new DeleteObjectCommand({ Bucket, Key: key }));
        return;
      }
      // Written again by the owner: its bytes, its content type, the owner as owner.
      await owner.send(new PutObjectCommand({ Bucket, Key: key, Body: object.body, ContentType: object.contentType }));
      if (aclsCount && object.acl)
        await owner.send(
          new PutObjectAclCommand({
            Bucket,
            Key: key,
            AccessControlPolicy: { Owner: object.acl.owner, Grants: object.acl.grants },
          }),
        );
      return;
    case 'PutBucketPolicy':
    case 'DeleteBucketPolicy':
      if (state.policy === undefined) await owner.send(new DeleteBucketPolicyCommand({ Bucket }));
      else await owner.send(new PutBucketPolicyCommand({ Bucket, Policy: state.policy }));
      return;
    case 'PutBucketAcl':
      if (aclsCount)
        await owner.send(
          new PutBucketAclCommand({
            Bucket,
            AccessControlPolicy: { Owner: state.acl.owner, Grants: state.acl.grants },
          }),
        );
      return;
    case 'PutPublicAccessBlock':
    case 'DeletePublicAccessBlock':
      if (state.publicAccessBlock === undefined) await owner.send(new DeletePublicAccessBlockCommand({ Bucket }));
      else
        await owner.send(
          new PutPublicAccessBlockCommand({ Bucket, PublicAccessBlockConfiguration: state.publicAccessBlock }),
        );
      return;
    case 'PutBucketOwnershipControls':
      if (state.objectOwnership === undefined) await owner.send(new DeleteBucketOwnershipControlsCommand({ Bucket }));
      else await owner.send(ownershipCommand(Bucket, state.objectOwnership));
      return;
    default:
      return; // DeleteBucket: a bucket that holds objects is not deleted
  }
}

/**
 * Tries every change as the caller behind `s3`, one after another; restores with `owner` after each
 * one that was not refused. A restore that fails is thrown at once: the bucket must not stay changed
 * unnoticed.
 */
export async function tryChanges(
  s3: S3Client,
  owner: S3Client,
  state: DiscoveryBucketState,
  runId: string,
): Promise<ChangeAttempt[]> {
  const attempts: ChangeAttempt[] = [];
  for (const { change, key } of changesOf(state)) {
    const base = { operation: change.operation, action: change.action, target: changeTarget(state, change, key) };
    try {
      await attempt(state, change, key, runId)(s3);
      attempts.push({ ...base, outcome: 'succeeded' });
    } catch (e) {
      if (awsErrorName(e) === undefined) throw e;
      const refused = awsErrorName(e) === 'AccessDenied';
      attempts.push({ ...base, outcome: refused ? 'refused' : 'answered', error: describeAwsError(e) });
      if (refused) continue;
    }
    try {
      await restore(owner, state, change, key);
    } catch (e) {
      throw new Error(
        `${base.operation} on ${base.target} was not refused, and restoring what it may have changed failed: ${describeAwsError(e)}; the discovery bucket may be left changed`,
      );
    }
  }
  return attempts;
}

function normalizedPolicy(policy: string | undefined): string | undefined {
  return policy === undefined ? undefined : JSON.stringify(JSON.parse(policy));
}

function grantKeys(grants: DiscoveryBucketState['acl']['grants']): string[] {
  return grants.map((g) => `${g.Grantee?.URI ?? g.Grantee?.ID ?? g.Grantee?.EmailAddress}:${g.Permission}`).sort();
}

/** What differs between two readings of the bucket: empty when it is as it was. */
export function differences(before: DiscoveryBucketState, after: DiscoveryBucketState): string[] {
  const out: string[] = [];
  for (const b of before.objects) {
    const a = after.objects.find((o) => o.key === b.key);
    if (a?.body !== b.body) out.push(`${b.key}: ${a?.body === undefined ? 'gone' : 'other content'}`);
    else if (a?.contentType !== b.contentType)
      out.push(`${b.key}: content type ${a?.contentType}, was ${b.contentType}`);
  }
  if (normalizedPolicy(after.policy) !== normalizedPolicy(before.policy)) out.push('the bucket policy');
  if (JSON.stringify(grantKeys(after.acl.grants)) !== JSON.stringify(grantKeys(before.acl.grants)))
    out.push('the bucket ACL');
  if (JSON.stringify(after.publicAccessBlock ?? null) !== JSON.stringify(before.publicAccessBlock ?? null))
    out.push('Block Public Access');
  if (after.objectOwnership !== before.objectOwnership) out.push('Object Ownership');
  return out;
}

/** Reads the bucket again and names what is not as it was. */
export async function changedSince(owner: S3Client, before: DiscoveryBucketState): Promise<string[]> {
  const after = await readDiscoveryBucket(
    owner,
    before.bucket,
    before.objects.map((o) => o.key),
    before.accountId,
  );
  return differences(before, after);
}
