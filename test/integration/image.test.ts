/**
 * The harness's OCI image (npm run image, support/image/): reproducible and well-formed.
 *   - the tar writer gives the same bytes for the same entries in any order, keeps long paths
 *     (PAX) that GNU tar and the reader read back, and the modes, owners and times it is given;
 *   - two checkouts of the same commit, made at different times (other file times on disk), one
 *     built with the layer cache and one making every layer anew, give the same image digest;
 *     the labels name the version, the commit and its time;
 *   - the archive is a valid OCI image layout: the index names the manifest, every blob has the
 *     digest it is named by, each layer's uncompressed digest is its diff_id, entries are sorted
 *     and carry the fixed times;
 *   - an uncommitted change gives another digest and a "-dirty" revision.
 * The cases that need no child process or listener are test/unit/image.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { buildImage } from '../../support/image/build.ts';
import { listTar, readTarMember } from '../../support/image/tar.ts';
import { repoRoot } from '../../support/paths.ts';
import { sampleEntries, sha, tarBytes } from '../support/tar-entries.ts';

const work = mkdtempSync(path.join(tmpdir(), 'irsa-image-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('the tar writer', () => {
  const { long, entries } = sampleEntries();

  it('keeps long paths and link targets, modes, owners and times; parents are added, sorted', async () => {
    const file = path.join(work, 'entries.tar');
    writeFileSync(file, await tarBytes(entries));
    const members = listTar(file);
    assert.deepEqual(
      members.map((m) => m.path),
      [...members.map((m) => m.path)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    );
    assert.ok(
      members.some((m) => m.path === 'a' && m.type === 'dir' && m.mtime === 7),
      'a parent made with the given time',
    );
    const l = members.find((m) => m.path === long);
    assert.equal(l?.size, 4);
    assert.equal(readTarMember(file, long)?.toString(), 'long');
    assert.equal(members.find((m) => m.path === 'a/link')?.linkname, `../${'x'.repeat(120)}`);
    const home = members.find((m) => m.path === 'home/nonroot');
    assert.deepEqual([home?.uid, home?.gid, home?.mode, home?.mtime], [65532, 65532, 0o755, 4]);
    // GNU tar reads it the same way.
    const listed = execFileSync('tar', ['-tvf', file, '--numeric-owner'], { encoding: 'utf8' });
    assert.match(listed, new RegExp(long.replaceAll('/', '\\/')));
    assert.match(listed, /-rwxr-xr-x 0\/0 +3 1970-01-01 00:00 b\/file/);
  });
});

const noBuild = (() => {
  if (process.platform !== 'linux' || process.arch !== 'x64') return 'the image is built on Linux x86_64';
  for (const tool of ['apt-get', 'dpkg-deb', 'git', 'npm'])
    if (spawnSync(tool, ['--version']).status !== 0) return `no ${tool} here (the image is built from Debian packages)`;
  return undefined;
})();

/** A checkout of the project as one commit with a fixed author, committer and date. */
function checkout(name: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir);
  const files = execFileSync('git', ['-C', repoRoot, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    encoding: 'utf8',
  })
    .split('\0')
    .filter(Boolean);
  for (const f of files) {
    try {
      cpSync(path.join(repoRoot, f), path.join(dir, f), { recursive: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: 'irsa',
    GIT_AUTHOR_EMAIL: 'irsa@example.invalid',
    GIT_COMMITTER_NAME: 'irsa',
    GIT_COMMITTER_EMAIL: 'irsa@example.invalid',
    GIT_AUTHOR_DATE: '2026-01-02T03:04:05Z',
    GIT_COMMITTER_DATE: '2026-01-02T03:04:05Z',
  };
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { env, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  git('add', '-A');
  git('commit', '-q', '--no-gpg-sign', '-m', 'the project');
  return dir;
}

describe('npm run image', { skip: noBuild ?? false, timeout: 900_000 }, () => {
  it('the same commit gives the same image digest, with the layer cache or without; the labels name version, commit and time', async () => {
    const a = checkout('a');
    const b = checkout('b');
    // Other file times on disk in the second checkout.
    for (const f of ['package.json', 'support/cli/main.ts', 'features/01-infrastructure.feature'])
      utimesSync(path.join(b, f), new Date('2030-01-01T00:00:00Z'), new Date('2030-01-01T00:00:00Z'));
    const first = await buildImage({ projectDir: a });
    const second = await buildImage({ projectDir: b, layerCache: false });
    assert.equal(second.digest, first.digest, 'the same image digest');
    assert.equal(sha(readFileSync(second.archive)), sha(readFileSync(first.archive)), 'even the same archive bytes');
    const commit = execFileSync('git', ['-C', a, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    assert.equal(first.revision, commit);
    assert.equal(first.created, '2026-01-02T03:04:05.000Z');
    process.stderr.write(
      `image ${first.ref} ${first.digest}: ${(first.size / 1024 / 1024).toFixed(1)} MB; built in ${first.seconds.toFixed(1)} s, anew in ${second.seconds.toFixed(1)} s\n`,
    );

    // A valid OCI image layout.
    const archive = first.archive;
    assert.deepEqual(JSON.parse(readTarMember(archive, 'oci-layout')?.toString() ?? '{}'), {
      imageLayoutVersion: '1.0.0',
    });
    const index = JSON.parse(readTarMember(archive, 'index.json')?.toString() ?? '{}');
    const desc = index.manifests[0];
    assert.equal(desc.digest, first.digest);
    assert.equal(desc.annotations['io.containerd.image.name'], first.ref);
    assert.equal(desc.annotations['org.opencontainers.image.ref.name'], first.version);
    const blob = (digest: string) => {
      const b2 = readTarMember(archive, `blobs/sha256/${digest.slice(7)}`);
      assert.ok(b2, `blob ${digest} is in the archive`);
      assert.equal(sha(b2), digest, `blob ${digest} has its digest`);
      return b2;
    };
    const manifest = JSON.parse(blob(desc.digest).toString());
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const config = JSON.parse(blob(manifest.config.digest).toString());
    const labels = config.config.Labels;
    assert.equal(labels['org.opencontainers.image.version'], first.version);
    assert.equal(labels['org.opencontainers.image.revision'], commit);
    assert.equal(labels['org.opencontainers.image.created'], '2026-01-02T03:04:05.000Z');
    assert.deepEqual(manifest.annotations, labels, 'the manifest carries the same annotations');
    assert.equal(config.config.User, '65532:65532');
    assert.deepEqual(config.config.Cmd, ['verify']);
    const layerFiles: Record<string, string[]> = {};
    manifest.layers.forEach((l: { digest: string }, i: number) => {
      const tar = gunzipSync(blob(l.digest));
      assert.equal(sha(tar), config.rootfs.diff_ids[i], `layer ${i}: its diff_id`);
      const file = path.join(work, `layer-${i}.tar`);
      writeFileSync(file, tar);
      const members = listTar(file);
      const paths = members.map((m) => m.path);
      assert.deepEqual(
        paths,
        [...paths].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
        `layer ${i} is sorted`,
      );
      const times = new Set(members.map((m) => m.mtime));
      assert.deepEqual([...times], [i < 2 ? 0 : Date.parse('2026-01-02T03:04:05Z') / 1000], `layer ${i}: fixed times`);
      layerFiles[i] = paths;
    });
    assert.ok(
      layerFiles[0]?.includes('usr/local/bin/node') && layerFiles[0].includes('lib/x86_64-linux-gnu/libc.so.6'),
    );
    assert.ok(layerFiles[1]?.includes('opt/irsa-conformance/node_modules/tsx/package.json'));
    assert.ok(layerFiles[2]?.includes('opt/irsa-conformance/support/cli/entrypoint.ts'));
    assert.ok(!layerFiles[1]?.some((p) => p.includes('node_modules/typescript/')), 'no development dependency');
    assert.ok(!layerFiles[2]?.some((p) => p.startsWith('opt/irsa-conformance/test/')), 'no tests');

    // An uncommitted change: another image, and the revision says so.
    writeFileSync(path.join(a, 'README.md'), `${readFileSync(path.join(a, 'README.md'), 'utf8')}\nchanged\n`);
    const dirty = await buildImage({ projectDir: a });
    assert.notEqual(dirty.digest, first.digest);
    assert.equal(dirty.revision, `${commit}-dirty`);
    assert.equal(dirty.layers[0]?.digest, first.layers[0]?.digest, 'the base layer stays the same');
    assert.equal(dirty.layers[1]?.digest, first.layers[1]?.digest, 'the deps layer stays the same');
  });
});
