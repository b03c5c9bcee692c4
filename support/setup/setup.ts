/**
 * Loads a setup description (fixtures/setups/<name>/setup.yaml and its templates) and renders
 * its templates. A setup may `extends:` another directory: its setup.yaml is deep-merged over the
 * base's, and a template file present in its own directory replaces the base's. That is how a
 * fault in fixtures/faults/ changes exactly one thing of the default setup.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { UsageError } from '../errors.ts';

const setupSchema = z
  .object({
    description: z.string().default(''),
    discovery: z
      .object({
        document: z.string(),
        keys: z.enum(['cluster', 'unrelated', 'cluster-and-unrelated']),
        duplicateKeyWithEmptyKid: z.boolean().default(true),
        bucketPolicy: z.string(),
        publicAccessBlock: z
          .object({
            blockPublicAcls: z.boolean().default(true),
            ignorePublicAcls: z.boolean().default(true),
            blockPublicPolicy: z.boolean().default(false),
            restrictPublicBuckets: z.boolean().default(false),
          })
          .strict()
          .default({
            blockPublicAcls: true,
            ignorePublicAcls: true,
            blockPublicPolicy: false,
            restrictPublicBuckets: false,
          }),
        objectOwnership: z
          .enum(['BucketOwnerEnforced', 'BucketOwnerPreferred', 'ObjectWriter'])
          .default('BucketOwnerEnforced'),
        bucketAcl: z.enum(['private', 'public-read', 'public-read-write', 'authenticated-read']).default('private'),
      })
      .strict(),
    identityProvider: z.object({ url: z.string(), clientIds: z.array(z.string()) }).strict(),
    webhook: z
      .object({
        flags: z.record(z.string(), z.string()).default({}),
        configuration: z.string(),
      })
      .strict(),
    application: z
      .object({
        permissionPolicy: z.string(),
        trustPolicy: z.string(),
        serviceAccount: z.string(),
        deployment: z.string(),
        image: z.string(),
      })
      .strict(),
    lint: z
      .object({ profile: z.enum(['default', 'strict']).default('default') })
      .strict()
      .default({ profile: 'default' }),
  })
  .strict();

export type SetupSpec = z.infer<typeof setupSchema>;

export interface LoadedSetup {
  /** The setup's own directory (the last of `layers`). */
  dir: string;
  /** Directories searched for templates, most specific first. */
  layers: string[];
  spec: SetupSpec;
}

type Json = Record<string, unknown>;

function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? deepMerge(b as Json, v as Json)
        : v;
  }
  return out;
}

function readLayer(dir: string, seen: string[]): { raw: Json; layers: string[] } {
  const file = path.join(dir, 'setup.yaml');
  if (!existsSync(file))
    throw new UsageError(
      `setup description ${dir} has no setup.yaml`,
      'point IRSA_SETUP at a directory like fixtures/setups/default',
    );
  if (seen.includes(dir))
    throw new UsageError(
      `setup ${dir} extends itself (cycle: ${[...seen, dir].join(' -> ')})`,
      'fix the extends: chain',
    );
  let raw: Json;
  try {
    raw = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as Json;
  } catch (e) {
    throw new UsageError(
      `${file} is not valid YAML: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`,
      'fix the syntax at the position named above',
    );
  }
  const parent = raw.extends;
  delete raw.extends;
  // A fault's own description of what it breaks lives beside setup.yaml (fault.yaml), not in it.
  if (typeof parent !== 'string') return { raw, layers: [dir] };
  const base = readLayer(path.resolve(dir, parent), [...seen, dir]);
  return { raw: deepMerge(base.raw, raw), layers: [dir, ...base.layers] };
}

export function loadSetup(dir: string): LoadedSetup {
  const abs = path.resolve(dir);
  const { raw, layers } = readLayer(abs, []);
  const parsed = setupSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `setup ${abs}: ${issue?.path.join('.') || 'setup.yaml'}: ${issue?.message}`,
      'compare with fixtures/setups/default/setup.yaml',
    );
  }
  return { dir: abs, layers, spec: parsed.data };
}

/** Finds a template file in the most specific layer that has it. */
export function templatePath(setup: LoadedSetup, file: string): string {
  for (const layer of setup.layers) {
    const candidate = path.join(layer, file);
    if (existsSync(candidate)) return candidate;
  }
  throw new UsageError(
    `setup ${setup.dir} names ${file}, which none of its layers has`,
    `add ${file} to ${setup.dir} or fix setup.yaml`,
  );
}

/** Substitutes ${name}; an unknown placeholder is an error naming it (no silent empty strings). */
export function substitute(text: string, vars: Record<string, string>, where: string): string {
  return text.replace(/\$\{([A-Za-z][A-Za-z0-9]*)\}/g, (_, name: string) => {
    const v = vars[name];
    if (v === undefined) {
      throw new UsageError(
        `${where} uses \${${name}}, which is not defined here`,
        `defined: ${Object.keys(vars).sort().join(', ')}`,
      );
    }
    return v;
  });
}

export function renderTemplate(setup: LoadedSetup, file: string, vars: Record<string, string>): string {
  const p = templatePath(setup, file);
  return substitute(readFileSync(p, 'utf8'), vars, p);
}

export function renderJson<T = Json>(setup: LoadedSetup, file: string, vars: Record<string, string>): T {
  const text = renderTemplate(setup, file, vars);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new UsageError(
      `${templatePath(setup, file)} is not valid JSON after substitution: ${(e as Error).message}`,
      'check the template',
    );
  }
}

export function renderYaml<T = Json>(setup: LoadedSetup, file: string, vars: Record<string, string>): T {
  const text = renderTemplate(setup, file, vars);
  try {
    return parseYaml(text) as T;
  } catch (e) {
    throw new UsageError(
      `${templatePath(setup, file)} is not valid YAML after substitution: ${(e as Error).message.split('\n')[0]}`,
      'check the template',
    );
  }
}

/** "none" switches an optional template off (no public read, no webhook registration). */
export function isNone(value: string): boolean {
  return value === 'none';
}
