/**
 * A sharded run (issue 19): the default suite run whole and as shards 1/2 and 2/2 (cucumber's
 * --shard, each shard a run of its own that provisions what its scenarios need), on one attached
 * warm environment, one run after another:
 *   - the shards together ran exactly the scenarios of the whole run, each once, with the same
 *     outcomes; both shards ran some of the tenant isolation matrix (its rows are split between
 *     them, the tenants each shard's scenarios need are provisioned by that shard);
 *   - each shard's JUnit suite says which shard it is, and the merge (npm run merge-junit) of the
 *     two is the whole run's report: the same test cases and outcomes, no problem found; a shard
 *     given twice or missing is named;
 *   - --shard 3/2 is refused before anything starts (exit 2).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mergeJUnit, readJUnit } from '../../support/junit.ts';
import { readMessages, type ScenarioOutcome, scenarioOutcomes } from '../../support/outcomes.ts';
import { binariesMissing } from '../support/binaries.ts';
import {
  disposeRuns,
  type IrsaRun,
  startIrsa,
  startWarmEnvironment,
  type WarmEnvironment,
} from '../support/reliability-support.ts';

const missing = binariesMissing();
const MATRIX = 'features/05-tenant-isolation.feature';

describe('a sharded run (--shard i/n)', {
  skip: missing ? `component binaries missing: ${missing}` : false,
  timeout: 1_200_000,
}, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'irsa-shards-'));
  let warm: WarmEnvironment;
  const runs: IrsaRun[] = [];

  before(async () => {
    warm = await startWarmEnvironment(dir);
  });

  after(async () => {
    await disposeRuns(runs, warm, dir);
  });

  /** A run attached to the warm environment: its exit code, scenario outcomes and JUnit report. */
  const run = async (argv: string[]) => {
    const r = startIrsa(['conformance', ...argv], { IRSA_ATTACH: warm.statePath });
    runs.push(r);
    const result = await r.exited;
    const out = `${result.stdout}\n${result.stderr}`;
    if (result.code !== 0 && result.code !== 1) return { code: result.code, out, scenarios: [], junit: '' };
    return {
      code: result.code,
      out,
      scenarios: scenarioOutcomes(readMessages(path.join(r.reportsDir, 'cucumber.ndjson'))),
      junit: readFileSync(path.join(r.reportsDir, 'junit.xml'), 'utf8'),
    };
  };

  // An outline's rows share a name: its Examples row's line tells them apart.
  const key = (s: ScenarioOutcome) => `${s.uri}:${s.line} ${s.name}`;
  const byKey = (list: ScenarioOutcome[]) => new Map(list.map((s) => [key(s), s.status]));

  it("shards 1/2 and 2/2 run the whole suite once between them, with its outcomes, tenant matrix included; their JUnit reports merge into the whole run's", async () => {
    const whole = await run([]);
    const first = await run(['--shard', '1/2']);
    const second = await run(['--shard', '2/2']);
    for (const [name, r] of [
      ['whole', whole],
      ['1/2', first],
      ['2/2', second],
    ] as const)
      assert.ok(r.code === 0 || r.code === 1, `the ${name} run ran (exit ${r.code}):\n${r.out.slice(-3000)}`);
    assert.equal(first.code === 0 && second.code === 0, whole.code === 0, 'the shards pass where the whole run passes');
    assert.match(first.out, /irsa-conformance run ic\w+: embedded target, .*, shard 1\/2/);
    assert.match(second.out, /Scenarios: .* \(shard 2\/2\)/);

    const union = [...first.scenarios, ...second.scenarios];
    const counted = new Map<string, number>();
    for (const s of union) counted.set(key(s), (counted.get(key(s)) ?? 0) + 1);
    assert.deepEqual(
      [...counted].filter(([, n]) => n > 1).map(([k]) => k),
      [],
      'no scenario ran in both shards',
    );
    assert.ok(first.scenarios.length > 0 && second.scenarios.length > 0, 'both shards ran scenarios');
    assert.deepEqual(
      [...byKey(union)].sort(),
      [...byKey(whole.scenarios)].sort(),
      'the same scenarios with the same outcomes as the whole run',
    );
    const matrixRows = (list: ScenarioOutcome[]) => list.filter((s) => s.uri === MATRIX).map((s) => s.name);
    assert.ok(matrixRows(whole.scenarios).length >= 9, 'the whole run has the tenant matrix (3 tenants x 3 outlines)');
    assert.ok(
      matrixRows(first.scenarios).length > 0 && matrixRows(second.scenarios).length > 0,
      `the tenant matrix is split between the shards (1/2: ${matrixRows(first.scenarios).length}, 2/2: ${matrixRows(second.scenarios).length})`,
    );

    const merged = mergeJUnit([
      { source: 'shard-1/junit.xml', xml: first.junit },
      { source: 'shard-2/junit.xml', xml: second.junit },
    ]);
    assert.deepEqual(merged.problems, []);
    assert.deepEqual(merged.suites, ['irsa-conformance shard 1/2', 'irsa-conformance shard 2/2']);
    const cases = (xml: string) =>
      readJUnit(xml)
        .flatMap((s) => s.cases.map((c) => `${c.classname} :: ${c.name} :: ${c.status}`))
        .sort();
    assert.deepEqual(
      cases(merged.xml),
      cases(whole.junit),
      "the merged report has the whole run's test cases and outcomes",
    );
    assert.equal(merged.tests, readJUnit(whole.junit)[0]?.tests);

    const twice = mergeJUnit([
      { source: 'a.xml', xml: first.junit },
      { source: 'b.xml', xml: first.junit },
    ]).problems.join('\n');
    assert.match(twice, /shard 1\/2 is there 2 times/);
    assert.match(twice, /shard 2\/2 is missing/);
  });

  it('--shard 3/2 is refused before anything starts (exit 2)', async () => {
    const r = await run(['--shard', '3/2']);
    assert.equal(r.code, 2, r.out.slice(-2000));
    assert.match(r.out, /--shard 3\/2 names no shard/);
    assert.doesNotMatch(r.out, /irsa-conformance run ic/, 'no run started');
  });
});
