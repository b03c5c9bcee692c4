/**
 * The harness's log: every line passes through redact() before it reaches stderr or the log
 * file, so a token or secret handed to it by mistake is scrubbed in one place.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { redact } from './redact.ts';

let logFile: string | undefined;
let verbose = process.env.IRSA_VERBOSE === 'true' || process.env.IRSA_VERBOSE === '1';

export function configureLog(opts: { file?: string; verbose?: boolean }): void {
  if (opts.file) {
    mkdirSync(path.dirname(opts.file), { recursive: true });
    logFile = opts.file;
  }
  if (opts.verbose !== undefined) verbose = opts.verbose;
}

function write(level: string, message: string, toTerminal: boolean): void {
  const line = redact(message);
  if (logFile) appendFileSync(logFile, `${new Date().toISOString()} ${level} ${line}\n`);
  if (toTerminal) process.stderr.write(`${level === 'info' ? '' : `${level}: `}${line}\n`);
}

export const log = {
  info: (m: string) => write('info', m, true),
  warn: (m: string) => write('warning', m, true),
  error: (m: string) => write('error', m, true),
  /** Only in the log file, and on the terminal with IRSA_VERBOSE. */
  debug: (m: string) => write('debug', m, verbose),
};
