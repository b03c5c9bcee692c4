/**
 * ARN parsing and the few ARNs IRSA needs (IdP, role, assumed-role session, S3 bucket and object).
 *
 * Pure string work: no SDK, no network. The IdP ARN is derived from the issuer the way IAM does
 * it (scheme stripped, nothing else), so a trailing-slash mismatch stays visible in the ARN.
 */
import { UsageError } from '../errors.ts';
import { issuerHostPath } from '../oidc/discovery.ts';

export interface Arn {
  partition: string;
  service: string;
  region: string;
  accountId: string;
  /** Everything after the fifth colon, e.g. `role/path/name` or `bucket/key`. */
  resource: string;
  /** The part of `resource` before the first `/` (or `:`), e.g. `role`, `assumed-role`, `oidc-provider`. */
  resourceType: string;
  /** The part of `resource` after `resourceType` and its separator; empty when there is none. */
  resourceId: string;
}

const ARN_SHAPE = /^arn:([a-z0-9-]+):([a-z0-9-]+):([a-z0-9-]*):(\d{12}|aws|)?:(.+)$/;

/** Parses an ARN; throws UsageError naming the ARN when it is not one. */
export function parseArn(arn: string): Arn {
  const m = ARN_SHAPE.exec(arn);
  if (!m) {
    throw new UsageError(
      `not an ARN: ${JSON.stringify(arn)}`,
      'expected arn:<partition>:<service>:<region>:<account>:<resource>, e.g. arn:aws:iam::123456789012:role/app',
    );
  }
  const [, partition = '', service = '', region = '', accountId = '', resource = ''] = m;
  const sep = resource.search(/[/:]/);
  const resourceType = sep === -1 ? resource : resource.slice(0, sep);
  const resourceId = sep === -1 ? '' : resource.slice(sep + 1);
  return { partition, service, region, accountId, resource, resourceType, resourceId };
}

/** The account id of an ARN (empty for S3 bucket and object ARNs, which carry none). */
export function accountIdFromArn(arn: string): string {
  return parseArn(arn).accountId;
}

/**
 * The role name of a role ARN (`arn:aws:iam::<acct>:role/<path/>name`) or of an assumed-role session
 * ARN (`arn:aws:sts::<acct>:assumed-role/<name>/<session>`). Role paths are dropped: IAM names are
 * unique per account regardless of path.
 */
export function roleNameFromArn(arn: string): string {
  const parsed = parseArn(arn);
  if (parsed.service === 'iam' && parsed.resourceType === 'role' && parsed.resourceId !== '') {
    const segments = parsed.resourceId.split('/');
    return segments[segments.length - 1] ?? '';
  }
  if (parsed.service === 'sts' && parsed.resourceType === 'assumed-role') {
    const [role = ''] = parsed.resourceId.split('/');
    if (role !== '') return role;
  }
  throw new UsageError(
    `not a role ARN: ${arn}`,
    'expected arn:aws:iam::<account>:role/<name> or arn:aws:sts::<account>:assumed-role/<name>/<session>',
  );
}

/** `arn:<partition>:iam::<acct>:oidc-provider/<issuer without scheme>`: the ARN IAM gives the issuer's IdP. */
export function identityProviderArn(accountId: string, issuer: string, partition = 'aws'): string {
  return `arn:${partition}:iam::${accountId}:oidc-provider/${issuerHostPath(issuer)}`;
}

/** `arn:<partition>:iam::<acct>:role/<path>name`; path defaults to `/`. */
export function roleArn(accountId: string, roleName: string, path = '/', partition = 'aws'): string {
  const normalizedPath = path.endsWith('/') ? path : `${path}/`;
  return `arn:${partition}:iam::${accountId}:role${normalizedPath}${roleName}`;
}

/** `arn:<partition>:s3:::<bucket>` */
export function s3BucketArn(bucket: string, partition = 'aws'): string {
  return `arn:${partition}:s3:::${bucket}`;
}

/** `arn:<partition>:s3:::<bucket>/<key>` */
export function s3ObjectArn(bucket: string, key: string, partition = 'aws'): string {
  return `arn:${partition}:s3:::${bucket}/${key}`;
}

/**
 * True when `arn` is a session of role `roleName`: `arn:<partition>:sts::<acct>:assumed-role/<role>/<session>`
 * with a non-empty session name. This is what GetCallerIdentity returns after AssumeRoleWithWebIdentity.
 */
export function isAssumedRoleArn(arn: string, roleName: string): boolean {
  const m = /^arn:[a-z0-9-]+:sts::(\d{12}):assumed-role\/([^/]+)\/(.+)$/.exec(arn);
  return m !== null && m[2] === roleName;
}
