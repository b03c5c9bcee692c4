/**
 * Steps and hooks race the death of a target component (support/target-death.ts): when the
 * coordinator records one, the step in flight fails at once with the component's name, how it
 * ended and its log's last lines, instead of running into its own timeout against a dead endpoint
 * or failing with a connection error that names nothing. A step that fails as the component dies
 * (before the record is written) fails with the same message and its own error after it.
 */
import path from 'node:path';
import { setDefinitionFunctionWrapper } from '@cucumber/cucumber';
import type { ProcessIdentity } from '../process.ts';
import { readRunState } from '../run-state.ts';
import { readDeath, someComponentGone, TargetDiedError } from '../target-death.ts';

const POLL_MS = 250;
/** How long a failed step waits for the record of a death it may have seen first. */
const RECORD_GRACE_MS = 3000;

let components: ProcessIdentity[] | undefined;
function targetComponents(): ProcessIdentity[] {
  components ??= readRunState().components ?? [];
  return components;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function untilTargetDies<T>(work: PromiseLike<T>, runDir: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      f();
    };
    const watch = setInterval(() => {
      const death = readDeath(runDir);
      if (death) finish(() => reject(new TargetDiedError(death)));
    }, POLL_MS);
    watch.unref();
    work.then(
      (value) => finish(() => resolve(value)),
      async (e: unknown) => {
        if (settled) return;
        if (!readDeath(runDir) && someComponentGone(targetComponents()))
          for (let waited = 0; waited < RECORD_GRACE_MS && !readDeath(runDir); waited += 50) await sleep(50);
        const death = readDeath(runDir);
        finish(() => reject(death ? new TargetDiedError(death, e) : e));
      },
    );
  });
}

setDefinitionFunctionWrapper(
  (fn: (...args: unknown[]) => unknown) =>
    function (this: unknown, ...args: unknown[]) {
      const stateFile = process.env.IRSA_RUN_STATE;
      const result = fn.apply(this, args);
      if (!stateFile || typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') return result;
      return untilTargetDies(result as PromiseLike<unknown>, path.dirname(stateFile));
    },
);
