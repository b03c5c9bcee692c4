/**
 * The start options of the embedded environments the integration tests start, from the one owner
 * of them (support/targets/embedded/options.ts's embeddedOptionsFor), as a run's own target gets
 * them: the default setup's webhook flags, the default settings, a new environment id and its
 * discovery bucket, logs under `dir`. Tests run on kwok unless they ask for the real node
 * (`settings: { kubeNode: 'kubelet' }`); what a test adds (a state file, a progress callback, a
 * longer start timeout) goes in `overrides`.
 */
import path from 'node:path';
import { loadConfig } from '../../support/config.ts';
import { repoRoot } from '../../support/paths.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import type { EmbeddedOptions } from '../../support/targets/embedded/index.ts';
import { embeddedOptionsFor } from '../../support/targets/embedded/options.ts';

export const DEFAULT_SETUP = path.join(repoRoot, 'fixtures/setups/default');

export function embeddedTestOptions(
  dir: string,
  overrides: Partial<EmbeddedOptions> = {},
): EmbeddedOptions & { envId: string } {
  const config = loadConfig({ IRSA_REPORTS_DIR: dir });
  const { settings, ...rest } = overrides;
  return embeddedOptionsFor(config, loadSetup(DEFAULT_SETUP), {
    ...rest,
    settings: { ...config.embedded, kubeNode: 'kwok', ...settings },
  });
}
