/**
 * Feature paths and rerun files, in process: a rerun file replaced by the scenarios it lists, a
 * missing path or empty rerun file refused, the rerun file written from a run's outcomes. The
 * command's refusals (exit 2 before any target starts) and the rerun recipe on a real environment
 * are test/integration/selection.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isUsageError } from '../../support/errors.ts';
import { rerunText } from '../../support/outcomes.ts';
import { expandGivenPaths, ONE_THREAD_UP_TO, workerThreads } from '../../support/run/selection.ts';

describe('feature paths and rerun files', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'irsa-selection-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a rerun file is replaced by the scenarios it lists; feature paths and globs pass through', () => {
    const rerun = path.join(dir, '@rerun.txt');
    writeFileSync(rerun, 'features/02-application.feature:12:30\nfeatures/04-trust-scoping.feature:7\n\n');
    assert.deepEqual(expandGivenPaths([rerun, 'features/01-infrastructure.feature:15', 'features/0*.feature']), [
      'features/02-application.feature:12:30',
      'features/04-trust-scoping.feature:7',
      'features/01-infrastructure.feature:15',
      'features/0*.feature',
    ]);
  });

  it('refuses a feature path that does not exist, and a missing or empty rerun file', () => {
    const empty = path.join(dir, '@empty.txt');
    writeFileSync(empty, '\n');
    const cases: [string, RegExp][] = [
      ['features/no-such.feature', /^feature path features\/no-such\.feature does not exist$/],
      ['features/no-such.feature:12', /^feature path features\/no-such\.feature:12 does not exist$/],
      [path.join(dir, '@missing.txt'), /^rerun file .*@missing\.txt does not exist$/],
      [empty, /^rerun file .*@empty\.txt lists no scenario: the run that wrote it had no failed scenario$/],
    ];
    for (const [given, message] of cases)
      assert.throws(
        () => expandGivenPaths([given]),
        (e: unknown) => isUsageError(e) && message.test(e.message),
      );
  });

  it('the rerun file lists the failed scenarios by line, not the passed or skipped ones', () => {
    const o = (uri: string, line: number, status: string) => ({ name: `${uri}:${line}`, uri, line, status });
    assert.equal(
      rerunText([
        o('features/a.feature', 3, 'FAILED'),
        o('features/a.feature', 9, 'PASSED'),
        o('features/b.feature', 5, 'SKIPPED'),
        o('features/a.feature', 12, 'UNDEFINED'),
        o('features/c.feature', 7, 'FAILED'),
      ]),
      'features/a.feature:3:12\nfeatures/c.feature:7\n',
    );
    assert.equal(rerunText([o('features/a.feature', 3, 'PASSED')]), '');
  });
});

describe('worker threads of a run', () => {
  it("none for a small selection, the profile's count for a larger one, and --parallel always wins", () => {
    assert.equal(workerThreads(5, 2, []), 0);
    assert.equal(workerThreads(ONE_THREAD_UP_TO, 2, ['--tags', '@x']), 0);
    assert.equal(workerThreads(ONE_THREAD_UP_TO + 1, 2, []), 2);
    assert.equal(workerThreads(69, 2, []), 2);
    assert.equal(workerThreads(5, 2, ['--parallel', '2']), 2);
    assert.equal(workerThreads(5, 3, ['--parallel=3']), 3);
    assert.equal(workerThreads(69, 0, ['--parallel', '0']), 0);
  });
});
