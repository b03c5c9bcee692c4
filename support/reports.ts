/**
 * The run's report files (cucumber's formatters: html, junit, ndjson, the rerun file, and any
 * `--format type:file` given) are written into the run directory while the suite runs and moved
 * into the reports directory once it has finished, each atomically. An interrupted run (or one
 * killed outright) leaves no half-written, 0-byte report there, and none of a previous run that
 * could pass for its own: those are removed when the run starts. Either complete reports of what
 * ran, or none.
 */
import { copyFileSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

export interface StagedReports {
  /** Staging path -> formatter, for cucumber's `formats.files`. */
  files: Record<string, string>;
  /** Moves every staged report to its place; returns the files written. */
  publish(): string[];
}

/** `files`: final path -> formatter (as the run configuration has them). */
export function stageReports(files: Record<string, string>, runDir: string): StagedReports {
  const staging = path.join(runDir, 'reports');
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  const pairs = Object.entries(files).map(([final, formatter], i) => ({
    final,
    formatter,
    staged: path.join(staging, `${i}-${path.basename(final)}`),
  }));
  for (const p of pairs) rmSync(p.final, { force: true });
  return {
    files: Object.fromEntries(pairs.map((p) => [p.staged, p.formatter])),
    publish: () =>
      pairs.map((p) => {
        // The staging directory may be on another file system (XDG_RUNTIME_DIR): copy, then rename.
        const partial = path.join(path.dirname(p.final), `.${path.basename(p.final)}.partial`);
        mkdirSync(path.dirname(p.final), { recursive: true });
        copyFileSync(p.staged, partial);
        renameSync(partial, p.final);
        return p.final;
      }),
  };
}
