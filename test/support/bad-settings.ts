/**
 * Bad input, for both tiers: setups that extend the default one, the shape of a refusal, and the
 * bad settings both tiers refuse: in process through loadConfig (test/unit/bad-input.test.ts)
 * and through `bash tools/irsa conformance`, exit 2 and nothing created
 * (test/integration/bad-input.test.ts). `file` writes a config file and returns its path.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_SETUP } from './embedded-options.ts';

/** A setup under `dir` that extends the default one: more setup.yaml lines, and files of its own. */
export function setupWith(dir: string, yaml: string, files: Record<string, string> = {}): string {
  const d = mkdtempSync(path.join(dir, 'setup-'));
  writeFileSync(path.join(d, 'setup.yaml'), `extends: ${DEFAULT_SETUP}\n${yaml}`);
  for (const [f, text] of Object.entries(files)) writeFileSync(path.join(d, f), text);
  return d;
}

/**
 * An answer to bad input: exit 2 and, on stderr, exactly one `irsa: <cause>` line matching `cause`
 * and one `hint:` line that says something.
 */
export function assertRefused(r: { code: number | null; stderr: string }, cause: RegExp): void {
  assert.equal(r.code, 2, `exit code 2 (got ${r.code})\n${r.stderr.slice(-1500)}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, `one cause line and one hint line:\n${r.stderr}`);
  assert.match(lines[0] ?? '', /^irsa: /);
  assert.match(lines[0] ?? '', cause);
  assert.match(lines[1] ?? '', /^hint: .{10}/, 'the hint says something');
}

export interface SettingsCase {
  name: string;
  env: () => Record<string, string>;
  /** What the cause must say. */
  cause: RegExp;
}

export function badSettings(file: (name: string, text: string) => string): SettingsCase[] {
  return [
    { name: 'unknown target', env: () => ({ IRSA_TARGET: 'mainframe' }), cause: /IRSA_TARGET \(target\)/ },
    {
      name: 'malformed config file',
      env: () => ({ IRSA_CONFIG: file('malformed.yaml', 'target: [embedded\ntenants: 3\n') }),
      cause: /config file .*malformed\.yaml is not valid YAML/,
    },
    {
      name: 'config file that is not a mapping',
      env: () => ({ IRSA_CONFIG: file('list.yaml', '- embedded\n') }),
      cause: /must hold a mapping/,
    },
    {
      name: 'unknown key in the config file',
      env: () => ({ IRSA_CONFIG: file('unknown-key.yaml', 'target: embedded\ncolour: blue\n') }),
      cause: /invalid setting .*colour/,
    },
    {
      name: 'setting of the wrong type (env)',
      env: () => ({ IRSA_TENANTS: 'many' }),
      cause: /IRSA_TENANTS \(tenants\)/,
    },
    {
      name: 'setting of the wrong type (config file)',
      env: () => ({ IRSA_CONFIG: file('wrong-type.yaml', 'timeouts:\n  applySeconds: soon\n') }),
      cause: /timeouts\.applySeconds/,
    },
    {
      name: 'a region that does not exist',
      env: () => ({ IRSA_REGION: 'us-moon-1' }),
      cause: /IRSA_REGION \(region\): not a region AWS has/,
    },
    { name: 'a region of the wrong shape', env: () => ({ IRSA_REGION: 'Virginia' }), cause: /IRSA_REGION \(region\)/ },
    {
      name: 'a fork-server switch that is neither on nor off',
      env: () => ({ IRSA_AWS_CLI_FORKSERVER: 'maybe' }),
      cause: /IRSA_AWS_CLI_FORKSERVER \(embedded\.awsCliForkserver\)/,
    },
  ];
}
