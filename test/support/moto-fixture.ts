/**
 * The embedded target's AWS emulator (tools/moto/launcher.py) started alone over TLS, with AWS SDK
 * clients and raw unsigned requests against it: shared by the launcher's and the STS tests.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IAMClient } from '@aws-sdk/client-iam';
import { S3Client } from '@aws-sdk/client-s3';
import { STSClient } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { anonymousS3Client } from '../../support/aws/anonymous.ts';
import { createCa, issueServingCert } from '../../support/tls.ts';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const START_TIMEOUT_MS = 60_000;

export interface AdminCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  accountId: string;
  region: string;
  endpoint: string;
}

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface RawResponse {
  status: number;
  body: string;
}

export function venvPython(): string {
  const venv = execFileSync('bash', [join(repo, 'tools/python-env.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return join(venv, 'bin/python');
}

/** Resolves when `file` exists; rejects if `child` exits first or the time runs out. */
export function waitForFile(file: string, child: ChildProcess, timeoutMs: number, log: () => string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const watcher = watch(dirname(file));
    const finish = (error?: Error): void => {
      watcher.close();
      clearTimeout(timer);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolvePromise();
    };
    const check = (): void => {
      try {
        readFileSync(file);
        finish();
      } catch {
        // not there yet
      }
    };
    const onExit = (code: number | null): void =>
      finish(new Error(`launcher exited (${code}) before ready:\n${log()}`));
    const timer = setTimeout(() => finish(new Error(`launcher not ready after ${timeoutMs} ms:\n${log()}`)), timeoutMs);
    watcher.on('change', check);
    child.on('exit', onExit);
    check();
  });
}

export class Launcher {
  private constructor(
    readonly child: ChildProcess,
    readonly workDir: string,
    readonly admin: AdminCredentials,
    readonly caPem: string,
    readonly agent: https.Agent,
    readonly exited: Promise<number | null>,
    private readonly output: { text: string },
  ) {}

  /** Everything the launcher printed so far. */
  get log(): string {
    return this.output.text;
  }

  /** Starts the launcher on a free port of 127.0.0.1 with a serving certificate of a fresh CA (also its --trust-ca). */
  static async start(region: string): Promise<Launcher> {
    const python = venvPython();
    const workDir = mkdtempSync(join(tmpdir(), 'irsa-moto-launcher-'));
    const ca = await createCa('irsa-moto-launcher-test');
    const serving = await issueServingCert(ca, { ipSans: ['127.0.0.1'] });
    writeFileSync(join(workDir, 'ca.crt'), ca.certPem);
    writeFileSync(join(workDir, 'tls.crt'), serving.certPem, { mode: 0o600 });
    writeFileSync(join(workDir, 'tls.key'), serving.keyPem, { mode: 0o600 });
    const credentialsFile = join(workDir, 'admin.json');
    const startedAt = performance.now();
    const child = spawn(
      python,
      [
        join(repo, 'tools/moto/launcher.py'),
        ...['--host', '127.0.0.1', '--port', '0', '--region', region, '--admin-credentials-out', credentialsFile],
        ...['--tls-cert', join(workDir, 'tls.crt'), '--tls-key', join(workDir, 'tls.key')],
        ...['--trust-ca', join(workDir, 'ca.crt')],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const output = { text: '' };
    child.stdout?.on('data', (chunk: Buffer) => (output.text += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output.text += chunk.toString()));
    await waitForFile(credentialsFile, child, START_TIMEOUT_MS, () => output.text);
    console.log(`# launcher ready in ${Math.round(performance.now() - startedAt)} ms (spawn to credentials file)`);
    const admin = JSON.parse(readFileSync(credentialsFile, 'utf8')) as AdminCredentials;
    assert.match(admin.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    const agent = new https.Agent({ ca: ca.certPem, keepAlive: true, maxSockets: 64 });
    return new Launcher(child, workDir, admin, ca.certPem, agent, exited, output);
  }

  get endpoint(): string {
    return this.admin.endpoint;
  }

  private handler(): NodeHttpHandler {
    return new NodeHttpHandler({ httpsAgent: this.agent });
  }

  s3(credentials: Credentials): S3Client {
    return new S3Client({
      region: this.admin.region,
      endpoint: this.endpoint,
      forcePathStyle: true,
      credentials,
      requestHandler: this.handler(),
    });
  }

  /** An S3 client that sends its requests unsigned, as an anonymous caller does. */
  s3Anonymous(): S3Client {
    return anonymousS3Client({
      region: this.admin.region,
      endpoint: this.endpoint,
      forcePathStyle: true,
      requestHandler: this.handler(),
    });
  }

  iam(credentials: Credentials): IAMClient {
    return new IAMClient({
      region: this.admin.region,
      endpoint: this.endpoint,
      credentials,
      requestHandler: this.handler(),
    });
  }

  /** Without credentials, a provider that fails proves that a call really goes out unsigned. */
  sts(credentials?: Credentials): STSClient {
    const noCredentials = async (): Promise<Credentials> => {
      throw new Error('this client must not sign');
    };
    return new STSClient({
      region: this.admin.region,
      endpoint: this.endpoint,
      credentials: credentials ?? noCredentials,
      requestHandler: this.handler(),
    });
  }

  /** An unsigned request, as a browser or curl would send it. */
  rawRequest(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<RawResponse> {
    return new Promise((resolvePromise, reject) => {
      const request = https.request(
        new URL(path, this.endpoint),
        { method, agent: this.agent, headers },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolvePromise({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          );
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  /** AssumeRoleWithWebIdentity as a raw unsigned form POST (the answer's XML as STS sends it). */
  assumeRoleWithWebIdentity(params: Record<string, string>): Promise<RawResponse> {
    const form = new URLSearchParams({ Action: 'AssumeRoleWithWebIdentity', Version: '2011-06-15', ...params });
    return this.rawRequest('POST', '/', form.toString(), { 'content-type': 'application/x-www-form-urlencoded' });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    this.agent.destroy();
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

export async function assertAwsError(operation: Promise<unknown>, name: string, status: number): Promise<void> {
  await assert.rejects(operation, (error: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
    assert.equal(error.name, name);
    assert.equal(error.$metadata?.httpStatusCode, status);
    return true;
  });
}
