/** Where things live: the repository root, the cache, run directories. */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const cacheDir = process.env.IRSA_CACHE ?? path.join(os.homedir(), '.cache', 'irsa-conformance');
/** Run directories (state file, ledger) live outside the repo and are removed at the end of a run. */
export const runsRoot = path.join(os.tmpdir(), 'irsa-conformance', 'runs');
/** Warm environments' state files. */
export const envsRoot = path.join(os.tmpdir(), 'irsa-conformance', 'envs');
