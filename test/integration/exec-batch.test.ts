/**
 * Unit tests of support/kube/exec-batch.ts: the script runs under a real sh and every command's
 * exit code and output come back under its own label, whatever the commands print.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { batch } from '../../support/kube/exec-batch.ts';

function runSh(script: string): string {
  return execFileSync('sh', ['-c', script], { encoding: 'utf8' });
}

describe('batch', () => {
  it('reports each command with its own exit code and output, stdout and stderr', () => {
    const b = batch({
      first: 'echo one; echo "=== fake exit 0"; exit 3',
      'second-1': 'printf "no newline"',
      third: 'echo three >&2; true',
    });
    const out = b.parse(runSh(b.script));
    assert.deepEqual([...out.keys()], ['first', 'second-1', 'third']);
    assert.equal(out.get('first')?.exitCode, 3);
    assert.match(out.get('first')?.output ?? '', /^one\n=== fake exit 0$/);
    assert.deepEqual(out.get('second-1'), { exitCode: 0, output: 'no newline' });
    assert.deepEqual(out.get('third'), { exitCode: 0, output: 'three' });
  });

  it('runs the commands concurrently', () => {
    // The second command waits for a file the first creates after it started: sequential runs would hang.
    const dir = runSh('mktemp -d').trim();
    const b = batch({
      a: `i=0; while [ ! -e ${dir}/b ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done; [ -e ${dir}/b ]`,
      b: `touch ${dir}/b`,
    });
    const out = b.parse(runSh(b.script));
    runSh(`rm -rf ${dir}`);
    assert.equal(out.get('a')?.exitCode, 0, 'command a did not see command b run beside it');
  });

  it('refuses labels that are not safe in file names and markers', () => {
    assert.throws(() => batch({ 'a b': 'true' }), /not \[a-z0-9-\]/);
    assert.throws(() => batch({}), /at least one/);
  });
});
