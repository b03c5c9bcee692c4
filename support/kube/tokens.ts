/**
 * Service-account tokens through the TokenRequest API: short-lived, nothing stored in the cluster,
 * registered for redaction before anyone can print them.
 */
import type { Clients } from '../clients.ts';
import { registerSecret } from '../redact.ts';

/** A short-lived token for the ServiceAccount with the audience the webhook requests; registered as a secret. */
export async function requestServiceAccountToken(
  c: Clients,
  subject: { namespace: string; serviceAccount: string },
  audience: string,
): Promise<string> {
  const tr = await c.core.createNamespacedServiceAccountToken({
    namespace: subject.namespace,
    name: subject.serviceAccount,
    body: { spec: { audiences: [audience], expirationSeconds: 600 } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest for ${subject.namespace}/${subject.serviceAccount} returned no token`);
  registerSecret(token);
  return token;
}
