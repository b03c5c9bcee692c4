/**
 * An S3 client that sends every request unsigned, as anyone on the network could: no Authorization
 * header, no credentials resolved. Used to try what an anonymous caller may do to a bucket.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

/** `options`: the endpoint, region, request handler, path style of the clients it stands beside. */
export function anonymousS3Client(options: S3ClientConfig): S3Client {
  return new S3Client({
    ...options,
    // Never used to sign (the signer below returns the request as it is), but the SDK resolves them.
    credentials: { accessKeyId: 'anonymous', secretAccessKey: 'anonymous' },
    signer: { sign: async (request) => request },
  });
}
