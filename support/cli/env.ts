/**
 * `npm run env -- up|down|status`: a warm embedded environment for fast iteration.
 *   up      starts the embedded target for the setup (IRSA_SETUP) and leaves it running;
 *           prints the IRSA_ATTACH setting that makes runs use it, and how to stop it
 *   down    stops it: its processes, ports and temporary directories are gone afterwards
 *   status  says whether one is running and where
 * The state file lives in this user's state directory (support/paths.ts): one warm environment per user.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { ParseArgsOptionsConfig } from 'node:util';
import { loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { ensurePrivateDir, envsRoot } from '../paths.ts';
import { checkSetup } from '../setup/check.ts';
import { loadSetup } from '../setup/setup.ts';
import { embeddedOptionsFor } from '../targets/embedded/options.ts';
import { ensureEmbeddedSetup } from '../targets/embedded/setup.ts';
import { checkPendingDeletions, describeStuck, readPendingDeletions } from '../targets/warm-deletions.ts';
import { alivePids, environmentAlive, readWarmState, WARM_STATE, type WarmState } from '../targets/warm-state.ts';
import { type CommandSpec, parseCommand, usageText } from './args.ts';

export const ENV_COMMAND = {
  command: 'npm run env --',
  synopsis: 'up|down|status',
  description: `
A warm embedded environment for fast iteration: one per machine user, outliving the command.

  up       start the embedded target for the setup (IRSA_SETUP) and leave it running; prints the
           IRSA_ATTACH setting that makes runs use it, and how to stop it
  down     stop it: its processes, ports and temporary directories are gone afterwards
  status   say whether one is running, and confirm that namespaces earlier runs handed over are gone

Exit codes: 0 ok, 1 status found a dead process or a namespace that stays, 2 bad input.`,
  options: {},
  positionals: ['verb'],
} satisfies CommandSpec<ParseArgsOptionsConfig>;

export async function runEnv(argv: string[]): Promise<number> {
  const parsed = parseCommand(ENV_COMMAND, argv);
  const sub = parsed?.positionals[0];
  if (!parsed || sub === undefined) {
    // Bare `npm run env`: the verbs, as --help gives them.
    if (parsed) process.stdout.write(usageText(ENV_COMMAND));
    return 0;
  }
  const { startEmbeddedTarget, stopEnvironmentFromState } = await import('../targets/embedded/index.ts');
  switch (sub) {
    case 'up': {
      if (existsSync(WARM_STATE) && !environmentAlive(WARM_STATE)) {
        // Left by a machine restart or a killed process: clear what remains of it.
        process.stderr.write(`irsa: the warm environment in ${WARM_STATE} is no longer running; clearing its state\n`);
        await stopEnvironmentFromState(WARM_STATE);
      }
      if (existsSync(WARM_STATE)) {
        throw new UsageError(
          `a warm environment is already running (state ${WARM_STATE})`,
          'stop it with `npm run env -- down` first',
        );
      }
      const config = loadConfig(process.env, { target: 'embedded' });
      const setup = loadSetup(config.setupDir);
      checkSetup(setup);
      await ensureEmbeddedSetup();
      ensurePrivateDir(envsRoot);
      const started = Date.now();
      const t = await startEmbeddedTarget({
        ...embeddedOptionsFor(config, setup),
        stateFile: WARM_STATE,
        keepAliveAfterExit: true,
        // Interrupted while it starts, it stops what it started (and the signal ends this process):
        // a warm environment exists only once it is up.
        handleSignals: true,
      });
      const envId = t.descriptor.envId;
      // For whoever reads the state file: the setup the environment was started for.
      const state = JSON.parse(readFileSync(t.statePath, 'utf8')) as Record<string, unknown>;
      writeFileSync(t.statePath, JSON.stringify({ ...state, setupDir: setup.dir }, null, 2), { mode: 0o600 });
      process.stdout.write(
        [
          `warm embedded environment ${envId} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
          `  state: ${t.statePath}`,
          `  use it:  IRSA_ATTACH=${t.statePath} npm run conformance`,
          '  stop it: npm run env -- down',
          '',
        ].join('\n'),
      );
      // The components are detached and outlive this process; leave now instead of waiting on
      // the handles this process still holds to them.
      return process.exit(0);
    }
    case 'down': {
      if (!existsSync(WARM_STATE)) {
        process.stdout.write('no warm environment is running\n');
        return 0;
      }
      // A signal while it stops does not leave half an environment: the stop finishes first.
      let interrupted: NodeJS.Signals | undefined;
      const defer = (signal: NodeJS.Signals) => {
        interrupted ??= signal;
        process.stderr.write(`env down: ${signal}: finishing the stop first\n`);
      };
      process.on('SIGINT', defer);
      process.on('SIGTERM', defer);
      try {
        await stopEnvironmentFromState(WARM_STATE);
      } finally {
        process.off('SIGINT', defer);
        process.off('SIGTERM', defer);
      }
      process.stdout.write('warm environment stopped; no process, port or temporary directory of it remains\n');
      return interrupted ? (interrupted === 'SIGTERM' ? 143 : 130) : 0;
    }
    case 'status': {
      if (!existsSync(WARM_STATE)) {
        process.stdout.write('no warm environment is running\n');
        return 0;
      }
      const s = readWarmState(WARM_STATE) as WarmState & {
        envId: string;
        processes: { name: string; pid: number }[];
        startedAt: string;
      };
      const living = alivePids(s.processes.map((p) => p.pid));
      const up = s.processes.filter((p) => living.includes(p.pid)).map((p) => p.name);
      process.stdout.write(
        `warm environment ${s.envId} since ${s.startedAt}: ${up.length}/${s.processes.length} processes alive (${up.join(', ')})\n  IRSA_ATTACH=${WARM_STATE}\n`,
      );
      if (up.length !== s.processes.length) return 1;
      // Namespaces that runs handed over to the environment (support/targets/warm-deletions.ts).
      if (readPendingDeletions(WARM_STATE).length === 0) return 0;
      const config = loadConfig(process.env, { target: 'embedded' });
      const { createClients } = await import('../clients.ts');
      const c = createClients(s.descriptor);
      try {
        const check = await checkPendingDeletions(WARM_STATE, c, config.timeouts.cleanupSeconds);
        for (const t of check.terminating)
          process.stdout.write(`  terminating: namespace(s) ${t.namespaces.join(', ')} of run ${t.runId}\n`);
        for (const line of describeStuck(check)) process.stdout.write(`  ${line}\n`);
        return check.stuck.length ? 1 : 0;
      } finally {
        c.destroy();
      }
    }
    default:
      throw new UsageError(`unknown env command ${JSON.stringify(sub)}`, 'use `npm run env -- up`, `down` or `status`');
  }
}
