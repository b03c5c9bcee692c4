/**
 * Bad input is refused in process, before anything starts: loadConfig throws a UsageError whose
 * message names what is wrong for each bad setting; and the conformance command, run in this process
 * (test/support/in-process-cli.ts), answers bad settings, profiles, setups, feature files, tag
 * expressions and reports directories with exit 2, one `irsa: <cause>` line and one `hint:` line,
 * having started nothing (the unit tier's guard) and written nothing. What needs a process or a
 * cluster (TMPDIR, the webhook's flags, the live target's connections) is in
 * test/integration/bad-input.test.ts, which runs them through `bash tools/irsa conformance`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../support/config.ts';
import { isUsageError } from '../../support/errors.ts';
import { assertRefused, badSettings, setupWith as setupExtending } from '../support/bad-settings.ts';
import { DEFAULT_SETUP } from '../support/embedded-options.ts';
import { irsaInProcess } from '../support/in-process-cli.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'irsa-bad-settings-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('bad settings: a UsageError naming the cause', () => {
  const cases = badSettings(file);
  for (const c of cases) {
    it(c.name, () => {
      assert.throws(
        () => loadConfig(c.env()),
        (e: unknown) => isUsageError(e) && c.cause.test(e.message),
      );
    });
  }
});

describe('bad input through the conformance command, in process: exit 2, one line of cause and one of hint, nothing created', () => {
  const setupWith = (yaml: string, files: Record<string, string> = {}) => setupExtending(dir, yaml, files);
  const fromDefault = (f: string, from: string, to: string) =>
    readFileSync(path.join(DEFAULT_SETUP, f), 'utf8').replace(from, to);
  const cases: { name: string; argv?: () => string[]; env: () => Record<string, string>; cause: RegExp }[] = [
    { name: 'unknown profile', argv: () => ['-p', 'nosuch'], env: () => ({}), cause: /unknown profile "nosuch"/ },
    ...badSettings(file),
    {
      name: 'a feature file with an undefined step',
      argv: () => [
        file(
          'undefined-step.feature',
          'Feature: bad input\n  Scenario: an undefined step\n    Given a step that no definition matches\n',
        ),
      ],
      env: () => ({}),
      cause: /match no step definition, e\.g\. .*a step that no definition matches/,
    },
    // Found at the door, before anything starts (issue 16, item 5).
    {
      name: 'a setup template naming a file none of its layers has',
      env: () => ({ IRSA_SETUP: setupWith('application:\n  permissionPolicy: no-such-policy.json\n') }),
      cause: /application\.permissionPolicy: .*no-such-policy\.json, which none of its layers has/,
    },
    {
      name: 'a setup policy that is not JSON',
      env: () => ({ IRSA_SETUP: setupWith('', { 'permission-policy.json': '{ "Version": ' }) }),
      cause: /application\.permissionPolicy: .*permission-policy\.json is not valid JSON/,
    },
    {
      name: 'a setup template with an unknown placeholder',
      env: () => ({
        IRSA_SETUP: setupWith('', {
          'permission-policy.json': fromDefault('permission-policy.json', 'appBucket}', 'appBuckett}'),
        }),
      }),
      cause: /permission-policy\.json uses \$\{appBuckett\}, which is not defined here/,
    },
    {
      name: 'a setup deployment template that is not YAML',
      env: () => ({ IRSA_SETUP: setupWith('', { 'deployment.yaml': 'kind: [Deployment\n' }) }),
      cause: /application\.deployment: .*deployment\.yaml is not valid YAML/,
    },
    {
      name: 'a setup permission policy that is not an IAM policy',
      env: () => ({
        IRSA_SETUP: setupWith('', {
          'permission-policy.json': fromDefault('permission-policy.json', '"Allow"', '"Alow"'),
        }),
      }),
      cause: /permission-policy\.json is not a valid IAM identity policy: Statement\[0\]\.Effect/,
    },
    {
      name: 'an invalid --tags expression',
      argv: () => ['--tags', '@a and'],
      env: () => ({}),
      cause: /--tags "@a and" is not a tag expression/,
    },
    {
      name: 'a reports directory that is a file',
      env: () => ({ IRSA_REPORTS_DIR: file('reports-is-a-file', '') }),
      cause: /the reports directory .*reports-is-a-file is not usable/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const r = await irsaInProcess(dir, ['conformance', ...(c.argv?.() ?? [])], c.env());
      assertRefused(r, c.cause);
      // Nothing created: the unit tier's guard fails a case that starts a process or opens a port;
      // nothing in its reports directory (a run directory, logs) or TMPDIR.
      assert.deepEqual(r.left, []);
    });
  }
});
