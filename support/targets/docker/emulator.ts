/**
 * The docker target's AWS emulator container: LocalStack or moto (setting docker.aws), on the
 * target's Docker network under one alias, serving
 *
 *   https on the issuer port P  the harness's admin endpoint and the service-account issuer URL,
 *                               with a certificate from the environment's CA (kube-apiserver serves
 *                               OIDC discovery only for an https issuer). P is the same number inside
 *                               the container and on the host, so https://127.0.0.1:P/<bucket> names
 *                               this server for the harness (published port) and for the emulator
 *                               itself (its own loopback), e.g. an STS that fetches the issuer's keys.
 *   http on the pod port        the pods, by the network alias (they cannot be given the CA).
 *
 * LocalStack serves http and https on every port it listens on (GATEWAY_LISTEN) with the
 * certificate named by CUSTOM_SSL_CERT_PATH (one PEM, key and certificate). moto runs the
 * embedded target's launcher logic (tools/moto, IAM enforced per request) through
 * assets/moto_in_container.py, one process with both listeners.
 *
 * LocalStack community does not enforce IAM; LOCALSTACK_AUTH_TOKEN and ENFORCE_IAM are passed
 * through when set (with a Pro image via IRSA_IMAGE_LOCALSTACK), and the capability probe
 * measures what the emulator really does.
 */
import { join } from 'node:path';
import { type GenericContainer, Wait } from 'testcontainers';
import { repoRoot } from '../../paths.ts';
import { LoopbackGenericContainer, LoopbackLocalstackContainer } from './containers.ts';

export type EmulatorKind = 'localstack' | 'moto';

export const LOCALSTACK_POD_PORT = 4566;
export const MOTO_POD_PORT = 5000;
/** The moto container writes the administrator's credentials here (read by copying it out). */
export const MOTO_CREDENTIALS_PATH = '/tmp/irsa-moto-admin.json';
const TLS_DIR = '/etc/irsa/tls';
const MOTO_DIR = '/opt/irsa-moto';
/** Environment variables handed to LocalStack when the harness's environment has them. */
export const LOCALSTACK_PASSTHROUGH = ['LOCALSTACK_AUTH_TOKEN', 'ENFORCE_IAM'] as const;

export interface EmulatorSpec {
  kind: EmulatorKind;
  image: string;
  alias: string;
  region: string;
  issuerPort: number;
  podPort: number;
  environment: Record<string, string>;
  /** The container command (moto); LocalStack keeps its image's. */
  entrypoint?: string[];
  command?: string[];
  /** Files from this repository copied in (moto). */
  files: { source: string; target: string }[];
  /** Where the serving certificate and key go (LocalStack: one combined PEM). */
  tls: { certPath: string; keyPath: string; combined: boolean };
  /** What the log says once the emulator serves. */
  readyLog: RegExp;
}

export function podPortFor(kind: EmulatorKind): number {
  return kind === 'localstack' ? LOCALSTACK_POD_PORT : MOTO_POD_PORT;
}

/** The container's configuration: pure, so that it can be tested without an engine. */
export function emulatorSpec(o: {
  kind: EmulatorKind;
  image: string;
  alias: string;
  region: string;
  issuerPort: number;
  env?: NodeJS.ProcessEnv;
}): EmulatorSpec {
  const env = o.env ?? process.env;
  const base = { kind: o.kind, image: o.image, alias: o.alias, region: o.region, issuerPort: o.issuerPort };
  if (o.kind === 'localstack') {
    const pem = `${TLS_DIR}/server.pem`;
    const passthrough: Record<string, string> = {};
    for (const name of LOCALSTACK_PASSTHROUGH) {
      const value = env[name];
      if (value) passthrough[name] = value;
    }
    return {
      ...base,
      podPort: LOCALSTACK_POD_PORT,
      environment: {
        GATEWAY_LISTEN: `0.0.0.0:${LOCALSTACK_POD_PORT},0.0.0.0:${o.issuerPort}`,
        SERVICES: 's3,iam,sts',
        CUSTOM_SSL_CERT_PATH: pem,
        // Offline-safe, and LocalStack would otherwise replace the certificate with its downloaded one.
        SKIP_SSL_CERT_DOWNLOAD: '1',
        // Pods resolve the alias through the cluster's DNS; LocalStack's own DNS server is not needed.
        DNS_ADDRESS: '0',
        AWS_DEFAULT_REGION: o.region,
        ...passthrough,
      },
      files: [],
      tls: { certPath: pem, keyPath: pem, combined: true },
      readyLog: /Ready\./,
    };
  }
  return {
    ...base,
    podPort: MOTO_POD_PORT,
    environment: { PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', AWS_DEFAULT_REGION: o.region },
    entrypoint: ['python3'],
    command: [
      `${MOTO_DIR}/moto_in_container.py`,
      '--host',
      '0.0.0.0',
      '--https-port',
      String(o.issuerPort),
      '--http-port',
      String(MOTO_POD_PORT),
      '--tls-cert',
      `${TLS_DIR}/tls.crt`,
      '--tls-key',
      `${TLS_DIR}/tls.key`,
      '--region',
      o.region,
      '--admin-credentials-out',
      MOTO_CREDENTIALS_PATH,
    ],
    files: [
      { source: join(repoRoot, 'support/targets/docker/assets/moto_in_container.py'), target: MOTO_DIR },
      { source: join(repoRoot, 'tools/moto/launcher.py'), target: MOTO_DIR },
      { source: join(repoRoot, 'tools/moto/per_request_auth.py'), target: MOTO_DIR },
      { source: join(repoRoot, 'tools/moto/web_identity.py'), target: MOTO_DIR },
      { source: join(repoRoot, 'tools/moto/trust_policy.py'), target: MOTO_DIR },
    ].map((f) => ({ source: f.source, target: `${f.target}/${f.source.split('/').pop()}` })),
    tls: { certPath: `${TLS_DIR}/tls.crt`, keyPath: `${TLS_DIR}/tls.key`, combined: false },
    readyLog: /\[moto\] ready on/,
  };
}

/**
 * The container object for a spec (not started); `tls` is the emulator's certificate and key,
 * `loopback` binds the published port to the host's 127.0.0.1 (containers.ts).
 */
export function emulatorContainer(
  spec: EmulatorSpec,
  tls: { certPem: string; keyPem: string },
  loopback: boolean,
): GenericContainer {
  const c =
    spec.kind === 'localstack'
      ? new LoopbackLocalstackContainer(spec.image, loopback)
      : new LoopbackGenericContainer(spec.image, loopback);
  c.withEnvironment(spec.environment)
    .withNetworkAliases(spec.alias)
    .withExposedPorts({ container: spec.issuerPort, host: spec.issuerPort })
    .withWaitStrategy(Wait.forLogMessage(spec.readyLog));
  if (spec.entrypoint) c.withEntrypoint(spec.entrypoint);
  if (spec.command) c.withCommand(spec.command);
  if (spec.files.length) c.withCopyFilesToContainer(spec.files.map((f) => ({ ...f, mode: 0o644 })));
  c.withCopyContentToContainer(
    spec.tls.combined
      ? [{ content: `${tls.keyPem.trim()}\n${tls.certPem.trim()}\n`, target: spec.tls.certPath, mode: 0o600 }]
      : [
          { content: tls.certPem, target: spec.tls.certPath, mode: 0o644 },
          { content: tls.keyPem, target: spec.tls.keyPath, mode: 0o600 },
        ],
  );
  return c;
}
