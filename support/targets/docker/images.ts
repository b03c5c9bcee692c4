/**
 * The one place where the container images the harness runs are named and pinned.
 *
 *   k3s         rancher/k3s:<KUBERNETES_VERSION>-k3s1           the docker target's cluster (same Kubernetes as the embedded target)
 *   localstack  localstack/localstack:4.14.0                      docker: the last community release; newer images need an auth token
 *   moto        motoserver/moto:<MOTO_VERSION>                    docker: the same moto as the embedded target's launcher
 *   webhook     <ECR Public>/eks/amazon-eks-pod-identity-webhook:<POD_IDENTITY_WEBHOOK_VERSION>
 *                                                                 docker; live provision on a cluster without a webhook
 *   app         the setup's application.image                     docker and live: the sample app with the AWS CLI, the probe pod
 *   verify      the app image                                     live verify-only: its one pod
 *
 * Versions shared with the embedded target come from tools/versions.env, so both targets run the
 * same releases; versions only this file uses are pinned here. The sample app image belongs to
 * the setup description (fixtures/setups/default pins amazon/aws-cli:<tag>).
 *
 * The pod identity webhook is published in the Amazon ECR Public gallery (repository
 * eks/amazon-eks-pod-identity-webhook) since v0.6.8, and no longer on Docker Hub: its reference
 * names that registry (ECR_PUBLIC_REGISTRY). Every other default is on the default registry, and
 * names carry no registry host.
 *
 * Every image can be replaced, for users behind a registry mirror or with their own builds:
 * environment variable IRSA_IMAGE_<NAME> (IRSA_IMAGE_K3S, ..., IRSA_IMAGE_VERIFY), or
 * `images.<name>` in the IRSA_CONFIG file (`docker.images.<name>` is still read, below it); the
 * environment wins (support/config.ts maps the variables). On the docker target an `app` or
 * `webhook` override is pulled on the host and loaded into the cluster under the name the
 * manifests use, so the setup's Deployment stays as it is; on the live target the cluster pulls
 * the override itself.
 */
import { UsageError } from '../../errors.ts';
import type { LoadedSetup } from '../../setup/setup.ts';
import { readVersions, type Versions } from '../../versions.ts';

export const IMAGE_NAMES = ['k3s', 'localstack', 'moto', 'webhook', 'app', 'verify'] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];
/** The images the docker target runs (`verify` is the live target's only). */
export const DOCKER_IMAGE_NAMES = ['k3s', 'localstack', 'moto', 'webhook', 'app'] as const satisfies ImageName[];

/** Where the pod identity webhook's releases are published (the Amazon ECR Public gallery). */
export const ECR_PUBLIC_REGISTRY = 'public.ecr.aws';
/** The webhook's repository in that gallery (not `eks/pod-identity-webhook`, its Makefile's default name). */
export const WEBHOOK_REPOSITORY = 'eks/amazon-eks-pod-identity-webhook';

/** The last LocalStack image that runs without an auth token (the community repository was archived 2026-03). */
export const LOCALSTACK_COMMUNITY_TAG = '4.14.0';
/** K3s builds of a Kubernetes release are tagged <version>-k3s<N>; the first build of the pinned release. */
export const K3S_BUILD_SUFFIX = '-k3s1';

export interface ResolvedImage {
  /** The reference to pull or run. */
  ref: string;
  /** Where it came from, for the progress line and error messages. */
  source: 'default' | 'setup' | 'config' | 'environment' | 'app';
}

export type ResolvedImages = Record<ImageName, ResolvedImage>;

/** IRSA_IMAGE_<NAME>: the environment variable that overrides an image. */
export function imageEnvVar(name: ImageName): string {
  return `IRSA_IMAGE_${name.toUpperCase()}`;
}

function requireVersion(versions: Versions, key: string): string {
  const v = versions[key];
  if (!v) throw new UsageError(`tools/versions.env has no ${key}`, 'restore tools/versions.env from the repository');
  return v;
}

