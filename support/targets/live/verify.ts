/**
 * The operations of the verify-only checks on the ServiceAccount, role and buckets the user names:
 * a token for the ServiceAccount (TokenRequest: nothing stored), the role's trust policy (GetRole),
 * the web-identity exchange at STS, reads of the two buckets with the role's credentials, and the
 * one short-lived pod. Every AWS call here is a read or the token exchange, through clients that
 * refuse anything else when the target is read-only. Tokens and credentials are registered for
 * redaction as soon as they exist and never returned in a printable form.
 */
import { GetRoleCommand } from '@aws-sdk/client-iam';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { AssumeRoleWithWebIdentityCommand } from '@aws-sdk/client-sts';
import type { V1Pod } from '@kubernetes/client-node';
import { roleNameFromArn } from '../../aws/arn.ts';
import { awsErrorName, describeAwsError } from '../../aws/errors.ts';
import type { Clients } from '../../clients.ts';
import type { HarnessConfig } from '../../config.ts';
import { kubeLabels } from '../../names.ts';
import { parseIamDocument } from '../../policy/document.ts';
import { readOnlyAwsClient } from '../../read-only.ts';
import { registerSecret } from '../../redact.ts';
import type { TargetDescriptor } from '../target.ts';

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

/** A short-lived token for the ServiceAccount with the audience the webhook requests; registered as a secret. */
export async function requestServiceAccountToken(
  c: Clients,
  subject: Pick<VerifySubject, 'namespace' | 'serviceAccount'>,
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

/** The role's trust policy as IAM stores it (real IAM's GetRole returns it URL-encoded). */
export async function readTrustPolicy(c: Clients, roleName: string): Promise<Record<string, unknown>> {
  const out = await c.iam.send(new GetRoleCommand({ RoleName: roleName }));
  const doc = out.Role?.AssumeRolePolicyDocument;
  if (!doc) throw new Error(`GetRole ${roleName} returned no trust policy`);
  return parseIamDocument(doc) as Record<string, unknown>;
}

export interface RoleSession {
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  assumedRoleArn: string;
}

function guarded<T>(target: TargetDescriptor, client: T): T {
  return target.readOnly ? readOnlyAwsClient(client) : client;
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

export type ListOutcome = { ok: true; keys: number } | { ok: false; code: string; detail: string };

/** ListObjectsV2 (one key) with the role's credentials: a read, whatever the role may do. */
export async function listBucketAs(
  c: Clients,
  target: TargetDescriptor,
  session: RoleSession,
  bucket: string,
): Promise<ListOutcome> {
  const s3 = guarded(
    target,
    new S3Client({ ...c.awsClientOptions(session.credentials), forcePathStyle: target.aws.forcePathStyle }),
  );
  try {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
    return { ok: true, keys: out.KeyCount ?? 0 };
  } catch (e) {
    return { ok: false, code: awsErrorName(e) ?? 'error', detail: describeAwsError(e) };
  }
}

/** The user the verify pod runs as where the platform assigns none: nobody. */
export const VERIFY_POD_USER = 65534;
/** Its HOME, an emptyDir: writable whatever the user. */
export const VERIFY_POD_HOME = '/home/irsa-verify';

/**
 * The one pod verify-only may create: the ServiceAccount's pod, idle until exec'd into, gone by
 * itself after 10 minutes (activeDeadlineSeconds) should the harness die before deleting it.
 *
 * It is admitted where tenant namespaces are locked down: it meets the Pod Security "restricted"
 * profile (non-root, seccomp RuntimeDefault, no privilege escalation, every capability dropped,
 * only an emptyDir and the webhook's projected volume), has small requests and limits (a quota
 * that requires them admits it), and a writable HOME on an emptyDir whatever the user (the AWS CLI
 * caches credentials there; nobody has no home in most images). `runAsUser` is nobody (65534, with fsGroup so
 * the projected token is readable); on OpenShift it is left out, because the restricted SCC
 * assigns a user of the namespace's range and refuses any other.
 */
export function verifyPodManifest(opts: {
  name: string;
  subject: Pick<VerifySubject, 'namespace' | 'serviceAccount'>;
  image: string;
  runId: string;
  env: Record<string, string>;
  /** undefined: the platform assigns the user (OpenShift's SCC). */
  runAsUser?: number;
}): V1Pod {
  const user = opts.runAsUser;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: opts.name,
      namespace: opts.subject.namespace,
      labels: { ...kubeLabels(opts.runId), app: opts.name },
    },
    spec: {
      serviceAccountName: opts.subject.serviceAccount,
      restartPolicy: 'Never',
      activeDeadlineSeconds: 600,
      terminationGracePeriodSeconds: 5,
      automountServiceAccountToken: false,
      securityContext: {
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
        ...(user === undefined ? {} : { runAsUser: user, runAsGroup: user, fsGroup: user }),
      },
      containers: [
        {
          name: 'verify',
          image: opts.image,
          command: ['sleep'],
          args: ['600'],
          env: [
            { name: 'HOME', value: VERIFY_POD_HOME },
            ...Object.entries(opts.env).map(([name, value]) => ({ name, value })),
          ],
          securityContext: {
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
            runAsNonRoot: true,
          },
          resources: {
            requests: { cpu: '10m', memory: '64Mi' },
            limits: { cpu: '500m', memory: '256Mi' },
          },
          volumeMounts: [{ name: 'home', mountPath: VERIFY_POD_HOME }],
        },
      ],
      volumes: [{ name: 'home', emptyDir: { sizeLimit: '64Mi' } }],
    },
  };
}
