/**
 * moto (IAM, S3, STS) behind tools/moto/launcher.py (IAM enforced per request), https on
 * 127.0.0.1 with the environment's loopback certificate, and the pods' `aws`: the pinned AWS CLI
 * from the venv (tools/python-env.sh), by default forked from an interpreter that imported it
 * already (tools/aws-cli-forkserver.py says why).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../errors.ts';
import { repoRoot } from '../../paths.ts';
import { type Component, cleanEnv, get, type Launch, LOOPBACK } from './component.ts';

/** moto's default account; the launcher reports the real one in its credentials file. */
const MOTO_DEFAULT_ACCOUNT = '123456789012';

export interface MotoCommand {
  command: string;
  args: (port: number, tls: { cert: string; key: string; ca: string }, region: string, credsFile: string) => string[];
  /** True when IAM is enforced (the launcher); false for plain moto (development fallback). */
  enforcesIam: boolean;
  venvBin: string;
}

/**
 * The venv (tools/python-env.sh) provides moto and the AWS CLI. The launcher is used when present;
 * IRSA_MOTO_MODE=plain forces plain `moto.server` (no IAM enforcement), for development only.
 */
export function resolveMoto(): MotoCommand {
  let venv = process.env.IRSA_VENV;
  if (!venv) {
    try {
      venv = execFileSync('bash', [join(repoRoot, 'tools/python-env.sh')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    } catch (e) {
      const stderr = (e as { stderr?: string }).stderr ?? '';
      const lines = stderr.trim().split('\n');
      const cause = lines.find((l) => l.startsWith('irsa: '))?.slice(6) ?? 'tools/python-env.sh failed';
      const hint = lines.find((l) => l.startsWith('hint: '))?.slice(6) ?? 'run bash tools/python-env.sh to see why';
      throw new UsageError(cause, hint);
    }
  }
  const python = join(venv, 'bin/python');
  if (!existsSync(python))
    throw new UsageError(`no Python in ${venv}`, 'unset IRSA_VENV, or run bash tools/python-env.sh');
  const launcher = join(repoRoot, 'tools/moto/launcher.py');
  if (existsSync(launcher) && process.env.IRSA_MOTO_MODE !== 'plain') {
    return {
      command: python,
      args: (port, tls, region, creds) => [
        launcher,
        '--host',
        LOOPBACK,
        '--port',
        String(port),
        '--tls-cert',
        tls.cert,
        '--tls-key',
        tls.key,
        // Issuers' keys are fetched over https; the environment's issuer is served under its CA.
        '--trust-ca',
        tls.ca,
        '--region',
        region,
        '--admin-credentials-out',
        creds,
      ],
      enforcesIam: true,
      venvBin: join(venv, 'bin'),
    };
  }
  return {
    command: python,
    args: (port, tls) => ['-m', 'moto.server', '-H', LOOPBACK, '-p', String(port), '-c', tls.cert, '-k', tls.key],
    enforcesIam: false,
    venvBin: join(venv, 'bin'),
  };
}

export const AWS_CLI_FORKSERVER = join(repoRoot, 'tools/aws-cli-forkserver.py');

export interface AwsCliShim {
  /** Holds `aws`, the fork server's client: first on the pods' PATH. */
  binDir: string;
  socket: string;
  readyFile: string;
}

/**
 * Writes the pods' `aws` (a client of tools/aws-cli-forkserver.py, which falls back to running
 * the CLI itself when the server is not there). Undefined when the socket's path would exceed the
 * 107 bytes a Unix socket address holds (a deep TMPDIR): pods then run the venv's `aws` directly.
 */
function awsCliShim(moto: MotoCommand, workDir: string): AwsCliShim | undefined {
  if (!existsSync(AWS_CLI_FORKSERVER)) return undefined;
  const socket = join(workDir, 'aws-cli.sock');
  if (Buffer.byteLength(socket) > 107) return undefined;
  const binDir = join(workDir, 'aws-cli', 'bin');
  mkdirSync(binDir, { recursive: true });
  const q = (v: string) => `'${v.replaceAll("'", `'\\''`)}'`;
  writeFileSync(
    join(binDir, 'aws'),
    `#!/bin/sh\nexec ${q(moto.command)} -I -S ${q(AWS_CLI_FORKSERVER)} client --socket ${q(socket)} --python ${q(moto.command)} -- "$@"\n`,
    { mode: 0o755 },
  );
  return { binDir, socket, readyFile: join(workDir, 'aws-cli.ready') };
}

/**
 * Starts moto on `port`; ready once it answers over https and (with the launcher) has written
 * the admin credentials file. Exits with this process unless `keepAlive` (a warm environment).
 */
export async function startMoto(
  launch: Launch,
  c: {
    moto: MotoCommand;
    port: number;
    tls: { cert: string; key: string; ca: string };
    caPem: string;
    region: string;
    credsFile: string;
    workDir: string;
    keepAlive: boolean;
  },
): Promise<Component> {
  const { moto, port, credsFile } = c;
  const proc = await launch(
    'moto',
    moto.command,
    [
      ...moto.args(port, c.tls, c.region, credsFile),
      ...(moto.enforcesIam && !c.keepAlive ? ['--exit-with-parent'] : []),
    ],
    cleanEnv({ HOME: c.workDir, PYTHONDONTWRITEBYTECODE: '1', AWS_DEFAULT_REGION: c.region }),
  );
  return {
    proc,
    ready: (wait) =>
      proc.waitReady(
        async () => {
          if (moto.enforcesIam && !existsSync(credsFile)) return false;
          await get(`https://${LOOPBACK}:${port}/`, { ca: c.caPem });
          return true;
        },
        { what: 'an https answer (and the admin credentials file)', ...wait },
      ),
  };
}

/**
 * The pods' `aws`: the pinned AWS CLI, forked from an interpreter that imported it already
 * (tools/aws-cli-forkserver.py says why). The setting `off` runs it plainly, and a real node's
 * pods run the CLI of their own image: undefined then.
 */
export function podAwsCli(
  moto: MotoCommand,
  workDir: string,
  setting: string | undefined,
  realNode: boolean,
): AwsCliShim | undefined {
  const forkserver = setting ?? process.env.IRSA_AWS_CLI_FORKSERVER ?? 'on';
  return forkserver === 'off' || realNode ? undefined : awsCliShim(moto, workDir);
}

/** Starts the AWS CLI fork server of `shim`; ready once its socket is. */
export async function startAwsCliForkserver(
  launch: Launch,
  c: { moto: MotoCommand; shim: AwsCliShim; workDir: string; keepAlive: boolean },
): Promise<Component> {
  const proc = await launch(
    'aws-cli-forkserver',
    c.moto.command,
    [
      AWS_CLI_FORKSERVER,
      'serve',
      '--socket',
      c.shim.socket,
      '--ready-file',
      c.shim.readyFile,
      ...(c.keepAlive ? [] : ['--exit-with-parent']),
    ],
    cleanEnv({ HOME: c.workDir }),
  );
  return {
    proc,
    ready: (wait) => proc.waitReady(async () => existsSync(c.shim.readyFile), { what: 'its socket', ...wait }),
  };
}

/** The admin credentials moto runs with: the launcher's file, or fixed ones for plain moto. */
export function motoCredentials(
  moto: MotoCommand,
  credsFile: string,
): { accessKeyId: string; secretAccessKey: string; accountId: string } {
  const credentials = moto.enforcesIam
    ? (JSON.parse(readFileSync(credsFile, 'utf8')) as {
        accessKeyId: string;
        secretAccessKey: string;
        accountId?: string;
      })
    : { accessKeyId: 'AKIAIRSAEMBEDDEDADMIN', secretAccessKey: 'embedded-moto-without-iam-enforcement' };
  return {
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    accountId: ('accountId' in credentials && credentials.accountId) || MOTO_DEFAULT_ACCOUNT,
  };
}
