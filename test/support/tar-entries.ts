/**
 * Tar archives from the image's tar writer (support/image/tar.ts) in memory, and the entries both
 * tiers of the image tests write: a long path, a long link target, an owner other than root.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { type TarEntry, tarChunks } from '../../support/image/tar.ts';

export async function tarBytes(entries: TarEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of Readable.from(tarChunks(entries, 7))) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export function sampleEntries(): { long: string; entries: TarEntry[] } {
  const long = `node_modules/${'a-very-long-package-name/'.repeat(6)}index.js`;
  const entries: TarEntry[] = [
    { path: 'b/file', type: 'file', mode: 0o755, mtime: 1, content: Buffer.from('bee') },
    { path: long, type: 'file', mode: 0o644, mtime: 2, content: Buffer.from('long') },
    { path: 'a/link', type: 'symlink', mode: 0o777, mtime: 3, linkname: `../${'x'.repeat(120)}` },
    { path: 'home/nonroot', type: 'dir', mode: 0o755, uid: 65532, gid: 65532, mtime: 4 },
  ];
  return { long, entries };
}
