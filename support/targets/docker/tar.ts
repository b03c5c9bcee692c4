/**
 * The first regular file of a tar stream, as text: how the docker target reads a small file out of
 * a container (the engine's archive API returns a tar). A few lines instead of a dependency: ustar
 * headers are 512-byte blocks with the size in octal; PAX and GNU long-name entries are skipped.
 */
export async function readFileFromTar(stream: NodeJS.ReadableStream, maxBytes = 1 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += b.length;
    if (total > maxBytes + 1024) throw new Error(`the archive is larger than ${maxBytes} bytes`);
    chunks.push(b);
  }
  return firstFileOfTar(Buffer.concat(chunks));
}

export function firstFileOfTar(tar: Buffer): string {
  let offset = 0;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const size = Number.parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const body = offset + 512;
    if (type === '0' || type === '\0') return tar.subarray(body, body + size).toString('utf8');
    offset = body + Math.ceil(size / 512) * 512;
  }
  throw new Error('the archive holds no regular file');
}
