/**
 * The targets, by name: each line loads one target folder's module (support/targets/module.ts).
 * Adding a target is one folder with a module.ts and one line here (its name joins TARGET_NAMES in
 * support/targets/target.ts, which the settings' schema validates against). Modules load on demand:
 * a run loads only its own target's code.
 */
import type { TargetModule } from './module.ts';
import type { TargetName } from './target.ts';

type Loader = () => Promise<TargetModule>;

const TARGETS: Record<TargetName, Loader> = {
  embedded: async () => (await import('./embedded/module.ts')).embeddedTarget,
  docker: async () => (await import('./docker/module.ts')).dockerTarget,
  live: async () => (await import('./live/module.ts')).liveTarget,
};

/** Targets registered at run time (a test's fake target); never used by the harness itself. */
const registered = new Map<string, Loader>();

/** Registers a target module under a name, for tests that run the coordinator's path with a fake target. */
export function registerTarget(name: string, module: TargetModule): () => void {
  registered.set(name, async () => module);
  return () => registered.delete(name);
}

/** The module of the target named `name` (config.target). */
export async function loadTargetModule(name: string): Promise<TargetModule> {
  const load = registered.get(name) ?? (TARGETS as Record<string, Loader | undefined>)[name];
  if (!load) throw new Error(`no target module named ${JSON.stringify(name)} (support/targets/registry.ts)`);
  return load();
}
