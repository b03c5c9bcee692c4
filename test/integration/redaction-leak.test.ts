/**
 * Nothing secret is printed (issue 6): a full conformance run on its own embedded target with
 * verbose logging; afterwards stdout, stderr and every file under the reports directory
 * (cucumber.html/ndjson/junit, rerun, the harness log, every component log under logs/) are
 * searched for the run's secrets. The test learns them through the test-only hook
 * IRSA_TEST_SECRETS_FILE (support/redact.ts: every registered secret is appended there, by every
 * thread of the run): the emulator's admin secret key, the capability probe user's secret key,
 * web-identity tokens read from pods, the secret keys and session tokens of the pods' role
 * sessions. On top of the exact values, shapes that are secrets whatever their value: JWTs (raw
 * tokens; decoded claims may appear), PEM private keys, moto's session tokens (what the AWS CLI
 * inside a pod gets, which the harness never sees) and unredacted secret-key fields.
 * The same run must leave no process, port or temporary directory behind.
 * The cases that need no child process or listener are test/unit/redaction-leak.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { binariesMissing } from '../support/binaries.ts';
import { findLeaks, kindOf } from '../support/leak-scanner.ts';
import { type IrsaRun, leftoversOf, removeRun, startIrsa } from '../support/reliability-support.ts';

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

const missing = binariesMissing();

describe('redaction', () => {
  describe('a full verbose run', {
    skip: missing ? `component binaries missing: ${missing}` : false,
    timeout: 300_000,
  }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'irsa-leak-'));
    const secretsFile = path.join(dir, 'secrets.jsonl');
    let run: IrsaRun | undefined;

    after(() => {
      if (run && run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
      if (run) removeRun(run);
      rmSync(dir, { recursive: true, force: true });
    });

    it('prints no token, secret key or session token anywhere, and leaves nothing behind', async (t) => {
      writeFileSync(secretsFile, '', { mode: 0o600 });
      run = startIrsa(['conformance'], { IRSA_VERBOSE: 'true', IRSA_TEST_SECRETS_FILE: secretsFile });
      const result = await run.exited;
      assert.ok(
        result.code === 0 || result.code === 1,
        `the suite ran to the end (exit ${result.code}, signal ${result.signal})\n${result.stderr.slice(-2000)}`,
      );

      const secrets = [
        ...new Set(
          readFileSync(secretsFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as string),
        ),
      ];
      const kinds = new Set(secrets.map(kindOf));
      // Without these the run did not reach what produces them, and the check would prove little.
      for (const k of ['web-identity token', 'secret access key', 'session token'])
        assert.ok(kinds.has(k), `the run registered at least one ${k} (registered: ${[...kinds].join(', ')})`);

      const texts = new Map<string, string>([
        ['stdout', result.stdout],
        ['stderr', result.stderr],
      ]);
      const files = filesUnder(run.reportsDir);
      assert.ok(
        files.some((f) => f.endsWith('cucumber.ndjson')) && files.some((f) => /logs\/env[^/]+\/moto\.log$/.test(f)),
        `reports and component logs were written: ${files.map((f) => path.relative(run?.reportsDir ?? '', f)).join(', ')}`,
      );
      for (const f of files) texts.set(path.relative(run.reportsDir, f), readFileSync(f, 'utf8'));
      const byKind = new Map<string, number>();
      for (const sec of secrets) byKind.set(kindOf(sec), (byKind.get(kindOf(sec)) ?? 0) + 1);
      t.diagnostic(
        `registered: ${[...byKind].map(([k, n]) => `${n} ${k}(s)`).join(', ')}; scanned ${texts.size} texts, ${Math.round([...texts.values()].reduce((a, x) => a + x.length, 0) / 1024)} KiB; exit ${result.code} in ${result.seconds.toFixed(1)} s`,
      );
      const leaks = findLeaks(texts, secrets);
      assert.deepEqual(
        leaks,
        [],
        `secrets in the output (${secrets.length} registered values, ${texts.size} texts scanned):\n${leaks.map((l) => `  ${l.where}: ${l.what}`).join('\n')}`,
      );

      assert.deepEqual(
        await leftoversOf(run),
        { processes: [], ports: [], tempDirs: [] },
        'nothing of the run is left',
      );
    });
  });
});
