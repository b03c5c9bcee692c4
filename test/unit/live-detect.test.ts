/**
 * The webhook flag parser of dialect detection (parseFlags). Detection against a fake Kubernetes
 * API (OpenShift, a plain cluster) is test/integration/live-detect.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFlags } from '../../support/targets/live/detect.ts';

describe('parseFlags', () => {
  it('reads --a=b, --a b and bare switches', () => {
    assert.deepEqual(parseFlags(['/webhook', '--a=b', '--c', 'd', '--e', '--f=']), {
      a: 'b',
      c: 'd',
      e: 'true',
      f: '',
    });
  });
});
