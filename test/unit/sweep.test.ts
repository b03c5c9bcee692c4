/**
 * Sweep's argument checks that need no environment: --older-than's ages (exit 2 material). The
 * sweep itself, on a real embedded environment, is test/integration/sweep.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAge } from '../../support/cli/sweep.ts';
import { isUsageError } from '../../support/errors.ts';

describe('sweep', () => {
  it('parses ages and refuses what is not one (exit 2 material)', () => {
    assert.equal(parseAge('90s'), 90_000);
    assert.equal(parseAge('30m'), 1_800_000);
    assert.equal(parseAge('2h'), 7_200_000);
    assert.equal(parseAge('7d'), 604_800_000);
    assert.throws(
      () => parseAge('two hours'),
      (e: unknown) => isUsageError(e) && /not an age/.test(e.message),
    );
  });
});
