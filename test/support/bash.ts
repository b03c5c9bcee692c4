/** Runs `bash <args>` in the repository with the given environment and collects its output. */
import { spawn } from 'node:child_process';
import { repoRoot } from '../../support/paths.ts';

export interface BashResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runBash(args: string[], env: NodeJS.ProcessEnv): Promise<BashResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
