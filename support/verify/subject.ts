/**
 * What verify-only checks: the ServiceAccount, role and buckets the user names in the live
 * settings (the live target has checked at start that none is missing). The operations on them
 * are reads or the token exchange (support/kube/tokens.ts, support/aws/iam.ts, support/aws/sts.ts,
 * ./bucket.ts) and one short-lived pod (./pod.ts), through clients that refuse anything else when
 * the target is read-only.
 */
import { roleNameFromArn } from '../aws/arn.ts';
import type { HarnessConfig } from '../config.ts';

export interface VerifySubject {
  namespace: string;
  serviceAccount: string;
  roleArn: string;
  roleName: string;
  allowedBucket: string;
  deniedBucket: string;
  noPod: boolean;
}

export function verifySubject(config: HarnessConfig): VerifySubject {
  const l = config.live;
  const missing = (['namespace', 'serviceAccount', 'roleArn', 'allowedBucket', 'deniedBucket'] as const).filter(
    (k) => !l[k],
  );
  if (missing.length > 0)
    throw new Error(`the verify-only settings lack ${missing.join(', ')} (the live target checks them at start)`);
  return {
    namespace: l.namespace as string,
    serviceAccount: l.serviceAccount as string,
    roleArn: l.roleArn as string,
    roleName: roleNameFromArn(l.roleArn as string),
    allowedBucket: l.allowedBucket as string,
    deniedBucket: l.deniedBucket as string,
    noPod: l.noPod,
  };
}
