/**
 * The image's tar writer in process: the same bytes for the same entries in any order. GNU tar
 * reading its output and `npm run image` itself are test/integration/image.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sampleEntries, sha, tarBytes } from '../support/tar-entries.ts';

describe('the tar writer', () => {
  const { entries } = sampleEntries();

  it('writes the same bytes for the same entries in any order', async () => {
    const one = await tarBytes(entries);
    const two = await tarBytes([...entries].reverse());
    assert.equal(sha(one), sha(two));
  });
});