/** The pinned images, before overrides. */
export function defaultImages(setup: LoadedSetup, versions: Versions = readVersions()): Record<ImageName, string> {
  return {
    k3s: `rancher/k3s:${requireVersion(versions, 'KUBERNETES_VERSION')}${K3S_BUILD_SUFFIX}`,
    localstack: `localstack/localstack:${LOCALSTACK_COMMUNITY_TAG}`,
    moto: `motoserver/moto:${requireVersion(versions, 'MOTO_VERSION')}`,
    webhook: `${ECR_PUBLIC_REGISTRY}/${WEBHOOK_REPOSITORY}:${requireVersion(versions, 'POD_IDENTITY_WEBHOOK_VERSION')}`,
    app: setup.spec.application.image,
    // The verify-only pod runs the AWS CLI as the app does: the app image (after its override).
    verify: setup.spec.application.image,
  };
}

/**
 * A loose check of an image reference ([host[:port]/]path[:tag][@digest]): enough to turn a typo
 * into a message naming the setting, instead of a pull error minutes later.
 */
export function isImageReference(ref: string): boolean {
  return /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/.test(
    ref,
  );
}

/** The image settings of a configuration: `images`, over the older `docker.images`. */
export function configuredImages(config: {
  images: Record<string, string>;
  docker: { images: Record<string, string> };
}) {
  return { ...config.docker.images, ...config.images };
}

/**
 * The images to use: defaults < config file (images, docker.images) < environment (IRSA_IMAGE_<NAME>).
 * `configured` is configuredImages(config), which support/config.ts has already merged the
 * environment into; `env` only decides which source to name.
 */
export function resolveImages(
  setup: LoadedSetup,
  configured: Record<string, string>,
  env: NodeJS.ProcessEnv = process.env,
  versions: Versions = readVersions(),
): ResolvedImages {
  const known = new Set<string>(IMAGE_NAMES);
  for (const key of Object.keys(configured)) {
    if (!known.has(key)) {
      throw new UsageError(
        `invalid setting images.${key}: not an image the harness runs`,
        `the images are ${IMAGE_NAMES.join(', ')} (environment: ${IMAGE_NAMES.map(imageEnvVar).join(', ')})`,
      );
    }
  }
  const defaults = defaultImages(setup, versions);
  const out = {} as ResolvedImages;
  for (const name of IMAGE_NAMES) {
    const fromEnv = env[imageEnvVar(name)];
    const override = fromEnv || configured[name];
    if (override !== undefined && override !== '') {
      if (!isImageReference(override)) {
        const where = fromEnv ? `${imageEnvVar(name)} (images.${name})` : `images.${name}`;
        throw new UsageError(
          `invalid setting ${where}: ${JSON.stringify(override)} is not an image reference`,
          'use [registry/]repository[:tag][@sha256:digest], e.g. mirror.example:5000/rancher/k3s:v1.36.3-k3s1',
        );
      }
      out[name] = { ref: override, source: fromEnv ? 'environment' : 'config' };
    } else if (name === 'verify') {
      out[name] = { ref: out.app.ref, source: 'app' };
    } else {
      out[name] = { ref: defaults[name], source: name === 'app' ? 'setup' : 'default' };
    }
  }
  return out;
}

/** Where a resolved image came from, in words for the report. */
export function describeImageSource(name: ImageName, image: ResolvedImage): string {
  switch (image.source) {
    case 'environment':
      return `setting ${imageEnvVar(name)}`;
    case 'config':
      return `setting images.${name}`;
    case 'setup':
      return "the setup's application.image";
    case 'app':
      return 'the app image';
    default:
      return 'default (support/targets/docker/images.ts)';
  }
}

/**
 * The fully qualified name containerd (and so the kubelet) gives a reference:
 * amazon/aws-cli:2 -> docker.io/amazon/aws-cli:2, busybox -> docker.io/library/busybox:latest.
 * Docker's rule: the first path component is a registry host only if it has a dot or a port, or is localhost.
 */
export function normalizeImageRef(ref: string): string {
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at) : '';
  let name = at >= 0 ? ref.slice(0, at) : ref;
  const lastSlash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  let tag = '';
  if (colon > lastSlash) {
    tag = name.slice(colon);
    name = name.slice(0, colon);
  }
  const first = name.split('/')[0] ?? '';
  const hasHost = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!hasHost) name = `docker.io/${name.includes('/') ? name : `library/${name}`}`;
  if (!tag && !digest) tag = ':latest';
  return `${name}${tag}${digest}`;
}

/** The tag of a reference (v0.6.17 of ...:v0.6.17), or undefined. */
export function imageTag(ref: string): string | undefined {
  const name = ref.split('@')[0] ?? '';
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(colon + 1) : undefined;
}
