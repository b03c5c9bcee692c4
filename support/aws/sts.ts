/**
 * The web-identity exchange at STS, as the AWS SDK in a pod does it: a token for credentials of a
 * role. The secret parts of the answer are registered for redaction as soon as they exist.
 */
import { AssumeRoleWithWebIdentityCommand } from '@aws-sdk/client-sts';
import type { Clients } from '../clients.ts';
import { registerSecret } from '../redact.ts';

export interface RoleSession {
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  assumedRoleArn: string;
}

/**
 * AssumeRoleWithWebIdentity, as the AWS SDK in a pod does it; the secret parts are registered for
 * redaction. An unsigned call: the clients' STS client (read-only guarded where the target is) serves.
 */
export async function exchangeToken(
  c: Clients,
  token: string,
  roleArn: string,
  sessionName = 'irsa-conformance-verify',
): Promise<RoleSession> {
  const out = await c.sts.send(
    new AssumeRoleWithWebIdentityCommand({
      RoleArn: roleArn,
      RoleSessionName: sessionName,
      WebIdentityToken: token,
      DurationSeconds: 900,
    }),
  );
  const cr = out.Credentials;
  if (!cr?.AccessKeyId || !cr.SecretAccessKey || !cr.SessionToken)
    throw new Error('AssumeRoleWithWebIdentity returned no credentials');
  registerSecret(cr.SecretAccessKey);
  registerSecret(cr.SessionToken);
  return {
    credentials: { accessKeyId: cr.AccessKeyId, secretAccessKey: cr.SecretAccessKey, sessionToken: cr.SessionToken },
    assumedRoleArn: out.AssumedRoleUser?.Arn ?? '',
  };
}
