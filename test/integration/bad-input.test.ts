/**
 * Bad input is refused (issue 6): each case runs `bash tools/irsa conformance` as a child process
 * and expects exit code 2, exactly one `irsa: <cause>` line and one `hint: <hint>` line on stderr
 * (no stack trace), the cause naming what is wrong, and nothing created: no target started (no
 * component log directory, no process left), no run directory, and on the AWS emulator and
 * cluster the live cases point at, no resource with the harness's tag or label.
 *
 * The live cases use the live target's own code path against a warm embedded environment
 * (kubeconfig, IRSA_AWS_ENDPOINT + IRSA_AWS_CA_BUNDLE), or against a closed loopback port for the
 * unreachable cases. The AWS default credential chain is isolated from the machine's (no shared
 * files, no instance metadata).
 * Issue 16 adds what used to be found only mid-run or with a stack trace: a webhook flag the webhook
 * lacks (the webhook's binary says its flags) and an unusable TMPDIR (tools/irsa says so).
 * Every case that needs neither a process nor a cluster (settings, profiles, setup templates, tag
 * expressions, reports directories) runs in process under the unit tier's guard
 * (test/unit/bad-input.test.ts); one bad setting and one undefined step run here too, so that the
 * whole path through tools/irsa is shown to end the same way.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClients } from '../../support/clients.ts';
import { freeLoopbackPort } from '../../support/process.ts';
import { findLeftovers } from '../../support/sweep/sweep.ts';
import { badSettings, setupWith } from '../support/bad-settings.ts';
import { binariesMissing } from '../support/binaries.ts';
import {
  disposeRuns,
  type IrsaRun,
  leftoversOf,
  limited,
  startIrsa,
  startWarmEnvironment,
  type WarmEnvironment,
} from '../support/reliability-support.ts';

interface Case {
  name: string;
  argv?: string[];
  env: () => Record<string, string>;
  /** What the cause line must say. */
  cause: RegExp;
}

const missing = binariesMissing();

