/**
 * `npm run image`: the harness's OCI image as an OCI archive under build/image/ (support/image/build.ts
 * says what is in it and how it stays reproducible). No Docker daemon, no registry: push the archive
 * with a tool of your choice (docs/at-scale.md).
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.ts';
import { buildImage, DEFAULT_IMAGE_NAME } from '../image/build.ts';
import { repoRoot } from '../paths.ts';

export const IMAGE_USAGE = `usage: npm run image -- [--name NAME] [--output DIR] [--no-layer-cache]

Builds the harness's OCI image (Node runtime, the project, its production dependencies) into an
OCI archive, build/image/irsa-conformance-<version>.oci.tar, without a Docker daemon or a registry.
The same commit gives the same image digest. Prints the digest, the reference and the archive.

  --name NAME         the image's name without the tag (default ${DEFAULT_IMAGE_NAME}); the tag is
                      the version in package.json
  --output DIR        where the archive goes (default build/image)
  --no-layer-cache    make every layer anew from its cached inputs (a reproducibility check)

Push it, e.g.: skopeo copy oci-archive:build/image/irsa-conformance-<version>.oci.tar docker://<registry>/irsa-conformance:<version>
`;

export async function runImage(argv: string[]): Promise<number> {
  let values: { name?: string; output?: string; 'no-layer-cache'?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        name: { type: 'string' },
        output: { type: 'string' },
        'no-layer-cache': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message, '`npm run image -- --help` lists the options');
  }
  if (values.help) {
    process.stdout.write(IMAGE_USAGE);
    return 0;
  }
  const result = await buildImage({
    projectDir: repoRoot,
    ...(values.output ? { outDir: values.output } : {}),
    ...(values.name ? { name: values.name } : {}),
    layerCache: !values['no-layer-cache'],
    onProgress: (line) => process.stderr.write(`[image] ${line}\n`),
  });
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
  for (const l of result.layers)
    process.stderr.write(
      `[image] layer ${l.name.padEnd(7)} ${l.digest.slice(0, 19)}… ${mb(l.size)}${l.cached ? ' (cached)' : ''}\n`,
    );
  process.stderr.write(`[image] built in ${result.seconds.toFixed(1)} s\n`);
  process.stdout.write(
    `image    ${result.ref}\ndigest   ${result.digest}\nrevision ${result.revision}\narchive  ${result.archive} (${mb(result.size)})\n`,
  );
  return 0;
}
