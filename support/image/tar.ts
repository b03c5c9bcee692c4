/**
 * Tar archives made the same way every time, for OCI image layers and archives (support/image/oci.ts):
 * entries in byte order of their paths, every missing parent directory added, owners, modes and
 * modification times given by the caller (never taken from the machine), no user or group names,
 * ustar headers with a PAX record where a path or link target does not fit. The same entries give
 * the same bytes on any machine, whatever the files' times or the directory order on disk.
 *
 * Also a reader for what the writer (or any ustar/PAX tar) wrote: an OCI archive's index.json and
 * blobs are read back with it (tests, and the real node's image import).
 */
import {
  closeSync,
  createReadStream,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
} from 'node:fs';
import path from 'node:path';

export interface TarEntry {
  /** Relative path, '/'-separated, no leading '/' or './'. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Permission bits (e.g. 0o755). */
  mode: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** A file's content: bytes, or the path of a file to read (its size is taken when written). */
  content?: Buffer | { file: string; size: number };
  /** A symbolic link's target. */
  linkname?: string;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  // width - 1 digits and a NUL, as ustar writers do.
  const s = value.toString(8);
  if (s.length > width - 1) throw new Error(`tar: ${value} does not fit in a ${width}-byte header field`);
  return `${s.padStart(width - 1, '0')}\0`;
}

function header(fields: {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
}): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(fields.name, 0, 100, 'utf8');
  b.write(octal(fields.mode, 8), 100, 'ascii');
  b.write(octal(fields.uid, 8), 108, 'ascii');
  b.write(octal(fields.gid, 8), 116, 'ascii');
  b.write(octal(fields.size, 12), 124, 'ascii');
  b.write(octal(fields.mtime, 12), 136, 'ascii');
  b.write('        ', 148, 'ascii');
  b.write(fields.typeflag, 156, 'ascii');
  b.write(fields.linkname, 157, 100, 'utf8');
  b.write('ustar\u000000', 257, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

/** A PAX extended-header record: "<length> <key>=<value>\n", the length counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

function checkPath(p: string): void {
  if (
    !p ||
    p.startsWith('/') ||
    p.startsWith('./') ||
    p.endsWith('/') ||
    p.split('/').some((s) => s === '..' || s === '')
  )
    throw new Error(`tar: ${JSON.stringify(p)} is not a clean relative path`);
}

/**
 * The entries as they will be written: sorted by path (bytes), every parent directory present
 * (added as 0755 root-owned directories with the mtime given), no path twice.
 */
export function normalizeEntries(entries: readonly TarEntry[], dirMtime: number): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const e of entries) {
    checkPath(e.path);
    if (byPath.has(e.path)) throw new Error(`tar: ${e.path} given twice`);
    byPath.set(e.path, e);
  }
  for (const e of [...byPath.values()]) {
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const existing = byPath.get(dir);
      if (existing && existing.type !== 'dir') throw new Error(`tar: ${dir} is a ${existing.type} and a directory`);
      if (!existing) byPath.set(dir, { path: dir, type: 'dir', mode: 0o755, mtime: dirMtime });
    }
  }
  return [...byPath.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

/** The archive's bytes, block by block: headers, contents (files streamed from disk), the end marker. */
export async function* tarChunks(entries: readonly TarEntry[], dirMtime = 0): AsyncGenerator<Buffer> {
  for (const e of normalizeEntries(entries, dirMtime)) {
    const name = e.type === 'dir' ? `${e.path}/` : e.path;
    const linkname = e.linkname ?? '';
    const size = e.type !== 'file' ? 0 : Buffer.isBuffer(e.content) ? e.content.length : (e.content?.size ?? 0);
    const typeflag = e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2';
    let headerName = name;
    let headerLink = linkname;
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(linkname) > 100) {
      let pax = '';
      if (Buffer.byteLength(name) > 100) {
        pax += paxRecord('path', name);
        headerName = Buffer.from(name)
          .subarray(0, 99)
          .toString('utf8')
          .replace(/\uFFFD$/, '');
      }
      if (Buffer.byteLength(linkname) > 100) {
        pax += paxRecord('linkpath', linkname);
        headerLink = '';
      }
      const body = Buffer.from(pax);
      yield header({
        name: `PaxHeaders/${headerName.slice(-80)}`,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: body.length,
        mtime: e.mtime,
        typeflag: 'x',
        linkname: '',
      });
      yield Buffer.concat([body, padding(body.length)]);
    }
    yield header({
      name: headerName,
      mode: e.mode,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size,
      mtime: e.mtime,
      typeflag,
      linkname: headerLink,
    });
    if (e.type !== 'file' || size === 0) continue;
    if (Buffer.isBuffer(e.content)) yield e.content;
    else {
      let read = 0;
      for await (const chunk of createReadStream((e.content as { file: string }).file)) {
        read += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (read !== size)
        throw new Error(`tar: ${e.path} changed while it was archived (${read} bytes, expected ${size})`);
    }
    yield padding(size);
  }
  yield Buffer.alloc(BLOCK * 2);
}

/** The entries of a directory tree under `prefix`, as they are on disk, with times and owners normalised. */
export function treeEntries(
  root: string,
  prefix: string,
  mtime: number,
  keep: (rel: string) => boolean = () => true,
): TarEntry[] {
  const out: TarEntry[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(root, r);
      const st = lstatSync(abs);
      if (st.isDirectory()) {
        walk(r);
        continue;
      }
      if (!keep(r)) continue;
      const p = `${prefix}${r}`;
      if (st.isSymbolicLink()) out.push({ path: p, type: 'symlink', mode: 0o777, mtime, linkname: readlinkSync(abs) });
      else if (st.isFile())
        out.push({
          path: p,
          type: 'file',
          mode: st.mode & 0o111 ? 0o755 : 0o644,
          mtime,
          content: { file: abs, size: st.size },
        });
    }
  };
  walk('');
  return out;
}

