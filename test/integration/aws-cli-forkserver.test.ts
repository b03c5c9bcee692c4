/**
 * tools/aws-cli-forkserver.py: an `aws` forked from the server behaves as `python -m awscli` does:
 * same output and exit status, the caller's environment (not the server's), working directory
 * and standard input, paths under its HOME (the server runs with --self-check: a command that
 * still holds a path under the server's HOME fails); without a server the client runs the CLI
 * itself; no child outlives the server. No network: the commands used need none.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const forkserver = join(repo, 'tools/aws-cli-forkserver.py');

let dir = '';
let python = '';
let server: ChildProcess | undefined;
const socketPath = () => join(dir, 'aws.sock');

function children(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((x) => Number(x));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'irsa-forkserver-'));
  python = join(execFileSync('bash', [join(repo, 'tools/python-env.sh')], { encoding: 'utf8' }).trim(), 'bin/python');
  const ready = join(dir, 'ready');
  // --self-check: a command whose interpreter still holds a path under the server's HOME exits 70.
  server = spawn(python, [forkserver, 'serve', '--socket', socketPath(), '--ready-file', ready, '--self-check'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const deadline = Date.now() + 30_000;
  while (!existsSync(ready)) {
    assert.ok(Date.now() < deadline, 'the fork server did not become ready in 30 s');
    assert.equal(server.exitCode, null, 'the fork server exited');
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(() => {
  server?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const baseEnv = (extra: Record<string, string> = {}) => ({
  PATH: '/usr/bin:/bin',
  HOME: dir,
  AWS_DEFAULT_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'not-a-secret',
  ...extra,
});

function viaServer(args: string[], opts: { env?: Record<string, string>; input?: string; cwd?: string } = {}) {
  return spawnSync(
    python,
    ['-I', '-S', forkserver, 'client', '--socket', socketPath(), '--python', python, '--', ...args],
    { encoding: 'utf8', env: baseEnv(opts.env), input: opts.input ?? '', cwd: opts.cwd ?? dir },
  );
}

function plain(args: string[], opts: { env?: Record<string, string>; input?: string; cwd?: string } = {}) {
  return spawnSync(python, ['-m', 'awscli', ...args], {
    encoding: 'utf8',
    env: baseEnv(opts.env),
    input: opts.input ?? '',
    cwd: opts.cwd ?? dir,
  });
}

test('output and exit status match the plain CLI, for success, usage errors and bad parameters', () => {
  for (const args of [
    ['--version'],
    ['sts', 'no-such-operation'],
    ['s3', 'cp'],
    ['configure', 'get', 'region'],
    ['configure', 'list'],
  ]) {
    const a = viaServer(args);
    const b = plain(args);
    assert.equal(a.status, b.status, `exit status of aws ${args.join(' ')}: ${a.stderr}`);
    assert.equal(a.stdout, b.stdout, `stdout of aws ${args.join(' ')}`);
    assert.equal(a.stderr, b.stderr, `stderr of aws ${args.join(' ')}`);
  }
});

test("each command sees the caller's environment and working directory, not the server's or another command's", () => {
  const cfgDir = join(dir, 'cfg');
  mkdirSync(cfgDir, { recursive: true });
  writeFileSync(join(cfgDir, 'config'), '[profile other]\nregion = ap-southeast-2\n');
  const a = viaServer(['configure', 'get', 'region', '--profile', 'other'], {
    env: { AWS_CONFIG_FILE: join(cfgDir, 'config') },
  });
  assert.equal(a.stdout.trim(), 'ap-southeast-2', a.stderr);
  const b = viaServer(['configure', 'list']);
  assert.equal(b.stdout, plain(['configure', 'list']).stdout, 'the previous command left nothing behind');
  assert.match(b.stdout, /eu-west-1/);
  // awscli/__init__ derives AWS_DATA_PATH from the environment when imported: redone per command.
  const models = join(dir, 'models');
  mkdirSync(join(models, 'irsatest', '2026-01-01'), { recursive: true });
  writeFileSync(
    join(models, 'irsatest', '2026-01-01', 'service-2.json'),
    JSON.stringify({
      version: '2.0',
      metadata: {
        apiVersion: '2026-01-01',
        endpointPrefix: 'irsatest',
        protocol: 'json',
        serviceId: 'IrsaTest',
        signatureVersion: 'v4',
        jsonVersion: '1.1',
        targetPrefix: 'IrsaTest',
      },
      operations: {},
      shapes: {},
    }),
  );
  const withModels = viaServer(['irsatest', 'help'], { env: { AWS_DATA_PATH: models, PAGER: 'cat' } });
  const withoutModels = viaServer(['irsatest', 'help'], { env: { PAGER: 'cat' } });
  assert.equal(withModels.status, plain(['irsatest', 'help'], { env: { AWS_DATA_PATH: models, PAGER: 'cat' } }).status);
  assert.notEqual(withModels.status, withoutModels.status, 'AWS_DATA_PATH of the caller is honoured');
  // Paths under HOME are the caller's: botocore finds models in the caller's ~/.aws/models.
  const home = join(dir, 'home');
  mkdirSync(join(home, '.aws', 'models'), { recursive: true });
  execFileSync('cp', ['-r', join(models, 'irsatest'), join(home, '.aws', 'models')]);
  const fromHome = viaServer(['irsatest', 'help'], { env: { HOME: home, PAGER: 'cat' } });
  assert.equal(fromHome.status, withModels.status, `a model in ~/.aws/models is found: ${fromHome.stderr}`);
  assert.equal(viaServer(['irsatest', 'help'], { env: { PAGER: 'cat' } }).status, withoutModels.status);
  const where = join(dir, 'work');
  mkdirSync(where, { recursive: true });
  writeFileSync(join(where, 'input.json'), '{"RoleArn": "x"}');
  const cwd = viaServer(
    ['sts', 'assume-role', '--cli-input-json', 'file://input.json', '--generate-cli-skeleton', 'input'],
    {
      cwd: where,
    },
  );
  const cwdPlain = plain(
    ['sts', 'assume-role', '--cli-input-json', 'file://input.json', '--generate-cli-skeleton', 'input'],
    {
      cwd: where,
    },
  );
  assert.equal(cwd.status, cwdPlain.status, cwd.stderr);
  assert.equal(cwd.stdout, cwdPlain.stdout);
});

test('standard input reaches the command', () => {
  // A parameter read from stdin (a pipe, as in a pod's exec) shows up in the request the CLI
  // logs with --debug before it fails to connect (to a closed port, one attempt).
  const args =
    'sts assume-role --role-arn file:///dev/stdin --role-session-name s --endpoint-url http://127.0.0.1:9 --debug';
  const marker = `arn:aws:iam::123456789012:role/from-stdin-${process.pid}`;
  const r = spawnSync(
    'sh',
    [
      '-c',
      `printf '%s' '${marker}' | '${python}' -I -S '${forkserver}' client --socket '${socketPath()}' --python '${python}' -- ${args}`,
    ],
    { encoding: 'utf8', env: baseEnv({ AWS_MAX_ATTEMPTS: '1' }), cwd: dir },
  );
  assert.notEqual(r.status, 0);
  assert.ok(r.stderr.includes(marker), `the role ARN from stdin is in the request:\n${r.stderr.slice(-1500)}`);
});

test('without a server the client runs the CLI itself', () => {
  const r = spawnSync(
    python,
    ['-I', '-S', forkserver, 'client', '--socket', join(dir, 'absent.sock'), '--python', python, '--', '--version'],
    { encoding: 'utf8', env: baseEnv() },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, plain(['--version']).stdout);
});

test('finished commands leave no child process behind, and SIGTERM stops the server', async () => {
  for (let i = 0; i < 5; i++) viaServer(['--version']);
  await new Promise((r) => setTimeout(r, 200));
  const pid = server?.pid as number;
  assert.deepEqual(children(pid), [], 'every command was reaped');
  const exited = new Promise<number | null>((r) => server?.once('exit', (code) => r(code)));
  server?.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.equal(existsSync(socketPath()), false, 'the socket is removed');
  assert.ok(readFileSync(join(dir, 'ready'), 'utf8').length > 0);
});
