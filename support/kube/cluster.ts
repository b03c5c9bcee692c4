/**
 * Reads of the cluster that every layer needs (the coordinator, provisioning, the live target):
 * nothing here changes the cluster beyond a short-lived TokenRequest (tokens are not stored).
 */
import type { Clients } from '../clients.ts';
import { decodeTokenClaims } from '../oidc/token.ts';
import { retry } from '../retry.ts';
import { isNotFound } from './errors.ts';

/**
 * The issuer the cluster puts into service-account tokens, observed (not configured): the `iss`
 * of a short TokenRequest for the default ServiceAccount of the default namespace.
 */
export async function observeClusterIssuer(c: Clients, timeoutSeconds: number): Promise<string> {
  const { value } = await retry(
    () =>
      c.core.createNamespacedServiceAccountToken({
        name: 'default',
        namespace: 'default',
        body: { spec: { audiences: ['irsa-conformance-issuer-probe'], expirationSeconds: 600 } },
      }),
    {
      operation: 'reading the cluster issuer (TokenRequest for default/default)',
      waitingFor: 'the default ServiceAccount to exist',
      timeoutSeconds,
      retryable: isNotFound,
    },
  );
  const token = value.status?.token;
  if (!token) throw new Error('TokenRequest returned no token');
  const iss = decodeTokenClaims(token).iss;
  if (!iss) throw new Error('the cluster issued a token without iss');
  return iss;
}
