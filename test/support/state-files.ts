/**
 * Warm state files planted by the tests of the per-user state (test/unit/private-dirs.test.ts
 * checks how they are refused in process, test/integration/private-dirs.test.ts what the commands
 * do with them), and the fresh 0700 directories they are planted in.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A scratch root and a maker of fresh 0700 directories under it (the caller removes the root). */
export function scratch(prefix: string): { root: string; fresh: () => string } {
  const root = mkdtempSync(path.join(tmpdir(), prefix));
  let n = 0;
  const fresh = () => {
    const d = path.join(root, `t${n++}`);
    mkdirSync(d, { mode: 0o700 });
    return d;
  };
  return { root, fresh };
}

/** A state file as `npm run env -- up` writes it, with a kubeconfig of our choosing. */
export function plant(dir: string, kubeconfig: string, pids: number[] = [process.pid]): string {
  const kc = path.join(dir, 'admin.kubeconfig');
  writeFileSync(kc, kubeconfig, { mode: 0o600 });
  const file = path.join(dir, 'warm.json');
  writeFileSync(
    file,
    JSON.stringify({
      envId: 'envplanted',
      processes: pids.map((pid) => ({ name: 'x', pid, command: 'x' })),
      descriptor: { name: 'embedded', kubeconfigPath: kc, aws: { region: 'us-east-1', forcePathStyle: true } },
    }),
    { mode: 0o600 },
  );
  return file;
}
