/**
 * The self-test's fault catalogue: each directory of fixtures/faults/<NN-name>/ is a setup that
 * extends the default one and breaks one thing, plus a fault.yaml saying which scenario must fail
 * and what its message must mention. This module validates fault.yaml (bad entries are bad input:
 * exit 2, before anything runs), loads the catalogue (each fault's setup must load and render)
 * and picks faults by id or number.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { UsageError } from '../errors.ts';
import { repoRoot } from '../paths.ts';
import { checkSetup } from '../setup/check.ts';
import { loadSetup } from '../setup/setup.ts';

const faultSchema = z
  .object({
    description: z.string().min(1),
    expect: z
      .array(
        z
          .object({
            /** Exact scenario name, as in the feature file. */
            scenario: z.string().min(1),
            /** Substrings the failure message must contain; at least one, or any failure would do. */
            message: z.array(z.string().min(1)).min(1),
          })
          .strict(),
      )
      .min(1),
    /** Scenarios allowed to fail as a consequence of the fault. */
    alsoFailing: z.array(z.string().min(1)).default([]),
    /** Cucumber tag expression narrowing the run to what the fault affects. */
    tags: z.string().min(1).optional(),
    /** Runs only the scenarios of these exact names (with tags: those that match both). */
    scenarios: z.array(z.string().min(1)).optional(),
    lintProfile: z.enum(['default', 'strict']).optional(),
  })
  .strict();

export type FaultSpec = z.infer<typeof faultSchema>;

export interface Fault extends FaultSpec {
  /** The directory name, e.g. 05-keys-unrelated. */
  id: string;
  dir: string;
  /** The setup's webhook flags (a fault that changes them cannot share the default environment). */
  webhookFlags: Record<string, string>;
}

export const DEFAULT_CATALOGUE = path.join(repoRoot, 'fixtures', 'faults');
export const CORRECT_SETUP = path.join(repoRoot, 'fixtures', 'setups', 'default');

/** Validates one fault.yaml's content; `where` names the file in errors. */
export function parseFaultSpec(raw: unknown, where: string): FaultSpec {
  const parsed = faultSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(
      `${where}: ${issue?.path.join('.') || 'fault.yaml'}: ${issue?.message}`,
      'a fault.yaml has description, expect: [{scenario, message: [substrings]}], and optional alsoFailing, tags, scenarios, lintProfile (docs/selftest.md)',
    );
  }
  const spec = parsed.data;
  const expected = spec.expect.map((e) => e.scenario);
  const twice = expected.find((s, i) => expected.indexOf(s) !== i);
  if (twice) throw new UsageError(`${where}: expects scenario ${JSON.stringify(twice)} twice`, 'merge the two entries');
  const both = spec.alsoFailing.find((s) => expected.includes(s));
  if (both)
    throw new UsageError(
      `${where}: ${JSON.stringify(both)} is both expected and alsoFailing`,
      'an expected scenario must fail with its message; remove it from alsoFailing',
    );
  const unselected = spec.scenarios ? expected.filter((e) => !spec.scenarios?.includes(e)) : [];
  if (unselected.length)
    throw new UsageError(
      `${where}: expects ${JSON.stringify(unselected[0])} to fail, but its scenarios: list does not run it`,
      'add the expected scenarios to scenarios:, or remove scenarios: to run the whole suite',
    );
  return spec;
}

/** Loads every <dir>/<fault>/fault.yaml (sorted by directory name) and checks its setup loads. */
export function loadFaultCatalogue(root: string = DEFAULT_CATALOGUE): Fault[] {
  if (!existsSync(root))
    throw new UsageError(
      `no fault catalogue at ${root}`,
      'faults live in fixtures/faults/<NN-name>/ (docs/selftest.md)',
    );
  const faults: Fault[] = [];
  for (const id of readdirSync(root).sort()) {
    const dir = path.join(root, id);
    const file = path.join(dir, 'fault.yaml');
    if (!existsSync(file)) {
      if (existsSync(path.join(dir, 'setup.yaml')))
        throw new UsageError(`fault ${id} has a setup.yaml but no fault.yaml`, `add ${file} (docs/selftest.md)`);
      continue;
    }
    let raw: unknown;
    try {
      raw = parseYaml(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new UsageError(
        `${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`,
        'fix the syntax at the position named above',
      );
    }
    const spec = parseFaultSpec(raw, file);
    // The setup must load (and its templates render) now: a broken fault setup is a catalogue
    // error, not a caught fault.
    const setup = loadSetup(dir);
    checkSetup(setup);
    faults.push({ ...spec, id, dir, webhookFlags: setup.spec.webhook.flags });
  }
  if (faults.length === 0)
    throw new UsageError(`the fault catalogue ${root} is empty`, 'add fixtures/faults/<NN-name>/ directories');
  return faults;
}

/** Picks faults by id or by number prefix ("05" or "5"); unknown names are bad input. */
export function selectFaults(faults: Fault[], only: string[]): Fault[] {
  if (only.length === 0) return faults;
  return only.map((want) => {
    const n = /^\d+$/.test(want) ? Number(want) : undefined;
    const hit = faults.find((f) => f.id === want || (n !== undefined && Number(f.id.split('-')[0]) === n));
    if (!hit) throw new UsageError(`no fault ${JSON.stringify(want)}`, `faults: ${faults.map((f) => f.id).join(', ')}`);
    return hit;
  });
}
