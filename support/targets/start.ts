/**
 * Starts (or attaches to) the target a run asks for: the target's module (support/targets/registry.ts)
 * starts it; a warm environment's state file is attached to the same way whatever started it.
 * Everything after it works on the TargetDescriptor.
 */
import { existsSync } from 'node:fs';
import type { HarnessConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { processCommand, processIdentity, readLogTail } from '../process.ts';
import type { LoadedSetup } from '../setup/setup.ts';
import type { OnTargetDeath, TargetHandle } from './module.ts';
import { loadTargetModule } from './registry.ts';
import { lockWarmEnvironment } from './warm-lock.ts';
import { environmentAlive, readWarmState } from './warm-state.ts';

/** Starts the target the settings name, or attaches to the warm environment IRSA_ATTACH names. */
export async function startTarget(
  config: HarnessConfig,
  setup: LoadedSetup,
  onProgress: (line: string) => void,
  onDeath: OnTargetDeath = () => undefined,
): Promise<TargetHandle> {
  if (config.attach) return attachTarget(config, setup, onDeath);
  return (await loadTargetModule(config.target)).start({ config, setup, onProgress, onDeath });
}

/** A warm environment started by `npm run env -- up`: its state file holds the descriptor. */
async function attachTarget(config: HarnessConfig, setup: LoadedSetup, onDeath: OnTargetDeath): Promise<TargetHandle> {
  const file = config.attach as string;
  if (!existsSync(file)) {
    throw new UsageError(
      `no warm environment state at ${file}`,
      'start one with `npm run env -- up`, or unset IRSA_ATTACH',
    );
  }
  const state = readWarmState(file);
  if (!environmentAlive(file)) {
    throw new UsageError(
      `the warm environment in ${file} is not running (its processes are gone)`,
      'start a new one with `npm run env -- up` (it clears the stale state), or unset IRSA_ATTACH',
    );
  }
  const want = JSON.stringify(setup.spec.webhook.flags);
  const have = JSON.stringify(state.webhookFlags ?? setup.spec.webhook.flags);
  if (want !== have) {
    throw new UsageError(
      `the warm environment's webhook runs with flags ${have}, the setup ${setup.dir} wants ${want}`,
      'start a warm environment for this setup (IRSA_SETUP=... npm run env -- up) or run without IRSA_ATTACH',
    );
  }
  // One run at a time (support/targets/warm-lock.ts): a second is refused now, exit 2.
  const release = lockWarmEnvironment(file);
  const processes = state.processes ?? [];
  // Not this process's children: their exits are seen by looking, twice a second.
  const watch = setInterval(() => {
    const gone = processes.find((p) => processCommand(p.pid) !== p.command);
    if (!gone) return;
    clearInterval(watch);
    const logFile = state.descriptor.logs[gone.name];
    onDeath({
      component: gone.name,
      code: null,
      signal: null,
      ...(logFile ? { logFile } : {}),
      logTail: logFile ? readLogTail(logFile, 30) : '',
      owned: false,
      at: new Date().toISOString(),
    });
  }, 500);
  watch.unref();
  return {
    descriptor: state.descriptor,
    owned: false,
    components: processes.map((p) => processIdentity(p.pid)),
    stop: async () => {
      clearInterval(watch);
      release();
    },
  };
}
