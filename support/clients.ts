/**
 * One bundle of clients per process for a target descriptor: Kubernetes (admin kubeconfig),
 * IAM, S3, STS (admin side), and an anonymous HTTPS getter. Connections are kept alive and
 * reused; an emulator's CA is trusted through the agent, never by turning verification off.
 * HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured by all of them (support/proxy.ts).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  RbacAuthorizationV1Api,
} from '@kubernetes/client-node';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { UsageError } from './errors.ts';
import { EnvProxyHttpAgent, EnvProxyHttpsAgent, withEnvProxy } from './proxy.ts';
import { guardKubeConfig, readOnlyAwsClient } from './read-only.ts';
import type { TargetDescriptor } from './targets/target.ts';

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export interface Clients {
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  admission: AdmissionregistrationV1Api;
  rbac: RbacAuthorizationV1Api;
  custom: CustomObjectsApi;
  objects: KubernetesObjectApi;
  iam: IAMClient;
  s3: S3Client;
  sts: STSClient;
  /** An unauthenticated GET, as AWS STS or a browser would fetch the discovery documents. */
  anonymousGet(url: string): Promise<HttpResult>;
  /** The same, with the body parsed as JSON where it is JSON (else the text): a token diagnosis's fetchJson. */
  anonymousGetJson(url: string): Promise<{ status: number; body: unknown }>;
  /** AWS client options for another identity (e.g. role credentials), same endpoint and trust. */
  awsClientOptions(credentials?: {
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken?: string;
  }): Record<string, unknown>;
  destroy(): void;
}

export function loadKubeConfig(file: string, context?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (e) {
    throw new UsageError(
      `cannot read kubeconfig ${file}: ${(e as Error).message.split('\n')[0]}`,
      'set KUBECONFIG (or IRSA_KUBECONFIG) to a readable kubeconfig file',
    );
  }
  if (context) {
    if (!kc.getContexts().some((c) => c.name === context)) {
      throw new UsageError(
        `kubeconfig ${file} has no context ${context}`,
        `contexts: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'
        }`,
      );
    }
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster())
    throw new UsageError(`kubeconfig ${file} has no current cluster`, 'set a current-context or IRSA_KUBE_CONTEXT');
  // A proxy-url in the kubeconfig wins; else HTTPS_PROXY / NO_PROXY, as kubectl reads them.
  withEnvProxy(kc);
  return kc;
}

const contexts = new Map<string, tls.SecureContext>();

/**
 * The system's roots plus the emulator's CA, parsed once per process and CA file. Passing `ca` to
 * the agent instead would parse the ~140 roots again for every new connection, and emulators
 * (werkzeug under moto) close each connection after one response: measured 1.7 s of CPU per
 * worker thread over the default suite.
 */
function trustingContext(caBundlePath: string): tls.SecureContext {
  let ctx = contexts.get(caBundlePath);
  if (!ctx) {
    ctx = tls.createSecureContext({ ca: [...tls.rootCertificates, readFileSync(caBundlePath, 'utf8')] });
    contexts.set(caBundlePath, ctx);
  }
  return ctx;
}

export function createClients(t: TargetDescriptor): Clients {
  const kc = loadKubeConfig(t.kubeconfigPath, t.kubeContext);
  // Verify-only: writes are refused by the clients themselves, not by the care of each caller.
  const guard = <C>(client: C): C => (t.readOnly ? readOnlyAwsClient(client) : client);
  if (t.readOnly) guardKubeConfig(kc, t.readOnly);
  const secureContext = t.aws.caBundlePath ? trustingContext(t.aws.caBundlePath) : undefined;
  const agent = new EnvProxyHttpsAgent({
    keepAlive: true,
    maxSockets: 64,
    ...(secureContext ? { secureContext } : {}),
  });
  const httpAgent = new EnvProxyHttpAgent({ keepAlive: true, maxSockets: 64 });
  const requestHandler = new NodeHttpHandler({
    httpsAgent: agent,
    httpAgent,
    connectionTimeout: 5000,
    requestTimeout: 30000,
  });
  const awsClientOptions = (credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) => ({
    region: t.aws.region,
    requestHandler,
    maxAttempts: 3,
    ...(t.aws.endpoint ? { endpoint: t.aws.endpoint } : {}),
    credentials: credentials ?? t.aws.credentials ?? fromNodeProviderChain(),
  });
  const base = awsClientOptions();
  const anonymousGet = (url: string): Promise<HttpResult> =>
    new Promise((resolve, reject) => {
      const u = new URL(url);
      const lib = u.protocol === 'https:' ? https : http;
      const req = lib.get(u, { agent: u.protocol === 'https:' ? agent : httpAgent, timeout: 10000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }),
        );
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after 10 s`)));
      req.on('error', reject);
    });
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    admission: kc.makeApiClient(AdmissionregistrationV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    objects: KubernetesObjectApi.makeApiClient(kc),
    iam: guard(new IAMClient(base)),
    s3: guard(new S3Client({ ...base, forcePathStyle: t.aws.forcePathStyle })),
    sts: guard(new STSClient(base)),
    anonymousGet,
    async anonymousGetJson(url: string) {
      const r = await anonymousGet(url);
      let body: unknown = r.body;
      try {
        body = JSON.parse(r.body);
      } catch {
        // Not JSON: callers report "not a JSON object" with the status.
      }
      return { status: r.status, body };
    },
    awsClientOptions,
    destroy() {
      agent.destroy();
      httpAgent.destroy();
    },
  };
}
