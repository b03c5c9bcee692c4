import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCounts } from '../support/cli/test.ts';

describe("the test command reads each stage's own counts", () => {
  it("takes node's final tally over counts its integration tests printed earlier", () => {
    const out = 'Scenarios: 11 passed, 2 failed, 0 skipped\n✔ a test\nℹ tests 293\nℹ pass 290\nℹ fail 1\nℹ skipped 2\n';
    assert.deepEqual(parseCounts(out), { passed: 290, failed: 1, skipped: 2 });
  });

  it("takes a plain closing line printed after node's tally", () => {
    assert.deepEqual(parseCounts('ℹ pass 3\nℹ fail 0\nselftest: 15 passed, 1 failed\n'), {
      passed: 15,
      failed: 1,
      skipped: 0,
    });
  });

  it("reads the suite's scenario line with skips", () => {
    assert.deepEqual(parseCounts('Scenarios: 54 passed, 0 failed, 6 skipped\n'), { passed: 54, failed: 0, skipped: 6 });
  });

  it('finds nothing in output without counts', () => {
    assert.equal(parseCounts('Checked 172 files in 278ms. No fixes applied.\n'), undefined);
  });
});
