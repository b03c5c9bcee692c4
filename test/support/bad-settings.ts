/**
 * The bad settings both tiers refuse: in process through loadConfig (test/unit/bad-input.test.ts)
 * and through `bash tools/irsa conformance`, exit 2 and nothing created
 * (test/integration/bad-input.test.ts). `file` writes a config file and returns its path.
 */
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
