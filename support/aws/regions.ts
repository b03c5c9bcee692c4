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
