/**
 * The account guard (checkAccountGuard) in process. connectLiveTarget running it before anything
 * else, against a fake API, is test/integration/live-guard.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../support/errors.ts';
import { checkAccountGuard } from '../../support/targets/live/guard.ts';

const caller = { account: '111122223333', arn: 'arn:aws:iam::111122223333:user/alice' };

describe('checkAccountGuard', () => {
  it('refuses a mismatch, naming both account ids', () => {
    assert.throws(
      () => checkAccountGuard({ mode: 'provision', confirmedAccountId: '444455556666', caller }),
      (e: unknown) =>
        e instanceof UsageError &&
        /111122223333/.test(e.message) &&
        /444455556666/.test(e.message) &&
        e.hint.length > 0,
    );
  });
  it('refuses a mismatch in verify-only mode too (the credentials are not the ones the user thinks)', () => {
    assert.throws(
      () => checkAccountGuard({ mode: 'verify-only', confirmedAccountId: '444455556666', caller }),
      UsageError,
    );
  });
  it('refuses provision mode without a confirmed account, suggesting the caller account', () => {
    assert.throws(
      () => checkAccountGuard({ mode: 'provision', confirmedAccountId: undefined, caller }),
      (e: unknown) => e instanceof UsageError && /IRSA_AWS_ACCOUNT_ID/.test(e.message) && /111122223333/.test(e.hint),
    );
  });
  it('lets verify-only go on without a confirmation, and a match in either mode', () => {
    checkAccountGuard({ mode: 'verify-only', confirmedAccountId: undefined, caller });
    checkAccountGuard({ mode: 'provision', confirmedAccountId: '111122223333', caller });
    checkAccountGuard({ mode: 'verify-only', confirmedAccountId: '111122223333', caller });
  });
});
