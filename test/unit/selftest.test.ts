/**
 * The self-test's own logic, on synthetic results: the fault catalogue loader and its
 * validation, scenario outcomes from cucumber messages, the checks that decide "caught", the
 * correct setup's verdict, the message excerpt and the table. Plus the real catalogue: it loads,
 * has the twelve faults, and every fault changes something of the default setup.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Envelope } from '@cucumber/messages';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../support/errors.ts';
import { type ScenarioOutcome, scenarioOutcomes } from '../../support/outcomes.ts';
import {
  CORRECT_SETUP,
  type Fault,
  loadFaultCatalogue,
  parseFaultSpec,
  selectFaults,
} from '../../support/selftest/catalogue.ts';
import { exactName } from '../../support/selftest/runner.ts';
import {
  checkBaseline,
  checkFault,
  excerpt,
  formatTable,
  oneLine,
  type RunResult,
  tableRows,
  unknownScenarioNames,
} from '../../support/selftest/verdict.ts';
import { loadSetup } from '../../support/setup/setup.ts';

const fault = (over: Partial<Fault> = {}): Fault => ({
  id: '99-synthetic',
  dir: '/nowhere',
  description: 'synthetic',
  expect: [{ scenario: 'Issuer check', message: ['differs from', 'trailing'] }],
  alsoFailing: ['Token check'],
  webhookFlags: {},
  ...over,
});

const run = (scenarios: ScenarioOutcome[], over: Partial<RunResult> = {}): RunResult => ({
  exitCode: scenarios.some((s) => s.status === 'FAILED') ? 1 : 0,
  durationMs: 1,
  scenarios,
  ...over,
});

const passed = (name: string): ScenarioOutcome => ({ name, uri: 'features/x.feature', status: 'PASSED' });
const failed = (name: string, message: string): ScenarioOutcome => ({
  name,
  uri: 'features/x.feature',
  status: 'FAILED',
  message,
});

describe('fault.yaml validation', () => {
  test('a complete entry parses, alsoFailing defaults to none', () => {
    const spec = parseFaultSpec(
      { description: 'd', expect: [{ scenario: 'S', message: ['m'] }], tags: '@infrastructure' },
      'f.yaml',
    );
    assert.deepEqual(spec.alsoFailing, []);
    assert.equal(spec.tags, '@infrastructure');
  });

  const bad: [string, unknown, RegExp][] = [
    ['no expect', { description: 'd' }, /expect/],
    ['an expectation without substrings', { description: 'd', expect: [{ scenario: 'S', message: [] }] }, /message/],
    ['an unknown key', { description: 'd', expect: [{ scenario: 'S', message: ['m'] }], expects: [] }, /expects/],
    [
      'a scenario both expected and alsoFailing',
      { description: 'd', expect: [{ scenario: 'S', message: ['m'] }], alsoFailing: ['S'] },
      /both expected and alsoFailing/,
    ],
    [
      'the same scenario expected twice',
      {
        description: 'd',
        expect: [
          { scenario: 'S', message: ['m'] },
          { scenario: 'S', message: ['n'] },
        ],
      },
      /twice/,
    ],
    [
      'a scenarios: list without the expected scenario',
      { description: 'd', expect: [{ scenario: 'S', message: ['m'] }], scenarios: ['T'] },
      /does not run it/,
    ],
    [
      'an unknown lint profile',
      { description: 'd', expect: [{ scenario: 'S', message: ['m'] }], lintProfile: 'x' },
      /lintProfile/,
    ],
  ];
  for (const [what, raw, pattern] of bad) {
    test(`refuses ${what} as bad input naming the file`, () => {
      assert.throws(
        () => parseFaultSpec(raw, 'fixtures/faults/x/fault.yaml'),
        (e: unknown) => e instanceof UsageError && pattern.test(e.message) && e.message.includes('fault.yaml'),
      );
    });
  }
});

describe('the catalogue on disk', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const scratch = () => {
    const d = mkdtempSync(path.join(tmpdir(), 'selftest-test-'));
    dirs.push(d);
    return d;
  };
  const addFault = (root: string, id: string, setupYaml: string, faultYaml: string) => {
    mkdirSync(path.join(root, id));
    writeFileSync(path.join(root, id, 'setup.yaml'), setupYaml);
    if (faultYaml) writeFileSync(path.join(root, id, 'fault.yaml'), faultYaml);
  };
  const extendsDefault = `extends: ${CORRECT_SETUP}\n`;
  const minimalFault = 'description: d\nexpect:\n  - scenario: S\n    message: [m]\n';

  test('loads faults sorted by directory, with their setup webhook flags', () => {
    const root = scratch();
    addFault(root, '02-b', `${extendsDefault}webhook:\n  flags:\n    token-audience: other\n`, minimalFault);
    addFault(root, '01-a', extendsDefault, minimalFault);
    mkdirSync(path.join(root, 'notes')); // neither setup.yaml nor fault.yaml: ignored
    const faults = loadFaultCatalogue(root);
    assert.deepEqual(
      faults.map((f) => f.id),
      ['01-a', '02-b'],
    );
    assert.equal(faults[1]?.webhookFlags['token-audience'], 'other');
  });

  test('a setup without fault.yaml, a broken setup and an empty catalogue are bad input', () => {
    const noFault = scratch();
    addFault(noFault, '01-a', extendsDefault, '');
    assert.throws(() => loadFaultCatalogue(noFault), /no fault\.yaml/);
    const brokenSetup = scratch();
    addFault(brokenSetup, '01-a', `${extendsDefault}discovery:\n  keys: sometimes\n`, minimalFault);
    assert.throws(
      () => loadFaultCatalogue(brokenSetup),
      (e: unknown) => e instanceof UsageError && /discovery\.keys/.test(e.message),
    );
    assert.throws(() => loadFaultCatalogue(scratch()), /empty/);
  });

  test('selects faults by id or number; an unknown one is bad input listing the faults', () => {
    const faults = [fault({ id: '05-keys' }), fault({ id: '12-audience' })];
    assert.deepEqual(
      selectFaults(faults, ['5', '12-audience']).map((f) => f.id),
      ['05-keys', '12-audience'],
    );
    assert.equal(selectFaults(faults, []).length, 2);
    assert.throws(
      () => selectFaults(faults, ['7']),
      (e: unknown) => e instanceof UsageError && /no fault "7"/.test(e.message) && /05-keys, 12-audience/.test(e.hint),
    );
  });

  test("the project's catalogue: the issue's twelve faults, each extending the default and changing something", () => {
    const faults = loadFaultCatalogue();
    assert.ok(faults.length >= 12, `only ${faults.length} faults`);
    const base = loadSetup(CORRECT_SETUP);
    for (const f of faults) {
      const raw = parseYaml(readFileSync(path.join(f.dir, 'setup.yaml'), 'utf8')) as { extends?: string };
      assert.equal(path.resolve(f.dir, raw.extends ?? ''), CORRECT_SETUP, `${f.id} does not extend the default setup`);
      const spec = loadSetup(f.dir).spec;
      const { description: _a, ...changed } = spec;
      const { description: _b, ...original } = base.spec;
      const ownTemplates = readdirSync(f.dir).filter((n) => !['setup.yaml', 'fault.yaml'].includes(n));
      assert.ok(
        ownTemplates.length > 0 || JSON.stringify(changed) !== JSON.stringify(original) || f.lintProfile === 'strict',
        `${f.id} changes nothing of the default setup`,
      );
    }
  });
});

describe('scenario outcomes from cucumber messages', () => {
  const pickle = (id: string, name: string) =>
    ({ pickle: { id, name, uri: 'features/a.feature' } }) as unknown as Envelope;
  const testCase = (id: string, pickleId: string) =>
    ({ testCase: { id, pickleId, testSteps: [] } }) as unknown as Envelope;
  const started = (id: string, testCaseId: string) => ({ testCaseStarted: { id, testCaseId } }) as unknown as Envelope;
  const step = (testCaseStartedId: string, status: string, message?: string) =>
    ({
      testStepFinished: { testCaseStartedId, testStepResult: { status, ...(message ? { message } : {}) } },
    }) as unknown as Envelope;
  const finished = (testCaseStartedId: string, willBeRetried = false) =>
    ({ testCaseFinished: { testCaseStartedId, willBeRetried } }) as unknown as Envelope;

  test('worst step status and its message; a retried attempt counts only once, as its last try', () => {
    const out = scenarioOutcomes([
      pickle('p1', 'Green'),
      pickle('p2', 'Red'),
      pickle('p3', 'Flaky'),
      testCase('c1', 'p1'),
      testCase('c2', 'p2'),
      testCase('c3', 'p3'),
      started('s1', 'c1'),
      step('s1', 'PASSED'),
      finished('s1'),
      started('s2', 'c2'),
      step('s2', 'PASSED'),
      step('s2', 'FAILED', 'boom: the cause'),
      step('s2', 'SKIPPED'),
      finished('s2'),
      started('s3a', 'c3'),
      step('s3a', 'FAILED', 'first try'),
      finished('s3a', true),
      started('s3b', 'c3'),
      step('s3b', 'PASSED'),
      finished('s3b'),
    ]);
    assert.deepEqual(
      out.map((s) => [s.name, s.status, s.message]),
      [
        ['Green', 'PASSED', undefined],
        ['Red', 'FAILED', 'boom: the cause'],
        ['Flaky', 'PASSED', undefined],
      ],
    );
  });
});

describe('scenario durations from cucumber messages', () => {
  test("a scenario's seconds run from its start to its end; without timestamps there are none", () => {
    const at = (seconds: number, nanos = 0) => ({ seconds, nanos });
    const [timed, untimed] = scenarioOutcomes([
      { pickle: { id: 'p1', name: 'Timed', uri: 'a.feature' } },
      { testCase: { id: 'c1', pickleId: 'p1', testSteps: [] } },
      { testCaseStarted: { id: 's1', testCaseId: 'c1', timestamp: at(10, 250_000_000) } },
      { testCaseFinished: { testCaseStartedId: 's1', willBeRetried: false, timestamp: at(12) } },
      { testCaseStarted: { id: 's2', testCaseId: 'c1' } },
      { testCaseFinished: { testCaseStartedId: 's2', willBeRetried: false } },
    ] as unknown as Envelope[]);
    assert.equal(timed?.seconds, 1.75);
    assert.equal(untimed?.seconds, undefined);
  });
});

describe('checkFault', () => {
  const message =
    'AssertionError [ERR_ASSERTION]: issuer "x/" differs from "x": trailing slash\n    at step (a.ts:1:1)';

  test('caught: the expected scenario failed naming the cause; alsoFailing and passing others are fine', () => {
    const v = checkFault(
      fault(),
      run([failed('Issuer check', message), failed('Token check', 'kid'), passed('Other')]),
    );
    assert.equal(v.caught, true);
    assert.equal(v.expectations[0]?.caught, true);
    assert.deepEqual(v.unexpected, []);
    assert.match(v.expectations[0]?.excerpt ?? '', /differs from/);
  });

  test('not caught when the expected scenario passed', () => {
    const v = checkFault(fault(), run([passed('Issuer check')]));
    assert.equal(v.caught, false);
    assert.match(v.expectations[0]?.problem ?? '', /did not fail \(PASSED\)/);
  });

  test('not caught when it failed for another reason: the missing substring is named', () => {
    const v = checkFault(fault(), run([failed('Issuer check', 'issuer differs from the other one')]));
    assert.equal(v.caught, false);
    assert.match(v.expectations[0]?.problem ?? '', /does not mention "trailing"/);
  });

  test('not caught when the expected scenario did not run or was skipped', () => {
    assert.match(checkFault(fault(), run([passed('Other')])).expectations[0]?.problem ?? '', /did not run/);
    const skipped = checkFault(fault(), run([{ name: 'Issuer check', uri: 'u', status: 'SKIPPED' }]));
    assert.equal(skipped.caught, false);
    assert.match(skipped.expectations[0]?.problem ?? '', /skipped/);
  });

  test('a failure outside expect and alsoFailing spoils the verdict and is reported', () => {
    const v = checkFault(fault(), run([failed('Issuer check', message), failed('Unrelated', 'surprise')]));
    assert.equal(v.caught, false);
    assert.deepEqual(
      v.unexpected.map((u) => u.scenario),
      ['Unrelated'],
    );
    const undefinedStep = checkFault(
      fault(),
      run([failed('Issuer check', message), { name: 'Typo', uri: 'u', status: 'UNDEFINED' }]),
    );
    assert.equal(undefinedStep.caught, false);
  });

  test('every expectation must hold, not just one', () => {
    const two = fault({
      expect: [
        { scenario: 'Issuer check', message: ['differs from'] },
        { scenario: 'Mutation check', message: ['env missing'] },
      ],
    });
    const v = checkFault(two, run([failed('Issuer check', message), passed('Mutation check')]));
    assert.equal(v.caught, false);
    assert.deepEqual(
      v.expectations.map((e) => e.caught),
      [true, false],
    );
  });

  test('a run that did not complete (bad input, crash) is not a catch, even with a matching failure', () => {
    const v = checkFault(fault(), run([failed('Issuer check', message)], { exitCode: 2, error: 'irsa: bad setup' }));
    assert.equal(v.caught, false);
    assert.match(v.runProblem ?? '', /exit 2.*bad setup/);
  });

  test('a run that ran no scenario at all is named as such', () => {
    const v = checkFault(fault(), run([], { exitCode: 1 }));
    assert.equal(v.caught, false);
    assert.match(v.runProblem ?? '', /ran no scenario/);
    assert.match(v.expectations[0]?.problem ?? '', /did not run: the run did not complete/);
  });

  test('an outline (several scenarios of one name) is caught when one example fails with the cause', () => {
    const v = checkFault(fault({ alsoFailing: [] }), run([passed('Issuer check'), failed('Issuer check', message)]));
    assert.equal(v.caught, true);
  });
});

describe('checkBaseline', () => {
  test('green: exit 0, something passed, nothing failed (skips allowed)', () => {
    const v = checkBaseline('correct-setup', run([passed('A'), { name: 'B', uri: 'u', status: 'SKIPPED' }]));
    assert.equal(v.green, true);
    assert.deepEqual(v.counts, { PASSED: 1, SKIPPED: 1 });
  });

  test('red: a failure is a false alarm, named with its message', () => {
    const v = checkBaseline('correct-setup', run([passed('A'), failed('B', 'AssertionError [ERR_ASSERTION]: nope')]));
    assert.equal(v.green, false);
    assert.match(v.problems.join('\n'), /false alarm: B FAILED: nope/);
  });

  test('red: a non-zero exit without failed scenarios, or nothing that passed', () => {
    assert.equal(checkBaseline('c', run([passed('A')], { exitCode: 1 })).green, false);
    assert.equal(checkBaseline('c', run([])).green, false);
  });
});

describe('messages, names and the table', () => {
  test('oneLine drops the assertion prefix and the stack, keeps diff values only beyond the head', () => {
    const m = [
      'AssertionError [ERR_ASSERTION]: the configuration fails the pre-flight checks',
      '+ actual - expected',
      '',
      "+ [ 'lists admissionReviewVersions [v1]' ]",
      '- []',
      '    at step (a.ts:1:1)',
    ].join('\n');
    assert.equal(oneLine(m, { head: true }), 'the configuration fails the pre-flight checks');
    assert.match(oneLine(m), /pre-flight checks \[ 'lists admissionReviewVersions \[v1\]' \] \[\]$/);
    assert.doesNotMatch(oneLine(m), /a\.ts/);
  });

  test('the excerpt is one line, at most the width, around the expected substrings, and redacted', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YTpiIn0.c2lnbmF0dXJlc2lnbmF0dXJl';
    const m = `AssertionError [ERR_ASSERTION]: ${'x'.repeat(200)} token ${jwt} was refused: the CAUSE is here ${'y'.repeat(200)}\nsecond line`;
    const e = excerpt(m, ['the CAUSE'], 80);
    assert.ok(e.length <= 80, `${e.length} chars`);
    assert.match(e, /the CAUSE is here/);
    assert.doesNotMatch(e, /\n/);
    assert.ok(!excerpt(m, ['refused'], 400).includes(jwt), 'a JWT reached the excerpt');
    assert.equal(excerpt('AssertionError [ERR_ASSERTION]: short'), 'short');
  });

  test('exactName matches the name exactly, special characters included', () => {
    const name = "keys.json holds the cluster's signing keys (all of them) [v1] $x *";
    const re = new RegExp(exactName(name));
    assert.ok(re.test(name));
    assert.ok(!re.test(`${name} and more`));
    assert.ok(!re.test(name.replace('.', 'X')));
  });

  test('names in the catalogue that the suite does not have are reported', () => {
    const f = fault({ scenarios: ['Issuer check', 'Gone'], alsoFailing: ['Typo'] });
    assert.deepEqual(unknownScenarioNames([f], [passed('Issuer check')]), [
      '99-synthetic: no scenario is named "Typo"',
      '99-synthetic: no scenario is named "Gone"',
    ]);
  });

  test('the table has a row per expectation, unexpected failure and baseline, in aligned columns', () => {
    const v = checkFault(
      fault(),
      run([failed('Issuer check', 'AssertionError [ERR_ASSERTION]: differs from, trailing'), failed('Odd', 'why')]),
    );
    const b = checkBaseline('correct-setup', run([passed('A')]));
    const rows = tableRows([b], [v]);
    assert.deepEqual(
      rows.map((r) => [r.fault, r.scenario, r.caught]),
      [
        ['correct-setup', '(every selected scenario passes)', 'green'],
        ['99-synthetic', 'Issuer check', 'yes'],
        ['', 'Odd', 'UNEXPECTED'],
      ],
    );
    const lines = formatTable(rows).split('\n');
    assert.equal(lines.length, 5);
    const col = (lines[0] as string).indexOf('caught');
    for (const l of lines.slice(2)) assert.match(l.slice(col), /^(green|yes|UNEXPECTED)/);
  });
});
