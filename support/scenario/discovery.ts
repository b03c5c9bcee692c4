/**
 * The discovery documents as a scenario reads them back: keys.json as published in the discovery
 * bucket, or, without a bucket (verify-only, an issuer that is not an S3 URL), the JWKS the run's
 * infrastructure fetched from jwks_uri.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { IrsaWorld } from '../cucumber/world.ts';
import type { Jwk } from '../oidc/jwks.ts';
import type { InfrastructureRecord } from '../provision/context.ts';

/** keys.json as published; without a bucket (verify-only, issuer not an S3 URL) the JWKS fetched from jwks_uri. */
export async function publishedKeysJson(world: IrsaWorld, infra: InfrastructureRecord): Promise<{ keys: Jwk[] }> {
  if (!infra.discoveryBucket) return infra.jwks as { keys: Jwk[] };
  const obj = await world.clients.s3.send(new GetObjectCommand({ Bucket: infra.discoveryBucket, Key: 'keys.json' }));
  return JSON.parse(await (obj.Body as { transformToString(): Promise<string> }).transformToString()) as {
    keys: Jwk[];
  };
}
