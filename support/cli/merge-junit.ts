/**
 * `npm run merge-junit -- --output merged.xml shard-1/junit.xml shard-2/junit.xml …`: one JUnit
 * report (<testsuites>) from the reports of a sharded run's shards (support/junit.ts mergeJUnit).
 * Refuses, exit 2, writing nothing, when a shard is missing or there twice, a test case is in two
 * reports, or a report cannot be read: a merged report that looks complete but is not would hide
 * exactly what a CI matrix gets wrong. Prints the totals.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.ts';
import { mergeJUnit } from '../junit.ts';

export const MERGE_JUNIT_USAGE = `usage: npm run merge-junit -- --output FILE REPORT...

Merges the JUnit reports of a sharded run (npm run conformance -- --shard i/n, one per shard) into
one <testsuites> report. Refuses (exit 2, nothing written) when a shard is missing or given twice,
when a test case is in two reports, or when a report cannot be read.

  --output FILE   the merged report (e.g. reports/junit.xml)
`;

export async function runMergeJUnit(argv: string[]): Promise<number> {
  let parsed: { values: { output?: string; help?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: { output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message, '`npm run merge-junit -- --help` shows the usage');
  }
  if (parsed.values.help) {
    process.stdout.write(MERGE_JUNIT_USAGE);
    return 0;
  }
  const output = parsed.values.output;
  if (!output || parsed.positionals.length === 0)
    throw new UsageError(
      'merge-junit needs --output and at least one report',
      'npm run merge-junit -- --output merged.xml shard-*/junit.xml',
    );
  const inputs = parsed.positionals.map((file) => {
    try {
      return { source: file, xml: readFileSync(file, 'utf8') };
    } catch (e) {
      throw new UsageError(`cannot read ${file}: ${(e as Error).message}`, 'name the junit.xml of every shard');
    }
  });
  const merged = mergeJUnit(inputs);
  if (merged.problems.length) {
    for (const p of merged.problems) process.stderr.write(`irsa: merge-junit: ${p}\n`);
    throw new UsageError(
      `${merged.problems.length} problem(s) in the reports; nothing written`,
      'give the junit.xml of every shard of one run, once each (a shard that did not finish has none: rerun it)',
    );
  }
  mkdirSync(path.dirname(path.resolve(output)), { recursive: true });
  writeFileSync(`${output}.tmp`, merged.xml);
  renameSync(`${output}.tmp`, output);
  process.stdout.write(
    `merged ${inputs.length} report(s) (${merged.suites.join(', ')}): ${merged.tests} tests, ${merged.failures} failed, ${merged.skipped} skipped -> ${output}\n`,
  );
  return 0;
}
