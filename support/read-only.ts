/**
 * Verify-only mode, made structural: the clients of a read-only target refuse to send anything
 * that would change the account or the cluster, whatever a step or a probe tries. An AWS command
 * is let through only when it is a read (Get*, List*, Head*, Describe*) or the web-identity
 * exchange under test; a Kubernetes request only when it is a read, a TokenRequest (tokens are
 * not stored), a self-review, or the create/delete of a pod in the one namespace the user named.
 * A refused request throws before it leaves the process.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type {
  HandlerExecutionContext,
  InitializeHandler,
  InitializeHandlerArguments,
  InitializeHandlerOutput,
} from '@smithy/types';

export class ReadOnlyViolation extends Error {
  override readonly name = 'ReadOnlyViolation';
}

/** Commands that change nothing: the exchange of a token for credentials is what verify-only checks. */
const ALLOWED_NON_READS = new Set(['AssumeRoleWithWebIdentity']);
const READ_PREFIX = /^(Get|List|Head|Describe)[A-Z]/;

export function isReadOnlyAwsCommand(commandName: string): boolean {
  const name = commandName.replace(/Command$/, '');
  return READ_PREFIX.test(name) || ALLOWED_NON_READS.has(name);
}

/** The part of an AWS SDK v3 client the guard needs (every client has it). */
interface MiddlewareClient {
  middlewareStack: {
    add(
      middleware: (
        next: InitializeHandler<object, object>,
        context: HandlerExecutionContext,
      ) => (args: InitializeHandlerArguments<object>) => Promise<InitializeHandlerOutput<object>>,
      options: { step: 'initialize'; name: string; priority: 'high' },
    ): void;
  };
}

/** Adds the guard to an AWS client (in place) and returns it. */
export function readOnlyAwsClient<T>(client: T): T {
  (client as unknown as MiddlewareClient).middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? 'an unnamed command';
      if (!isReadOnlyAwsCommand(command)) {
        throw new ReadOnlyViolation(
          `verify-only: refused to send ${(context.clientName ?? 'AWS').replace(/Client$/, '')} ${command.replace(/Command$/, '')}, which is not a read; verify-only mode never changes the account`,
        );
      }
      return next(args);
    },
    { step: 'initialize', name: 'irsaReadOnlyGuard', priority: 'high' },
  );
  return client;
}

export interface KubeWritePolicy {
  /** The namespace where one short-lived pod may be created and deleted. */
  podNamespace?: string;
}

const SEGMENT = '[^/]+';
const ALWAYS_ALLOWED_POSTS = [
  // A TokenRequest: the token is returned, not stored.
  new RegExp(`^/api/v1/namespaces/${SEGMENT}/serviceaccounts/${SEGMENT}/token$`),
  /^\/apis\/authorization\.k8s\.io\/v1\/(selfsubjectaccessreviews|selfsubjectrulesreviews)$/,
  /^\/apis\/authentication\.k8s\.io\/v1\/selfsubjectreviews$/,
];

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function isAllowedKubeRequest(method: string, pathname: string, policy: KubeWritePolicy): boolean {
  const m = method.toUpperCase();
  if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') return true;
  if (m === 'POST' && ALWAYS_ALLOWED_POSTS.some((re) => re.test(pathname))) return true;
  if (policy.podNamespace) {
    const pods = `/api/v1/namespaces/${escapeRegExp(policy.podNamespace)}/pods`;
    if (m === 'POST' && pathname === `/api/v1/namespaces/${policy.podNamespace}/pods`) return true;
    if (m === 'DELETE' && new RegExp(`^${pods}/${SEGMENT}$`).test(pathname)) return true;
  }
  return false;
}

/**
 * Guards every request made through this KubeConfig (typed API clients, KubernetesObjectApi and
 * watches all authenticate through applySecurityAuthentication). Exec streams are reads of a pod.
 */
export function guardKubeConfig(kc: KubeConfig, policy: KubeWritePolicy): KubeConfig {
  const apply = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    const method = String(context.getHttpMethod());
    const { pathname } = new URL(context.getUrl());
    if (!isAllowedKubeRequest(method, pathname, policy)) {
      throw new ReadOnlyViolation(
        `verify-only: refused to send ${method} ${pathname}; verify-only mode changes nothing in the cluster${policy.podNamespace ? ` except one pod in ${policy.podNamespace}` : ''}`,
      );
    }
    return apply(context);
  };
  return kc;
}
