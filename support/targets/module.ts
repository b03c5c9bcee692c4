/**
 * What the harness asks of a target, as one object per target folder (support/targets/<name>/module.ts,
 * listed in support/targets/registry.ts). The coordinator, `env`, sweep and the capability probes
 * call these members and never compare a target's name: a target's special cases (a pre-flight,
 * the scenarios a mode selects, a verdict written after the run, how sweep reaches what it left)
 * are members here. Every member but `start` and `sweepConnection` is optional: a target without
 * the special case has nothing to say. Workers never see this object, only the TargetDescriptor
 * (support/targets/target.ts) that `start` returns.
 */
import type { HarnessConfig } from '../config.ts';
import type { ProcessIdentity } from '../process.ts';
import type { LoadedSetup } from '../setup/setup.ts';
import type { TargetDeath } from '../target-death.ts';
import type { StartedTarget, TargetDescriptor } from './target.ts';

/** A started (or attached) target as the coordinator holds it. */
export interface TargetHandle extends StartedTarget {
  /** True when this process started it (and stops it); false when attached to a warm environment. */
  owned: boolean;
  timings?: Record<string, number>;
  /** Its processes where they run on this machine (embedded): a failed step checks them (support/target-death.ts). */
  components?: ProcessIdentity[];
}

/** Told once when a component of the target dies while the run uses it. */
export type OnTargetDeath = (death: TargetDeath) => void;

/** What sweep works on: a target this process did not start, and how to let it go. */
export interface SweepConnection {
  descriptor: TargetDescriptor;
  close(): Promise<void>;
}

/** The scenarios a run ran, as an after-run hook sees them. */
export interface RunOutcome {
  runId: string;
  config: HarnessConfig;
  descriptor: TargetDescriptor;
  counts: { passed: number; failed: number; skipped: number; other: number };
  scenarios: { name: string; uri: string; status: string; message?: string }[];
  /** A line for the terminal (stderr). */
  print(line: string): void;
}

export interface TargetModule {
  /**
   * Bad input or an environment the target cannot start in, said before anything is created
   * (UsageError, exit 2). Runs before the dry run of the selection; `dryRun` says whether
   * anything will start at all.
   */
  preflight?(input: { config: HarnessConfig; setup: LoadedSetup; dryRun: boolean }): Promise<void>;
  /**
   * What this machine needs before the target starts (built components), once the input is known
   * to be good and something will start (also before attaching to a warm environment).
   */
  prepare?(env: NodeJS.ProcessEnv): Promise<void>;
  /** Starts (or connects to) the target; the handle's stop() undoes what this process started. */
  start(input: {
    config: HarnessConfig;
    setup: LoadedSetup;
    onProgress: (line: string) => void;
    onDeath: OnTargetDeath;
  }): Promise<TargetHandle>;
  /**
   * The tag expression a run selects with, from the one the profile and --tags give: a target
   * whose settings decide part of the selection (the live target's mode) combines them here.
   */
  selectScenarios?(config: HarnessConfig, tagExpression: string | undefined): string;
  /** The setting that selects with it, in words ("verify-only mode"), for messages about the selection. */
  selectionMode?(config: HarnessConfig): string;
  /**
   * After the suite, before the exit code is decided: what the target adds to the run's verdict
   * (a summary file, a line). `failed: true` makes the run exit 1.
   */
  afterRun?(run: RunOutcome): Promise<{ failed: boolean }>;
  /**
   * How sweep reaches what runs of this target left when no state file is named (--attach):
   * a connection, `{ nothing }` with the reason there is nothing to sweep here, or a UsageError
   * where sweeping this target is bad input.
   */
  sweepConnection(
    config: HarnessConfig,
    onProgress: (line: string) => void,
  ): Promise<SweepConnection | { nothing: string }>;
}
