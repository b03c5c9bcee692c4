/**
 * What a run selects, before anything starts: the cucumber configuration from the profile, the
 * options and the feature paths given (rerun files expanded, missing paths refused), and a dry run
 * of the selection that lists its scenarios and the steps no definition matches. A selection of
 * nothing is bad input, said in the user's terms (describeSelection).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfiguration, runCucumber } from '@cucumber/cucumber/api';
import type { HarnessConfig } from '../config.ts';
import { UsageError } from '../errors.ts';
import { scenarioLines } from '../outcomes.ts';
import { repoRoot } from '../paths.ts';
import type { TargetModule } from '../targets/module.ts';

const GLOB_CHARS = /[*?[\]{}]/;

/**
 * The feature paths given on the command line, with each rerun file (a base name starting with
 * `@`, as cucumber has it) replaced by the paths it lists. A feature path that does not exist, a
 * rerun file that does not exist and one that lists nothing are bad input: they would select no
 * scenario. Relative paths are the repository's (npm runs scripts there).
 */
export function expandGivenPaths(given: string[], cwd = repoRoot): string[] {
  const out: string[] = [];
  for (const p of given) {
    const file = path.resolve(cwd, p);
    if (path.basename(p).startsWith('@')) {
      if (!existsSync(file))
        throw new UsageError(
          `rerun file ${p} does not exist`,
          'a run writes the scenarios that failed to reports/@rerun.txt (its reports directory); rerun them with `npm run conformance -- reports/@rerun.txt`',
        );
      const listed = readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      if (listed.length === 0)
        throw new UsageError(
          `rerun file ${p} lists no scenario: the run that wrote it had no failed scenario`,
          'there is nothing to rerun; run the suite (`npm run conformance`) or name the features to run',
        );
      out.push(...listed);
      continue;
    }
    const withoutLines = p.replace(/(:\d+)+$/, '');
    if (!GLOB_CHARS.test(withoutLines) && !existsSync(path.resolve(cwd, withoutLines)))
      throw new UsageError(
        `feature path ${p} does not exist`,
        'name feature files or directories under features/ (a scenario by its line: features/02-application.feature:12)',
      );
    out.push(p);
  }
  return out;
}

/** Why a selection ran no scenario, in words: what the user selected with. */
export function describeSelection(
  runConfiguration: { sources: { paths: string[]; tagExpression: string; names: string[] } },
  given: string[],
  config: HarnessConfig,
  module: TargetModule,
): string {
  const parts: string[] = [];
  if (given.length) parts.push(`features ${given.join(' ')}`);
  if (runConfiguration.sources.tagExpression) parts.push(`tags ${runConfiguration.sources.tagExpression}`);
  if (runConfiguration.sources.names.length) parts.push(`--name ${runConfiguration.sources.names.join(', ')}`);
  const mode = module.selectionMode
    ? ` (the ${config.target} target's ${module.selectionMode(config)} selects by tags too)`
    : '';
  return `${parts.join(', ') || 'the profile'}${mode}`;
}

/**
 * The cucumber configuration of a run: the profile with the options given, the feature paths
 * given (rerun files expanded) in place of the profile's. Bad options or an unknown profile are
 * bad input (UsageError).
 */
export async function resolveCucumber(
  args: { profile?: string; options: string[]; positional: string[] },
  env: NodeJS.ProcessEnv,
) {
  const { profile, options, positional } = args;
  const given = expandGivenPaths(positional);
  try {
    const resolved = await loadConfiguration(
      { file: 'cucumber.js', profiles: profile ? [profile] : [], provided: options },
      { cwd: repoRoot, env },
    );
    // A user naming features (or an @rerun file) means only those, not the profile's as well.
    if (given.length > 0) resolved.runConfiguration.sources.paths = given;
    return { ...resolved, given: positional };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? '';
    if (/profile/i.test(msg))
      throw new UsageError(
        `unknown profile ${JSON.stringify(profile)}: ${msg}`,
        'profiles: embedded (default), docker, live',
      );
    throw new UsageError(
      `cannot read the cucumber options: ${msg}`,
      'see `npm run conformance -- --help` for the options the suite accepts',
    );
  }
}

export interface SelectedScenario {
  uri: string;
  line: number;
  name: string;
}

/**
 * A dry run of the selection: the scenarios it selects (uri:line and name) and every step of them
 * that no step definition matches. Nothing is started and no report is written.
 */
export async function dryRunSelection(
  runConfiguration: Parameters<typeof runCucumber>[0],
  env: NodeJS.ProcessEnv,
): Promise<{ scenarios: SelectedScenario[]; undefinedSteps: string[] }> {
  const pickleSteps = new Map<string, { text: string; uri: string }>();
  const lines = new Map<string, number>();
  const pickles = new Map<string, SelectedScenario>();
  const scenarios: SelectedScenario[] = [];
  const undefinedSteps: string[] = [];
  await runCucumber(
    {
      ...runConfiguration,
      runtime: { ...runConfiguration.runtime, dryRun: true, parallel: 0 },
      formats: { stdout: 'summary', files: {}, publish: false, options: {} },
    },
    { cwd: repoRoot, env, stdout: new (await import('node:stream')).PassThrough(), stderr: process.stderr },
    (e) => {
      if (e.parseError) {
        const loc = e.parseError.source.location;
        throw new UsageError(
          `${e.parseError.source.uri}${loc ? `:${loc.line}` : ''} is not valid Gherkin: ${e.parseError.message.split('\n')[0]}`,
          'fix the feature file (a description line may not start with @, #, or a keyword)',
        );
      }
      if (e.gherkinDocument) for (const [id, line] of scenarioLines(e.gherkinDocument)) lines.set(id, line);
      if (e.pickle) {
        for (const s of e.pickle.steps) pickleSteps.set(s.id, { text: s.text, uri: e.pickle.uri });
        const node = e.pickle.astNodeIds[e.pickle.astNodeIds.length - 1] ?? '';
        pickles.set(e.pickle.id, { uri: e.pickle.uri, line: lines.get(node) ?? 0, name: e.pickle.name });
      }
      if (e.testCase) {
        const selected = pickles.get(e.testCase.pickleId);
        if (selected) scenarios.push(selected);
        for (const ts of e.testCase.testSteps) {
          if (ts.pickleStepId && (ts.stepDefinitionIds ?? []).length === 0) {
            const s = pickleSteps.get(ts.pickleStepId);
            if (s) undefinedSteps.push(`${s.uri}: "${s.text}"`);
          }
        }
      }
    },
  );
  return { scenarios, undefinedSteps: [...new Set(undefinedSteps)] };
}

/**
 * A selection of at most this many scenarios runs in the harness's own thread unless the command
 * line says --parallel: a worker thread loads the support code again (about 2.5 CPU-seconds), which
 * a small selection does not win back. Measured on 2 cores (docs/performance.md): 5 scenarios take
 * the same time either way with 4 CPU-seconds less in one thread; 32 take 5% longer in one thread.
 */
export const ONE_THREAD_UP_TO = 12;

/** The worker threads of a run: the profile's (or --parallel's) count, or none for a small selection. */
export function workerThreads(selected: number, configured: number, cucumberOptions: string[]): number {
  const given = cucumberOptions.some((o) => o === '--parallel' || o.startsWith('--parallel='));
  return given || selected > ONE_THREAD_UP_TO ? configured : 0;
}