export interface TarMember {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  linkname: string;
  /** Byte offset of the content in the archive. */
  offset: number;
}

function field(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function parsePax(body: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const space = body.indexOf(' ', i);
    const len = Number(body.slice(i, space));
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = Buffer.from(body.slice(i)).subarray(0, len).toString('utf8');
    const kv = rec.slice(rec.indexOf(' ') + 1, -1);
    const eq = kv.indexOf('=');
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
    i += rec.length;
  }
  return out;
}

/** The members of a tar file (ustar and PAX path/linkpath/size records), without reading contents. */
export function listTar(file: string): TarMember[] {
  const fd = openSync(file, 'r');
  try {
    const total = fstatSync(fd).size;
    const members: TarMember[] = [];
    const h = Buffer.alloc(BLOCK);
    let pos = 0;
    let pax: Record<string, string> = {};
    while (pos + BLOCK <= total) {
      readSync(fd, h, 0, BLOCK, pos);
      if (h.every((x) => x === 0)) break;
      const size = Number.parseInt(field(h, 124, 12).trim() || '0', 8);
      const typeflag = String.fromCharCode(h[156] ?? 48);
      const offset = pos + BLOCK;
      pos = offset + size + ((BLOCK - (size % BLOCK)) % BLOCK);
      if (typeflag === 'x') {
        const body = Buffer.alloc(size);
        readSync(fd, body, 0, size, offset);
        pax = parsePax(body.toString('utf8'));
        continue;
      }
      if (typeflag === 'g') continue;
      const prefix = field(h, 345, 155);
      const raw = pax.path ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
      members.push({
        path: raw.replace(/^\.\//, '').replace(/\/$/, ''),
        type:
          typeflag === '0' || typeflag === '\0'
            ? 'file'
            : typeflag === '5'
              ? 'dir'
              : typeflag === '2'
                ? 'symlink'
                : 'other',
        mode: Number.parseInt(field(h, 100, 8).trim() || '0', 8),
        uid: Number.parseInt(field(h, 108, 8).trim() || '0', 8),
        gid: Number.parseInt(field(h, 116, 8).trim() || '0', 8),
        mtime: Number.parseInt(field(h, 136, 12).trim() || '0', 8),
        size: pax.size ? Number(pax.size) : size,
        linkname: pax.linkpath ?? field(h, 157, 100),
        offset,
      });
      pax = {};
    }
    return members;
  } finally {
    closeSync(fd);
  }
}

/** The content of one member of a tar file (by its path), or undefined. */
export function readTarMember(file: string, path: string): Buffer | undefined {
  const m = listTar(file).find((x) => x.path === path && x.type === 'file');
  if (!m) return undefined;
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(m.size);
    readSync(fd, b, 0, m.size, m.offset);
    return b;
  } finally {
    closeSync(fd);
  }
}
