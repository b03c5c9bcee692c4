/**
 * The targets, by name: the target named N is the default export of support/targets/N/module.ts (a
 * TargetModule, support/targets/module.ts). Adding a target is one folder with a module.ts and its
 * name in TARGET_NAMES (support/targets/target.ts), the one list of targets, which the settings'
 * schema validates against. Modules load on demand: a run loads only its own target's code.
 */
import type { TargetModule } from './module.ts';
import { TARGET_NAMES } from './target.ts';

type Loader = () => Promise<TargetModule>;

const TARGETS = new Map<string, Loader>(
  TARGET_NAMES.map((name) => [
    name,
    async () => ((await import(`./${name}/module.ts`)) as { default: TargetModule }).default,
  ]),
);

/** Targets registered at run time (a test's fake target); never used by the harness itself. */
const registered = new Map<string, Loader>();

/** Registers a target module under a name, for tests that run the coordinator's path with a fake target. */
export function registerTarget(name: string, module: TargetModule): () => void {
  registered.set(name, async () => module);
  return () => registered.delete(name);
}

/** The module of the target named `name` (config.target). */
export async function loadTargetModule(name: string): Promise<TargetModule> {
  const load = registered.get(name) ?? TARGETS.get(name);
  if (!load) throw new Error(`no target module named ${JSON.stringify(name)} (support/targets/registry.ts)`);
  return load();
}
