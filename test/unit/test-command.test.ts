import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BESIDE_OTHERS, failingTests, IN_PAIRS, parseCounts, testFiles } from '../../support/cli/test.ts';

describe("the test command reads each stage's own counts", () => {
  it("takes node's final tally over counts its integration tests printed earlier", () => {
    const out = 'Scenarios: 11 passed, 2 failed, 0 skipped\n✔ a test\nℹ tests 293\nℹ pass 290\nℹ fail 1\nℹ skipped 2\n';
    assert.deepEqual(parseCounts(out, 'node'), { passed: 290, failed: 1, skipped: 2 });
  });

  it("keeps node's tally when the failing tests, printed after it, quote a child's counts", () => {
    const out = [
      'ℹ tests 310',
      'ℹ pass 307',
      'ℹ fail 2',
      'ℹ skipped 1',
      '✖ failing tests:',
      'test at test/x.test.ts:1:1',
      '✖ a run (12.3ms)',
      '  AssertionError: exit code 0\n  stderr: 0 passed, 1 failed, 1 skipped',
      '',
    ].join('\n');
    assert.deepEqual(parseCounts(out, 'node'), { passed: 307, failed: 2, skipped: 1 });
  });

  it('takes the last plain closing line of a plain stage', () => {
    assert.deepEqual(parseCounts('13/13 faults caught\nselftest: 15 passed, 1 failed\n', 'plain'), {
      passed: 15,
      failed: 1,
      skipped: 0,
    });
  });

  it("reads the suite's scenario line with skips", () => {
    assert.deepEqual(parseCounts('Scenarios: 54 passed, 0 failed, 6 skipped\n', 'plain'), {
      passed: 54,
      failed: 0,
      skipped: 6,
    });
  });

  it('finds nothing in output without counts', () => {
    assert.equal(parseCounts('Checked 172 files in 278ms. No fixes applied.\n', 'plain'), undefined);
    assert.equal(parseCounts('Scenarios: 3 passed, 0 failed\n', 'node'), undefined);
  });
});

describe('the test command repeats the failing tests at the end', () => {
  const out = [
    'ℹ pass 1',
    'ℹ fail 2',
    '',
    '✖ failing tests:',
    '',
    'test at test/a.test.ts:4:3',
    '✖ fails deep (1.489953ms)',
    "  AssertionError [ERR_ASSERTION]: the run's resources are deleted",
    '  + actual - expected',
    '  ',
    '  + [',
    "  +   'namespace x'",
    '  + ]',
    '  - []',
    '  ',
    '      at TestContext.<anonymous> (file:///tmp/a.test.ts:4:35)',
    '      at Test.run (node:internal/test_runner/test:1402:25) {',
    '    generatedMessage: false,',
    "    code: 'ERR_ASSERTION',",
    '  }',
    '',
    'test at test/a.test.ts:5:3',
    '✖ fails plain (0.088152ms)',
    '  Error: boom',
    '  second line',
    '      at TestContext.<anonymous> (file:///tmp/a.test.ts:5:35)',
    '',
  ].join('\n');

  it('names each with where it is and the first lines of its error, without the stack', () => {
    assert.deepEqual(failingTests(out), [
      {
        where: 'test/a.test.ts:4:3',
        name: 'fails deep',
        cause: [
          "AssertionError [ERR_ASSERTION]: the run's resources are deleted",
          '+ actual - expected',
          '+ [',
          "+   'namespace x'",
          '+ ]',
          '- []',
        ],
      },
      { where: 'test/a.test.ts:5:3', name: 'fails plain', cause: ['Error: boom', 'second line'] },
    ]);
  });

  it('cuts long causes and finds nothing when all passed', () => {
    const [first] = failingTests(out, 1, 20);
    assert.deepEqual(first?.cause, ['AssertionError [ERR…']);
    assert.deepEqual(failingTests('ℹ pass 3\nℹ fail 0\n'), []);
  });
});

describe('the test tiers', () => {
  it('the files the integration tier runs beside others or in pairs are integration test files, in one batch each', () => {
    const integration = new Set(testFiles('integration').map((f) => path.basename(f, '.test.ts')));
    assert.deepEqual(
      [...BESIDE_OTHERS, ...IN_PAIRS].filter((n) => !integration.has(n)),
      [],
    );
    assert.deepEqual(
      [...BESIDE_OTHERS].filter((n) => IN_PAIRS.has(n)),
      [],
    );
  });

  it('no test file sits outside a tier', () => {
    assert.ok(testFiles('unit').length > 0 && testFiles('integration').length > 0);
    assert.deepEqual(testFiles('.'), []);
  });
});
