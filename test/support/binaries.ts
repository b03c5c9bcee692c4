/** Shared by the tests that start the embedded target: why they must be skipped, if they must. */
import { isUsageError } from '../../support/errors.ts';
import { resolveBinaries } from '../../support/targets/embedded/binaries.ts';

/** The reason the embedded target's binaries are missing (with the hint), or undefined when all are there. */
export function binariesMissing(): string | undefined {
  try {
    resolveBinaries();
    return undefined;
  } catch (e) {
    return isUsageError(e) ? `${e.message} (${e.hint})` : String(e);
  }
}
