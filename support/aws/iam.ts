/**
 * Reads of IAM the checks share: a role's trust policy as IAM stores it. Reads only, so they pass
 * the clients of a read-only target.
 */
import { GetRoleCommand } from '@aws-sdk/client-iam';
import type { Clients } from '../clients.ts';
import { parseIamDocument } from '../policy/document.ts';

/** The role's trust policy as IAM stores it (real IAM's GetRole returns it URL-encoded). */
export async function readTrustPolicy(c: Clients, roleName: string): Promise<Record<string, unknown>> {
  const out = await c.iam.send(new GetRoleCommand({ RoleName: roleName }));
  const doc = out.Role?.AssumeRolePolicyDocument;
  if (!doc) throw new Error(`GetRole ${roleName} returned no trust policy`);
  return parseIamDocument(doc) as Record<string, unknown>;
}
