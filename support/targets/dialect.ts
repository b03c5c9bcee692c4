/**
 * The pod identity webhook's dialect as upstream's flags define it: its built-in defaults, and
 * what a webhook started with given flags looks for and injects. Shared by every target.
 */
import type { WebhookDialect } from './target.ts';

/** amazon-eks-pod-identity-webhook's defaults (main.go flags and pkg.DefaultTokenExpiration). */
export const UPSTREAM_DEFAULT_DIALECT: WebhookDialect = {
  annotationPrefix: 'eks.amazonaws.com',
  audience: 'sts.amazonaws.com',
  mountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount',
  tokenFileName: 'token',
  defaultExpirationSeconds: 86400,
};

/**
 * Flags the harness adds wherever it runs the webhook itself (embedded, docker, live without a
 * webhook): at verbosity 3 it logs each pod it mutates, which a failed scenario's diagnostics show.
 */
export const WEBHOOK_LOG_FLAGS: Readonly<Record<string, string>> = { v: '3' };

/** What a webhook started with these flags looks for and injects (its built-in defaults otherwise). */
export function dialectFromFlags(flags: Record<string, string>): WebhookDialect {
  const d = UPSTREAM_DEFAULT_DIALECT;
  return {
    annotationPrefix: flags['annotation-prefix'] ?? d.annotationPrefix,
    audience: flags['token-audience'] ?? d.audience,
    mountPath: (flags['token-mount-path'] ?? d.mountPath).replace(/\/+$/, ''),
    tokenFileName: d.tokenFileName,
    defaultExpirationSeconds: Number(flags['token-expiration'] ?? d.defaultExpirationSeconds),
  };
}
