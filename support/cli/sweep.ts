/**
 * `npm run sweep`: finds what earlier runs left behind and deletes it.
 *   sweep [--run-id ID] [--older-than 2h] [--dry-run] [--attach STATE_FILE] [--target embedded|live]
 *
 * What counts as left behind is decided by the harness's marks only, never by names:
 *   AWS   S3 buckets (bucket tagging), IAM roles, customer-managed policies, OIDC identity
 *         providers and users (their tags) carrying TAG_RUN_ID;
 *   k8s   namespaces, cluster-scoped objects (webhook configurations, cluster roles and bindings)
 *         and a few namespaced kinds outside those namespaces carrying LABEL_RUN_ID.
 * Anything without the mark is never touched. --run-id narrows to one run; --older-than keeps
 * what is younger than the age (from TAG_CREATED, else the resource's creation time; a resource
 * whose age cannot be told is kept). Runs in progress on this machine (a run directory whose
 * process runs) are kept unless named with --run-id.
 *
 * First, on this machine (support/local-leftovers.ts): what runs killed outright left, i.e. run
 * directories and environments' work directories whose process is gone, processes still using
 * such a work directory, a warm environment's state whose processes are gone. A killed run's id is
 * then no longer in progress, and what it left on the target is swept with the rest.
 *
 * Deletion uses support/cleanup.ts (deleteWithRetries, as the ledger flush deletes), in
 * reverse dependency order: webhook configurations, namespaced objects, namespaces, roles (their
 * policies detached), users, policies, identity providers, buckets (emptied).
 *
 * The target: a live connection (IRSA_TARGET=live and its settings), or for the embedded target a
 * warm environment's state file (--attach / IRSA_ATTACH, else the one `npm run env -- up` made).
 * An embedded target started by a run dies with that run (its components with their parent):
 * what it leaves is on this machine, swept above.
 * Exit codes: 0 done (or nothing found), 1 some deletion or listing failed (the sweep is
 * incomplete: it says where), 2 bad input.
 *
 * This file parses the arguments, runs the two phases and prints; the finders are
 * support/sweep/find-aws.ts and find-kube.ts, the filter and the deletion support/sweep/sweep.ts,
 * the connection to the target support/sweep/target.ts.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ParseArgsOptionsConfig } from 'node:util';
import { createClients } from '../clients.ts';
import { type HarnessConfig, loadConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { findLocalLeftovers, removeLocalLeftovers } from '../local-leftovers.ts';
import { checkPrivateDir, envsRoot, runsRoot, stateRoot } from '../paths.ts';
import { deleteLeftovers, findLeftovers } from '../sweep/sweep.ts';
import { sweepTarget } from '../sweep/target.ts';
import type { SweepConnection } from '../targets/module.ts';
import { environmentAlive } from '../targets/warm-state.ts';
import { type CommandSpec, parseCommand } from './args.ts';

/** "90s", "30m", "2h", "7d" (or a bare number of seconds) -> milliseconds. */
export function parseAge(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `--older-than ${JSON.stringify(text)} is not an age`,
      'write a number with a unit: 90s, 30m, 2h or 7d',
    );
  }
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit * 1000;
}

interface SweepArgs {
  runId?: string;
  olderThanMs?: number;
  olderThanText?: string;
  dryRun: boolean;
  overrides: Record<string, unknown>;
}

export const SWEEP_COMMAND = {
  command: 'npm run sweep --',
  synopsis: '[--run-id ID] [--older-than AGE] [--dry-run] [--attach STATE_FILE] [--target embedded|live]',
  description: `
Finds what earlier runs left behind (resources carrying the harness's run-id tag or label, never
anything else) and deletes it, in reverse dependency order.

  --run-id ID         only this run's resources (also a run still in progress on this machine)
  --older-than AGE    only resources at least this old: 90s, 30m, 2h, 7d
  --dry-run           list what would be deleted; delete nothing
  --attach FILE       the embedded target: a warm environment's state file (default: the one
                      \`npm run env -- up\` made)
  --target NAME       embedded (a warm environment) or live (IRSA_TARGET=live and its settings)

Exit codes: 0 done or nothing found, 1 some deletions failed, 2 bad input.`,
  options: {
    'run-id': { type: 'string' },
    'older-than': { type: 'string' },
    'dry-run': { type: 'boolean' },
    attach: { type: 'string' },
    target: { type: 'string', short: 'p' },
  },
} satisfies CommandSpec<ParseArgsOptionsConfig>;

/** The parsed arguments; undefined when --help was answered. */
function parseSweepArgs(argv: string[], out: (text: string) => void): SweepArgs | undefined {
  const parsed = parseCommand(SWEEP_COMMAND, argv, out);
  if (!parsed) return undefined;
  const v = parsed.values;
  const args: SweepArgs = { dryRun: v['dry-run'] === true, overrides: {} };
  if (v['run-id'] !== undefined) {
    if (!/^[a-z0-9-]{1,40}$/.test(v['run-id']))
      throw new UsageError(
        `--run-id ${JSON.stringify(v['run-id'])} is not a run id`,
        'run ids look like ic1a2b3c (printed at the start of a run)',
      );
    args.runId = v['run-id'];
  }
  if (v['older-than'] !== undefined) {
    args.olderThanMs = parseAge(v['older-than']);
    args.olderThanText = v['older-than'];
  }
  if (v.attach !== undefined) args.overrides.attach = path.resolve(v.attach);
  if (v.target !== undefined) args.overrides.target = v.target;
  return args;
}

