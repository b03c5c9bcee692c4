/**
 * OCI images without a daemon or a registry: layers (gzip-compressed tars of support/image/tar.ts),
 * the image configuration, the manifest, and an OCI image layout packed as one tar file, the "OCI
 * archive" that skopeo, podman, crane, containerd (`ctr images import`) and Sonobuoy's users know.
 *
 * Deterministic: the same layers and metadata give the same blobs, hence the same manifest digest
 * (the image digest a registry reports after a push). JSON is written with a fixed key order; the
 * gzip stream carries no name or time (Node's zlib writes mtime 0), so a layer's digest depends
 * only on its entries and on the compression level.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { readTarMember, type TarEntry, tarChunks } from './tar.ts';

export const MEDIA_TYPES = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A compressed layer on disk: its blob (digest, size) and its uncompressed tar's digest (diff_id). */
export interface LayerBlob {
  file: string;
  digest: string;
  size: number;
  diffId: string;
}

function hashing(hash: ReturnType<typeof createHash>, count?: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      if (count) count.bytes += chunk.length;
      done(null, chunk);
    },
  });
}

/** Writes `entries` as a gzip-compressed layer to `file` (atomically) and returns its digests. */
export async function writeLayer(entries: readonly TarEntry[], file: string, dirMtime = 0): Promise<LayerBlob> {
  mkdirSync(path.dirname(file), { recursive: true });
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  const count = { bytes: 0 };
  const tmp = `${file}.tmp-${process.pid}`;
  await pipeline(
    Readable.from(tarChunks(entries, dirMtime)),
    hashing(diff),
    createGzip({ level: 9 }),
    hashing(blob, count),
    createWriteStream(tmp),
  );
  renameSync(tmp, file);
  return { file, digest: `sha256:${blob.digest('hex')}`, size: count.bytes, diffId: `sha256:${diff.digest('hex')}` };
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** JSON blob bytes: objects keep the key order they were built with, so the bytes are stable. */
export function jsonBlob(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export interface ImageConfig {
  created: string;
  user: string;
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  labels: Record<string, string>;
  /** One line per layer, for `history` (what made it). */
  history: string[];
}

export interface BuiltImage {
  /** The manifest's digest: the image digest. */
  digest: string;
  manifest: Buffer;
  config: Buffer;
  layers: LayerBlob[];
  /** The index.json of the layout, naming the image. */
  index: Buffer;
}

/** Config, manifest and index for `layers` (bottom first). */
export function assembleImage(
  layers: LayerBlob[],
  config: ImageConfig,
  annotations: Record<string, string>,
  refs: { tag: string; name: string },
): BuiltImage {
  const configBlob = jsonBlob({
    created: config.created,
    architecture: 'amd64',
    os: 'linux',
    config: {
      User: config.user,
      Env: config.env,
      Entrypoint: config.entrypoint,
      Cmd: config.cmd,
      WorkingDir: config.workingDir,
      Labels: config.labels,
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: config.history.map((createdBy) => ({ created: config.created, created_by: createdBy })),
  });
  const manifest = jsonBlob({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: { mediaType: MEDIA_TYPES.config, digest: sha256(configBlob), size: configBlob.length },
    layers: layers.map((l) => ({ mediaType: MEDIA_TYPES.layer, digest: l.digest, size: l.size })),
    annotations,
  });
  const digest = sha256(manifest);
  const index = jsonBlob({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: [
      {
        mediaType: MEDIA_TYPES.manifest,
        digest,
        size: manifest.length,
        annotations: {
          // containerd names the image by this on `ctr images import`; others read the tag.
          'io.containerd.image.name': `${refs.name}:${refs.tag}`,
          'org.opencontainers.image.ref.name': refs.tag,
        },
      },
    ],
  });
  return { digest, manifest, config: configBlob, layers, index };
}

/** The OCI image layout of `image` as one tar file (the OCI archive), written atomically. */
export async function writeOciArchive(image: BuiltImage, file: string, mtime = 0): Promise<{ size: number }> {
  const blob = (digest: string, content: TarEntry['content']): TarEntry => ({
    path: `blobs/sha256/${digest.slice('sha256:'.length)}`,
    type: 'file',
    mode: 0o644,
    mtime,
    ...(content ? { content } : {}),
  });
  const entries: TarEntry[] = [
    { path: 'oci-layout', type: 'file', mode: 0o644, mtime, content: jsonBlob({ imageLayoutVersion: '1.0.0' }) },
    { path: 'index.json', type: 'file', mode: 0o644, mtime, content: image.index },
    blob(image.digest, image.manifest),
    blob(sha256(image.config), image.config),
    ...image.layers.map((l) => blob(l.digest, { file: l.file, size: statSync(l.file).size })),
  ];
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await pipeline(Readable.from(tarChunks(entries, mtime)), createWriteStream(tmp));
  renameSync(tmp, file);
  return { size: statSync(file).size };
}

/**
 * The image reference an OCI archive names for an import: index.json's io.containerd.image.name,
 * else its org.opencontainers.image.ref.name when that is a whole reference (not only a tag).
 */
export function archiveImageName(archive: string): string | undefined {
  const raw = readTarMember(archive, 'index.json');
  if (!raw) return undefined;
  const index = JSON.parse(raw.toString('utf8')) as { manifests?: { annotations?: Record<string, string> }[] };
  const a = index.manifests?.[0]?.annotations ?? {};
  const refName = a['org.opencontainers.image.ref.name'];
  return a['io.containerd.image.name'] ?? (refName && /[/:]/.test(refName) ? refName : undefined);
}
