/**
 * The contract between the harness and a target (embedded, docker, live).
 *
 * A target is started (or attached to) once per run by the coordinator, before cucumber's workers
 * exist. What the workers need is plain data, the TargetDescriptor, handed over through the run's
 * state file. Steps never branch on the target's name: every difference is a field here.
 */

/**
 * The targets the settings may name: the one list of them. Each is a folder, support/targets/<name>/,
 * whose module.ts exports its TargetModule as default (support/targets/registry.ts loads it).
 */
export const TARGET_NAMES = ['embedded', 'docker', 'live'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** Admin-side AWS access used for provisioning and diagnostics (never what pods use). */
export interface AwsAccess {
  region: string;
  /** Endpoint override for an emulator; undefined for real AWS. */
  endpoint?: string;
  /** Emulators want path-style S3 addressing. */
  forcePathStyle: boolean;
  /** Static admin credentials for emulators; undefined means the AWS default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** PEM file of a CA to trust for the endpoint (an emulator's own CA); undefined: system roots. */
  caBundlePath?: string;
  /** Account id of the admin identity, as the target measured it (GetCallerIdentity). */
  accountId: string;
  /**
   * IAM is eventually consistent here (real AWS): a role or identity provider created seconds ago
   * may still be refused, so a refusal right after provisioning is retried for a while. Emulators
   * answer with what they hold, and there a refusal is final.
   */
  eventuallyConsistent?: boolean;
}

/** The webhook's dialect: what it looks for and what it injects. Detected or configured. */
export interface WebhookDialect {
  annotationPrefix: string; // eks.amazonaws.com
  audience: string; // sts.amazonaws.com
  mountPath: string; // /var/run/secrets/eks.amazonaws.com/serviceaccount
  tokenFileName: string; // token
  defaultExpirationSeconds: number; // 86400
}

/** How the MutatingWebhookConfiguration comes to exist on this target. */
export type WebhookRegistration =
  /** The harness registers it from the setup's template, pointing at this endpoint. */
  | { mode: 'harness'; url: string; caBundle: string }
  /** The harness registers it for an in-cluster Service (docker target, live provision on plain clusters). */
  | {
      mode: 'harness-service';
      namespace: string;
      serviceName: string;
      path: string;
      caBundle: string;
      /**
       * Set when the webhook is deployed at provisioning, not at start (live provision on a cluster
       * without one): registerWebhook deploys it (support/webhook-deploy.ts) with a fresh CA, records
       * it in the ledger and uses that CA; `caBundle` is then ''.
       */
      deploy?: { image: string; flags: Record<string, string> };
    }
  /** The cluster brings its own (OpenShift 4.6+, EKS): the harness only reads and checks it. */
  | { mode: 'existing'; configurationName: string };

/** How the cluster's service-account issuer is decided. */
export type IssuerControl =
  /** Fixed when the target started (embedded, docker): the discovery bucket name comes with it. */
  | { mode: 'fixed'; issuer: string; discoveryBucket: string }
  /** The harness may set it (OpenShift: authentication.config.openshift.io/cluster). */
  | { mode: 'patchable' }
  /** Read only (plain Kubernetes, verify-only): the harness reports the flag to set. */
  | { mode: 'read-only'; issuer: string }
  /**
   * The platform's own (EKS, AKS, GKE, ROSA and OpenShift in STS mode): the issuer serves its own
   * discovery documents and the user cannot change it. Provisioning uses it as it is, with the
   * account's identity provider for it (created, and deleted at the end, only when there is none).
   */
  | { mode: 'managed'; issuer: string };

export const CAPABILITIES = [
  'runs-pods',
  'exec-into-pods',
  'enforces-iam',
  'validates-tokens',
  'evaluates-trust-policies',
  'anonymous-public-reads',
  'https-issuer',
  'writes-allowed',
  /** Pods run in real containers on a kubelet that projects their volumes (not an emulated node). */
  'real-node',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

export interface CapabilityResult {
  available: boolean;
  /** How it was measured, or why it is missing: printed in the matrix and in skip reasons. */
  reason: string;
}
export type CapabilityMatrix = Record<Capability, CapabilityResult>;

/** Everything a worker needs to talk to the target. JSON-serialisable. */
export interface TargetDescriptor {
  name: TargetName;
  /** Id of the environment instance (a warm embedded environment outlives runs). */
  envId: string;
  kubeconfigPath: string;
  kubeContext?: string;
  aws: AwsAccess;
  /** Extra env the harness adds to workloads so that pods reach the AWS endpoint (emulators). */
  podAwsEnv: Record<string, string>;
  issuer: IssuerControl;
  webhook: WebhookRegistration;
  /** The pod identity webhook's release (e.g. v0.6.17) where known: decides which admission versions it answers. */
  webhookVersion?: string;
  /** The OpenShift version when the cluster is OpenShift (the live target detects it): its SCCs assign pod users. */
  openshift?: string;
  dialect: WebhookDialect;
  /**
   * Where files that a pod sees at an absolute path live for processes exec'd into it, with
   * {namespace} and {pod} placeholders. '' on real runtimes. The embedded runtime runs exec'd
   * commands as local processes, so a projected token at /var/run/secrets/... is materialised at
   * <podRoot>/var/run/secrets/... and the pod's env points there.
   */
  podRoot: string;
  /**
   * What every pod the harness creates needs from the target, applied at provisioning (never
   * something a scenario checks): `image` replaces the setup's application.image (the embedded
   * target's real node runs only the images it has; on the live target, the IRSA_IMAGE_APP
   * setting), and `hostNetwork` where the node reaches the AWS emulator on 127.0.0.1 only (the real
   * node). Undefined where the setup's image is used as it is.
   */
  podTemplate?: { image?: string; hostNetwork?: boolean };
  /** Component name -> log file, for diagnostics on failure. */
  logs: Record<string, string>;
  /** Filled in by the coordinator after probing. */
  capabilities?: CapabilityMatrix;
  /** When they were measured (a warm environment keeps them for the runs after its first). */
  capabilitiesMeasuredAt?: string;
  /**
   * The harness must not change the target (live verify-only): the clients refuse every AWS command
   * that is not a read and every Kubernetes write except TokenRequests and one pod's create/delete in
   * `podNamespace` (support/read-only.ts).
   */
  readOnly?: { podNamespace?: string };
  /** What the target found out about the cluster, and where each value came from (printed, reported). */
  detected?: DetectedValue[];
}

export interface DetectedValue {
  name: string;
  value: string;
  /** "detected from …", "setting IRSA_…", "default". */
  source: string;
}

/** A started target, owned by the coordinator process. */
export interface StartedTarget {
  descriptor: TargetDescriptor;
  /** Stops what this process started (never what it attached to), leaving no process or port. */
  stop(): Promise<void>;
}
