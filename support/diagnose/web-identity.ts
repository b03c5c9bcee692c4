/**
 * Why STS refuses (or would refuse) a pod's web identity, from what the harness can read: the role
 * the pod asks for (does it exist, in which account), the pod's token checked against the published
 * documents and the identity provider (diagnose/token.ts), and the role's trust policy simulated for
 * the token's claims (policy/simulate.ts). Each link is checked in the order STS depends on it and
 * the first broken one is named. When every link holds and the target still refused, that is said
 * explicitly: the target and the diagnosis disagree, and one of them is wrong.
 */
import { GetRoleCommand } from '@aws-sdk/client-iam';
import { accountIdFromArn, roleNameFromArn } from '../aws/arn.ts';
import { awsErrorName, describeAwsError } from '../aws/errors.ts';
import type { Clients } from '../clients.ts';
import { issuerHostPath } from '../oidc/discovery.ts';
import { decodeTokenClaims } from '../oidc/token.ts';
import { parseIamDocument } from '../policy/document.ts';
import { simulateTrust } from '../policy/simulate.ts';
import { readIdentityProvider } from '../provision/infrastructure.ts';
import { diagnoseToken } from './token.ts';

export interface WebIdentityDiagnosisInput {
  clients: Clients;
  /** The role the pod asks for (its AWS_ROLE_ARN). */
  roleArn: string;
  /** Whose pod it is, and the role that team should use, for the message. */
  team: string;
  teamRoleArn?: string;
  /** The pod's token, when it could be read. */
  token?: string;
  identityProviderArn: string;
}

export interface WebIdentityDiagnosis {
  /** True when every link holds: STS should accept. */
  admits: boolean;
  /** The first broken link, or why every link holds. */
  explanation: string;
}

/** The role an ARN names, read from IAM; or what is wrong with the ARN (not a role, missing). */
export async function readRoleOf(
  c: Clients,
  roleArn: string,
): Promise<{ roleName: string; trustDocument: string } | { problem: string }> {
  let roleName: string;
  let account: string;
  try {
    roleName = roleNameFromArn(roleArn);
    account = accountIdFromArn(roleArn);
  } catch {
    return { problem: `${JSON.stringify(roleArn)} is not a role ARN` };
  }
  try {
    const role = (await c.iam.send(new GetRoleCommand({ RoleName: roleName }))).Role;
    return { roleName, trustDocument: role?.AssumeRolePolicyDocument ?? '{}' };
  } catch (e) {
    if (awsErrorName(e) === 'NoSuchEntity') return { problem: `role ${roleName} does not exist in account ${account}` };
    return { problem: `role ${roleName} could not be read: ${describeAwsError(e)}` };
  }
}

export async function diagnoseWebIdentity(input: WebIdentityDiagnosisInput): Promise<WebIdentityDiagnosis> {
  const c = input.clients;
  const refuse = (explanation: string): WebIdentityDiagnosis => ({ admits: false, explanation });
  const teamRole = input.teamRoleArn ? `; team ${input.team}'s role is ${input.teamRoleArn}` : '';
  const providerAccount = accountIdFromArn(input.identityProviderArn);
  const role = await readRoleOf(c, input.roleArn);
  if ('problem' in role) return refuse(`${role.problem}${teamRole}`);
  const account = accountIdFromArn(input.roleArn);
  if (account !== providerAccount)
    return refuse(
      `role ${input.roleArn} is in account ${account}, the cluster's identity provider in account ${providerAccount}${teamRole}`,
    );
  const { roleName, trustDocument } = role;
  if (!input.token) return refuse(`role ${roleName} exists, but the pod's token could not be read to check it`);
  const idp = await readIdentityProvider(c, input.identityProviderArn);
  const tokenDiagnosis = await diagnoseToken({
    token: input.token,
    fetchJson: c.anonymousGetJson,
    identityProvider: { url: idp.url, clientIds: idp.clientIds },
  });
  if (!tokenDiagnosis.ok) return refuse(`the pod's token: ${tokenDiagnosis.firstFailure}`);
  const claims = decodeTokenClaims(input.token);
  const trust = await simulateTrust({
    trustPolicy: parseIamDocument(trustDocument),
    identityProviderArn: input.identityProviderArn,
    claims: { sub: claims.sub ?? '', aud: claims.aud.find((a) => idp.clientIds.includes(a)) ?? claims.aud[0] ?? '' },
    issuerHostPath: issuerHostPath(claims.iss ?? ''),
    roleArn: input.roleArn,
  });
  if (trust.decision !== 'Allowed')
    return refuse(`the trust policy of ${roleName} refuses the pod's token: ${trust.explanation}`);
  return {
    admits: true,
    explanation: `role ${roleName} exists, the pod's token verifies against the published documents and the identity provider, and ${trust.explanation}`,
  };
}