export interface SweepOptions {
  env?: NodeJS.ProcessEnv;
  out?: (line: string) => void;
}

export async function runSweep(argv: string[], opts: SweepOptions = {}): Promise<number> {
  const out = opts.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const args = parseSweepArgs(argv, (text) => out(text.trimEnd()));
  if (!args) return 0;
  const config = loadConfig(opts.env ?? process.env, args.overrides);
  // Interrupted, it stops at once with 130/143 (exit handlers remove its temporary kubeconfig);
  // what it had not deleted yet is found by the next sweep.
  const onSignal = (signal: NodeJS.Signals) => {
    out(`sweep: ${signal}: stopped; run it again to delete what is left`);
    process.exit(signal === 'SIGTERM' ? 143 : 130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await sweepAll(config, args, out);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function sweepAll(config: HarnessConfig, args: SweepArgs, out: (line: string) => void): Promise<number> {
  // 1. This machine: what killed runs left (run directories, environments' work directories and
  // processes, stale warm state); a run whose process is gone is not in progress any more.
  const local = await sweepLocal(args.dryRun, out);
  // 2. The target: a warm environment, or the live cluster and account.
  const target = await sweepTarget(config, out);
  if ('nothing' in target) {
    out(target.nothing);
    return local.exitCode;
  }
  const remote = await sweepRemote(config, args, target, local.liveRunIds, out);
  return Math.max(local.exitCode, remote);
}

/** Finds (and unless dryRun removes) what dead harness processes left on this machine. */
async function sweepLocal(
  dryRun: boolean,
  out: (line: string) => void,
): Promise<{ exitCode: number; liveRunIds: Set<string> }> {
  // Read, never created here (a dry run writes nothing): trusted only as this user's 0700 directories.
  for (const dir of [stateRoot, runsRoot, envsRoot]) if (existsSync(dir)) checkPrivateDir(dir);
  const found = findLocalLeftovers({ runsRoot, envsRoot }, environmentAlive);
  for (const p of found.problems) out(`warning: ${p}`);
  for (const k of found.kept) out(`kept ${k.what}: ${k.why}`);
  if (found.found.length === 0) {
    out('nothing left on this machine by killed runs');
    return { exitCode: found.problems.length ? 1 : 0, liveRunIds: found.liveRunIds };
  }
  if (dryRun) {
    for (const l of found.found) out(`would remove ${l.what}`);
    return { exitCode: found.problems.length ? 1 : 0, liveRunIds: found.liveRunIds };
  }
  const { stopEnvironmentFromState } = await import('../targets/embedded/index.ts');
  const report = await removeLocalLeftovers(found.found, stopEnvironmentFromState);
  for (const r of report.removed) out(`removed ${r}`);
  for (const f of report.failed) out(`could not remove ${f.what}: ${f.error}`);
  return { exitCode: report.failed.length || found.problems.length ? 1 : 0, liveRunIds: found.liveRunIds };
}

/** Sweeps the target; exit code 1 when a deletion failed or a listing did (the sweep is incomplete there). */
async function sweepRemote(
  config: HarnessConfig,
  args: SweepArgs,
  target: SweepConnection,
  liveRunIds: Set<string>,
  out: (line: string) => void,
): Promise<number> {
  const clients = createClients(target.descriptor);
  try {
    const result = await findLeftovers(clients, target.descriptor, {
      ...(args.runId ? { runId: args.runId } : {}),
      ...(args.olderThanMs !== undefined ? { olderThanMs: args.olderThanMs } : {}),
      protectedRunIds: liveRunIds,
    });
    const scope = [
      args.runId ? `run ${args.runId}` : 'any run',
      args.olderThanText ? `older than ${args.olderThanText}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    for (const p of result.problems) out(`warning: ${p}`);
    for (const s of result.skipped) out(`kept ${s.what}: ${s.why}`);
    // What could not be listed was not looked at: the sweep is incomplete, whatever else it found.
    const incomplete = result.problems.length
      ? `; incomplete: ${result.problems.length} listing(s) failed (warnings above), run it again once they can succeed`
      : '';
    const listingCode = result.problems.length ? 1 : 0;
    if (result.found.length === 0) {
      out(`nothing to sweep on the ${target.descriptor.name} target (${scope})${incomplete}`);
      return listingCode;
    }
    if (args.dryRun) {
      for (const l of result.found)
        out(`would delete ${l.what} (run ${l.runId}${l.createdAt ? `, created ${l.createdAt}` : ''})`);
      out(
        `${result.found.length} resource(s) would be deleted (${scope}); run without --dry-run to delete them${incomplete}`,
      );
      return listingCode;
    }
    const report = await deleteLeftovers(clients, result.found, config.timeouts.cleanupSeconds);
    for (const d of report.deleted) out(`deleted ${d}`);
    for (const f of report.failed) out(`could not delete ${f.what}: ${f.error}`);
    out(`swept ${report.deleted.length} resource(s), ${report.failed.length} failed (${scope})${incomplete}`);
    return report.failed.length > 0 ? 1 : listingCode;
  } finally {
    clients.destroy();
    await target.close();
  }
}
