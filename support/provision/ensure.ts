/**
 * Runs the infrastructure provisioning exactly once per run, whichever scenario or worker thread
 * asks first: the first caller takes a lock file and provisions; the others watch the run
 * directory until the result (or the failure) is published. Resources go to the ledger's "run"
 * scope and are deleted by the coordinator at the end of the run.
 */
import { closeSync, existsSync, openSync, readFileSync, renameSync, watch, writeFileSync } from 'node:fs';
import path from 'node:path';
import { OperationTimeout } from '../errors.ts';
import { resourceName } from '../names.ts';
import type { Jwks } from '../oidc/jwks.ts';
import type { InfrastructureState } from '../run-state.ts';
import type { ProvisionContext } from './context.ts';
import {
  createIdentityProvider,
  discoveryDocumentFor,
  observeClusterIssuer,
  publishDiscovery,
  publishedJwks,
  readClusterSigningKeys,
  registerWebhook,
} from './infrastructure.ts';

/** What the infrastructure checks need beyond the shared state: what was built and from what. */
export interface InfrastructureRecord extends InfrastructureState {
  clusterIssuer: string;
  clusterKeySource: string;
  clusterKids: string[];
  discoveryDocument: Record<string, unknown>;
  jwks: Jwks;
  created: string[];
}

const FILE = 'infrastructure.json';
const FAILED = 'infrastructure-failed.json';
const LOCK = 'infrastructure.lock';

async function provision(ctx: ProvisionContext): Promise<InfrastructureRecord> {
  const c = ctx.clients;
  const created: string[] = [];
  const [clusterIssuer, clusterKeys] = await Promise.all([
    observeClusterIssuer(c, ctx.config.timeouts.assertSeconds),
    readClusterSigningKeys(c),
  ]);
  const issuerControl = ctx.target.issuer;
  const bucket = issuerControl.mode === 'fixed' ? issuerControl.discoveryBucket : resourceName('irsa-oidc', ctx.runId);
  // The issuer the setup is built for: the cluster's own (embedded/docker fix it at start to the bucket URL).
  const issuer = clusterIssuer;
  const document = discoveryDocumentFor(ctx, issuer);
  const jwks = publishedJwks(ctx, clusterKeys);
  const published = await publishDiscovery(ctx, bucket, document, jwks);
  created.push(`S3 bucket ${bucket} with .well-known/openid-configuration and keys.json`);
  const idp = await createIdentityProvider(ctx, issuer);
  created.push(`IAM OIDC identity provider ${idp.arn}`);
  const webhookConfigurationName = await registerWebhook(ctx);
  if (webhookConfigurationName && ctx.target.webhook.mode !== 'existing')
    created.push(`MutatingWebhookConfiguration ${webhookConfigurationName}`);
  return {
    issuer,
    clusterIssuer,
    discoveryBucket: bucket,
    discoveryUrl: published.url,
    identityProviderArn: idp.arn,
    identityProviderUrl: idp.url,
    clientIds: idp.clientIds,
    ...(webhookConfigurationName ? { webhookConfigurationName } : {}),
    publishedKids: jwks.keys.map((k) => k.kid),
    clusterKeySource: clusterKeys.source,
    clusterKids: clusterKeys.keys.map((k) => k.kid),
    discoveryDocument: document,
    jwks,
    created,
  };
}

function publish(runDir: string, name: string, value: unknown): void {
  const file = path.join(runDir, name);
  writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

function readPublished(runDir: string): InfrastructureRecord | undefined {
  const failed = path.join(runDir, FAILED);
  if (existsSync(failed)) {
    const f = JSON.parse(readFileSync(failed, 'utf8')) as { message: string };
    throw new Error(`the run's infrastructure could not be provisioned: ${f.message}`);
  }
  const file = path.join(runDir, FILE);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as InfrastructureRecord) : undefined;
}

let cached: InfrastructureRecord | undefined;

export async function ensureInfrastructure(ctx: ProvisionContext, runDir: string): Promise<InfrastructureRecord> {
  if (cached) return cached;
  const done = readPublished(runDir);
  if (done) {
    cached = done;
    return done;
  }
  let fd: number | undefined;
  try {
    fd = openSync(path.join(runDir, LOCK), 'wx');
  } catch {
    fd = undefined;
  }
  if (fd !== undefined) {
    closeSync(fd);
    try {
      const record = await provision({ ...ctx, scope: 'run' });
      publish(runDir, FILE, record);
      cached = record;
      return record;
    } catch (e) {
      publish(runDir, FAILED, { message: (e as Error).message });
      throw e;
    }
  }
  // Another scenario is provisioning: wait for its result, watching the run directory.
  const timeoutSeconds = ctx.config.timeouts.startSeconds;
  return await new Promise<InfrastructureRecord>((resolve, reject) => {
    const watcher = watch(runDir);
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      watcher.close();
      fn();
    };
    const check = () => {
      try {
        const r = readPublished(runDir);
        if (r) {
          cached = r;
          finish(() => resolve(r));
        }
      } catch (e) {
        finish(() => reject(e));
      }
    };
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            new OperationTimeout(
              'waiting for the infrastructure',
              'the scenario provisioning it to finish',
              timeoutSeconds,
            ),
          ),
        ),
      timeoutSeconds * 1000,
    );
    watcher.on('change', check);
    check();
  });
}
