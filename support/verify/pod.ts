/**
 * The one pod verify-only may create, and its image: the setup's app image (images.verify, or
 * IRSA_IMAGE_VERIFY, replaces it).
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { HarnessConfig } from '../config.ts';
import { kubeLabels } from '../names.ts';
import type { LoadedSetup } from '../setup/setup.ts';
import { configuredImages, resolveImages } from '../targets/docker/images.ts';
import type { VerifySubject } from './subject.ts';

/** The image of the verify pod, as the configuration and the setup name it. */
export function verifyPodImage(setup: LoadedSetup, config: HarnessConfig): string {
  return resolveImages(setup, configuredImages(config), {}).verify.ref;
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
