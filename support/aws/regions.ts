/**
 * Whether a region exists: a name of the right shape (us-east-1) is not enough, `us-moon-1` would
 * only fail much later as an unresolvable endpoint. The AWS SDK's partition data (the regions its
 * endpoint resolution knows, with their descriptions) is the list; a region newer than the SDK in
 * use needs an SDK update, which the refusal says.
 */
import { partition } from '@aws-sdk/core/client';

export function isKnownRegion(region: string): boolean {
  return typeof (partition(region) as { description?: unknown }).description === 'string';
}

export const UNKNOWN_REGION_MESSAGE =
  'not a region AWS has (the AWS SDK in use knows none of that name; for a region newer than the SDK, update @aws-sdk/*)';

type PartitionData = { name: string; dnsSuffix: string; dualStackDnsSuffix: string };

/** The partition of a region, as its ARNs name it: aws, aws-cn, aws-us-gov, aws-iso, … */
export function partitionOf(region: string): string {
  return (partition(region) as PartitionData).name;
}

/** The DNS suffix of a region's endpoints (S3 bucket URLs are `<bucket>.s3.<region>.<suffix>`). */
export function dnsSuffixOf(region: string): string {
  return (partition(region) as PartitionData).dnsSuffix;
}

/** True when an endpoint URL is one of AWS's own (a FIPS, dual-stack or VPC endpoint), not an emulator. */
export function isAwsHostedEndpoint(url: string, region: string): boolean {
  const p = partition(region) as PartitionData;
  const host = new URL(url).hostname.toLowerCase();
  return [p.dnsSuffix, p.dualStackDnsSuffix].some((s) => host.endsWith(`.${s}`));
}
