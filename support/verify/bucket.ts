/**
 * Reads of the named buckets with the role's credentials (from support/aws/sts.ts): a list of one
 * key, whatever the role may do. The client is read-only guarded where the target is, as the
 * clients of support/clients.ts are.
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { awsErrorName, describeAwsError } from '../aws/errors.ts';
import type { RoleSession } from '../aws/sts.ts';
import type { Clients } from '../clients.ts';
import { readOnlyAwsClient } from '../read-only.ts';
import type { TargetDescriptor } from '../targets/target.ts';

export type ListOutcome = { ok: true; keys: number } | { ok: false; code: string; detail: string };

function guarded<T>(target: TargetDescriptor, client: T): T {
  return target.readOnly ? readOnlyAwsClient(client) : client;
}

/** ListObjectsV2 (one key) with the role's credentials: a read, whatever the role may do. */
export async function listBucketAs(
  c: Clients,
  target: TargetDescriptor,
  session: RoleSession,
  bucket: string,
): Promise<ListOutcome> {
  const s3 = guarded(
    target,
    new S3Client({ ...c.awsClientOptions(session.credentials), forcePathStyle: target.aws.forcePathStyle }),
  );
  try {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
    return { ok: true, keys: out.KeyCount ?? 0 };
  } catch (e) {
    return { ok: false, code: awsErrorName(e) ?? 'error', detail: describeAwsError(e) };
  }
}