describe('bad input: exit 2, one line of cause and one of hint, nothing created', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 240_000,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'irsa-bad-input-'));
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  let warm: WarmEnvironment;
  let closedPort: number;
  const runs: IrsaRun[] = [];
  /** No AWS credentials or configuration from the machine. */
  const isolatedAws = () => ({
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-credentials'),
    AWS_CONFIG_FILE: path.join(dir, 'no-config'),
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  /** The live target pointed at the warm environment, with its admin credentials. */
  const liveOnWarm = (): Record<string, string> => {
    const aws = warm.descriptor.aws;
    return {
      ...isolatedAws(),
      IRSA_TARGET: 'live',
      IRSA_KUBECONFIG: warm.descriptor.kubeconfigPath,
      IRSA_AWS_ENDPOINT: aws.endpoint as string,
      IRSA_AWS_CA_BUNDLE: aws.caBundlePath as string,
      IRSA_AWS_ACCOUNT_ID: aws.accountId,
      AWS_ACCESS_KEY_ID: aws.credentials?.accessKeyId as string,
      AWS_SECRET_ACCESS_KEY: aws.credentials?.secretAccessKey as string,
      AWS_REGION: aws.region,
    };
  };

  before(async () => {
    warm = await startWarmEnvironment(dir);
    closedPort = await freeLoopbackPort();
  });

  after(async () => {
    // Cases are started together; when a name pattern selects only some, the others still run:
    // let them finish, so that every run is removed below.
    await Promise.allSettled(results.values());
    await disposeRuns(runs, warm, dir);
  });

  const cases: Case[] = [
    // One bad setting through the whole path (tools/irsa, main.ts's exit code); every case of
    // test/support/bad-settings.ts runs in process in test/unit/bad-input.test.ts.
    ...badSettings(file).filter((c) => c.name === 'unknown target'),
    {
      name: 'a feature file with an undefined step',
      argv: [],
      env: () => ({}),
      cause: /match no step definition, e\.g\. .*a step that no definition matches/,
    },
    {
      name: 'missing kubeconfig (live)',
      env: () => ({ ...liveOnWarm(), IRSA_KUBECONFIG: path.join(dir, 'no-such-kubeconfig') }),
      cause: /no kubeconfig found/,
    },
    {
      name: 'unreadable kubeconfig (live)',
      env: () => ({ ...liveOnWarm(), IRSA_KUBECONFIG: file('garbage.kubeconfig', 'clusters: {{{ not yaml\n') }),
      cause: /cannot read kubeconfig/,
    },
    {
      name: 'unreachable API server (live)',
      env: () => ({
        ...liveOnWarm(),
        IRSA_KUBECONFIG: file(
          'closed.kubeconfig',
          [
            'apiVersion: v1',
            'kind: Config',
            'clusters: [{name: c, cluster: {server: "https://127.0.0.1:PORT", insecure-skip-tls-verify: true}}]',
            'users: [{name: u, user: {token: not-a-real-token}}]',
            'contexts: [{name: x, context: {cluster: c, user: u}}]',
            'current-context: x',
            '',
          ]
            .join('\n')
            .replace('PORT', String(closedPort)),
        ),
      }),
      cause: /cannot read the cluster at https:\/\/127\.0\.0\.1:\d+/,
    },
    {
      name: 'unreachable AWS endpoint (live)',
      env: () => ({ ...liveOnWarm(), IRSA_AWS_ENDPOINT: `https://127.0.0.1:${closedPort}` }),
      cause: /cannot tell which AWS identity .*GetCallerIdentity at https:\/\/127\.0\.0\.1/,
    },
    {
      name: 'missing AWS credentials (live)',
      env: () => {
        const { AWS_ACCESS_KEY_ID: _id, AWS_SECRET_ACCESS_KEY: _secret, ...rest } = liveOnWarm();
        return rest;
      },
      cause: /cannot tell which AWS identity/,
    },
    {
      name: 'invalid or expired AWS credentials (live)',
      env: () => ({
        ...liveOnWarm(),
        AWS_ACCESS_KEY_ID: 'ASIAIRSATESTEXPIRED1',
        AWS_SECRET_ACCESS_KEY: 'expiredexpiredexpiredexpiredexpiredexpir',
        AWS_SESSION_TOKEN: 'expired-session-token-of-a-session-that-ended',
      }),
      cause: /cannot tell which AWS identity .*(InvalidClientTokenId|ExpiredToken|security token)/i,
    },
    {
      name: 'credentials of another account than the confirmed one (live)',
      env: () => ({ ...liveOnWarm(), IRSA_AWS_ACCOUNT_ID: '999999999999' }),
      cause: /IRSA_AWS_ACCOUNT_ID confirms account 999999999999/,
    },
    // Found at the door, before anything starts (issue 16, item 5); the setup templates' other
    // cases run in process (test/unit/bad-input.test.ts).
    {
      name: 'a webhook flag the webhook does not have',
      env: () => ({ IRSA_SETUP: setupWith(dir, 'webhook:\n  flags:\n    no-such-flag: "x"\n') }),
      cause: /the setup's webhook flag --no-such-flag is not a flag of amazon-eks-pod-identity-webhook/,
    },
    {
      name: 'a TMPDIR that is a file',
      env: () => ({ TMPDIR: file('tmpdir-is-a-file', '') }),
      cause: /TMPDIR=.*tmpdir-is-a-file is not a directory this user may write to/,
    },
  ];

  let undefinedStepFeature: string;
  const argvOf = (c: Case) => {
    if (c.name === 'a feature file with an undefined step') {
      undefinedStepFeature ??= file(
        'undefined-step.feature',
        'Feature: bad input\n  Scenario: an undefined step\n    Given a step that no definition matches\n',
      );
      return [undefinedStepFeature];
    }
    return c.argv ?? [];
  };

  type Outcome = { run: IrsaRun; stderr: string; code: number | null; seconds: number };
  const results = new Map<string, Promise<Outcome>>();
  // At most two cases at once: each loads cucumber, which is CPU-bound on two cores.
  const turn = limited(2);
  const schedule = (c: Case) => {
    results.set(
      c.name,
      turn(async () => {
        const run = startIrsa(['conformance', ...argvOf(c)], c.env());
        runs.push(run);
        const r = await run.exited;
        return { run, stderr: r.stderr, code: r.code, seconds: r.seconds };
      }),
    );
  };

  for (const c of cases) {
    it(c.name, async (t) => {
      // All cases start with the first test (two at a time); each test awaits its own.
      if (results.size === 0) for (const x of cases) schedule(x);
      const pending = results.get(c.name);
      assert.ok(pending);
      const { run, stderr, code, seconds } = await pending;
      t.diagnostic(`${seconds.toFixed(1)} s`);
      assert.equal(code, 2, `exit code 2 (got ${code})\n${stderr.slice(-1500)}`);
      const causes = stderr.split('\n').filter((l) => l.startsWith('irsa: '));
      const hints = stderr.split('\n').filter((l) => l.startsWith('hint: '));
      assert.equal(causes.length, 1, `one cause line:\n${stderr}`);
      assert.equal(hints.length, 1, `one hint line:\n${stderr}`);
      assert.match(causes[0] as string, c.cause);
      assert.ok((hints[0] as string).length > 'hint: '.length + 10, 'the hint says something');
      assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
      // Nothing created: no target (its component logs would be under reports/logs/env*), no run
      // directory, no process.
      const logs = path.join(run.reportsDir, 'logs');
      const envLogs = existsSync(logs) ? readdirSync(logs).filter((d) => d.startsWith('env')) : [];
      assert.deepEqual(envLogs, [], 'no target was started');
      assert.deepEqual(await leftoversOf(run), { processes: [], ports: [], tempDirs: [] });
    });
  }

  it('left nothing tagged on the environment the live cases pointed at', async () => {
    await Promise.all([...results.values()]);
    const c = createClients(warm.descriptor);
    try {
      const r = await findLeftovers(c, warm.descriptor);
      assert.deepEqual(r.problems, []);
      assert.deepEqual(
        r.found.map((l) => l.what),
        [],
      );
    } finally {
      c.destroy();
    }
  });
});
