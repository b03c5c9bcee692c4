/**
 * The pinned versions of everything the harness runs or builds (components, images, the Node
 * runtime): tools/versions.env is the one place they live, read here for every target and build.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.ts';

export type Versions = Record<string, string>;

/** tools/versions.env parsed as KEY=VALUE lines (the one place versions live). */
export function readVersions(file = join(repoRoot, 'tools/versions.env')): Versions {
  const versions: Versions = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(.*?)\s*$/.exec(line);
    if (m?.[1] && m[2] !== undefined) versions[m[1]] = m[2].replace(/^["']|["']$/g, '');
  }
  return versions;
}
