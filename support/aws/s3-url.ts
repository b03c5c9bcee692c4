/**
 * S3 URLs and the buckets behind them: which bucket an issuer URL serves from. A read of a URL's
 * shape, used by provisioning (discovery), verify-only and the live target alike.
 */
import type { AwsAccess } from '../targets/target.ts';
import { dnsSuffixOf } from './regions.ts';

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * The S3 bucket an issuer URL serves from, when the issuer is the root of a bucket the admin
 * clients can reach: `<endpoint>/<bucket>` with an endpoint override (path style), else
 * `https://<bucket>.s3.<region>.amazonaws.com`, `https://<bucket>.s3.amazonaws.com` or
 * `https://s3.<region>.amazonaws.com/<bucket>` in the target's region (amazonaws.com.cn in China).
 * Undefined otherwise
 * (CloudFront, another region, a key prefix, the API server itself).
 */
export function bucketForIssuer(aws: Pick<AwsAccess, 'endpoint' | 'region'>, issuer: string): string | undefined {
  const trimmed = issuer.replace(/\/+$/, '');
  if (aws.endpoint) {
    const base = aws.endpoint.replace(/\/+$/, '');
    if (!trimmed.startsWith(`${base}/`)) return undefined;
    const rest = trimmed.slice(base.length + 1);
    return BUCKET_NAME.test(rest) ? rest : undefined;
  }
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' || url.search || url.hash) return undefined;
  const host = url.hostname;
  const pathPart = url.pathname.replace(/^\/+|\/+$/g, '');
  const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const region = escapeRe(aws.region);
  // The partition's domain: amazonaws.com, or amazonaws.com.cn in China.
  const suffix = escapeRe(dnsSuffixOf(aws.region));
  const virtualHosted = new RegExp(`^(.+)\\.s3(?:[.-]${region})?\\.${suffix}$`).exec(host);
  if (virtualHosted && pathPart === '') {
    const bucket = virtualHosted[1] as string;
    return BUCKET_NAME.test(bucket) ? bucket : undefined;
  }
  if (new RegExp(`^s3[.-]${region}\\.${suffix}$`).test(host) && BUCKET_NAME.test(pathPart)) return pathPart;
  return undefined;
}
