/**
 * Starts (or attaches to) the target a run asks for. The only place that knows the targets by
 * name; everything after it works on the TargetDescriptor.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { HarnessConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { newRunId } from '../names.ts';
import { type ProcessIdentity, processCommand, processIdentity, readLogTail } from '../process.ts';
import type { LoadedSetup } from '../setup/setup.ts';
import type { TargetDeath } from '../target-death.ts';
import type { StartedTarget } from './target.ts';
import { lockWarmEnvironment } from './warm-lock.ts';
import { readWarmState } from './warm-state.ts';

export interface TargetHandle extends StartedTarget {
  /** True when this process started it (and stops it); false when attached to a warm environment. */
  owned: boolean;
  timings?: Record<string, number>;
  /** Its processes where they run on this machine (embedded): a failed step checks them (support/target-death.ts). */
  components?: ProcessIdentity[];
}

/** Told once when a component of the target dies while the run uses it. */
export type OnTargetDeath = (death: TargetDeath) => void;

export function discoveryBucketFor(envId: string): string {
  return `irsa-oidc-${envId}`;
}

/**
 * What an embedded target for this configuration and setup starts with: a new environment id, its
 * logs and discovery bucket, the setup's webhook flags and the `embedded` settings. A run's own
 * target and a warm environment (`npm run env -- up`) start the same way.
 */
export function embeddedOptionsFor(config: HarnessConfig, setup: LoadedSetup) {
  const envId = newRunId().replace(/^ic/, 'env');
  return {
    logsDir: path.join(config.reportsDir, 'logs', envId),
    discoveryBucket: discoveryBucketFor(envId),
    webhookFlags: setup.spec.webhook.flags,
    region: config.region,
    envId,
    startTimeoutMs: config.timeouts.startSeconds * 1000,
    settings: config.embedded,
  };
}

export async function startTarget(
  config: HarnessConfig,
  setup: LoadedSetup,
  onProgress: (line: string) => void,
  onDeath: OnTargetDeath = () => undefined,
): Promise<TargetHandle> {
  if (config.attach) return attachTarget(config, setup, onDeath);
  switch (config.target) {
    case 'embedded': {
      const { startEmbeddedTarget } = await import('./embedded/index.ts');
      const t = await startEmbeddedTarget({
        ...embeddedOptionsFor(config, setup),
        onProgress,
        onUnexpectedExit: (component, logTail, exit) =>
          onDeath({
            component,
            code: exit.code,
            signal: exit.signal,
            logFile: exit.logFile,
            logTail,
            owned: true,
            at: new Date().toISOString(),
          }),
      });
      const components = t.state.processes.map((p) => processIdentity(p.pid));
      return { ...t, owned: true, timings: t.timings, components };
    }
    case 'docker': {
      const { startDockerTarget } = await import('./docker/index.ts');
      const t = await startDockerTarget(config, setup, onProgress);
      return { ...t, owned: true };
    }
    case 'live': {
      const { connectLiveTarget } = await import('./live/index.ts');
      const t = await connectLiveTarget(config, setup, onProgress);
      return { ...t, owned: false };
    }
  }
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
  const { environmentAlive } = await import('../cli/env.ts');
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
