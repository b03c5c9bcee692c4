/**
 * A target is one module in the registry (support/targets/registry.ts): the coordinator, its start,
 * sweep and the after-run verdict ask the module and never the target's name. A minimal fake
 * target (no process, no network) is registered and driven through that path: its pre-flight and
 * selection in a dry run of the coordinator, its start and stop, its sweep connection and its
 * after-run verdict. Nothing outside the fake needed to know it.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runConformance } from '../../support/cli/conformance.ts';
import { type HarnessConfig, loadConfig } from '../../support/config.ts';
import { isUsageError } from '../../support/errors.ts';
import { discoveryBucketFor, newEnvId } from '../../support/names.ts';
import { repoRoot } from '../../support/paths.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { sweepTarget } from '../../support/sweep/target.ts';
import type { TargetModule } from '../../support/targets/module.ts';
import { loadTargetModule, registerTarget } from '../../support/targets/registry.ts';
import { startTarget } from '../../support/targets/start.ts';
import { TARGET_NAMES, type TargetDescriptor, type TargetName } from '../../support/targets/target.ts';

/** What the fake was asked, in order. */
const calls: string[] = [];

function fakeDescriptor(): TargetDescriptor {
  const envId = newEnvId();
  return {
    name: 'fake' as TargetName,
    envId,
    kubeconfigPath: '/nonexistent/kubeconfig',
    aws: { region: 'us-east-1', forcePathStyle: true, accountId: '000000000000' },
    podAwsEnv: {},
    issuer: { mode: 'fixed', issuer: 'https://fake.invalid', discoveryBucket: discoveryBucketFor(envId) },
    webhook: { mode: 'existing', configurationName: 'fake' },
    dialect: {
      annotationPrefix: 'eks.amazonaws.com',
      audience: 'sts.amazonaws.com',
      mountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount',
      tokenFileName: 'token',
      defaultExpirationSeconds: 86400,
    },
    podRoot: '',
    logs: {},
    readOnly: {},
  };
}

const fake: TargetModule = {
  async preflight({ dryRun }) {
    calls.push(`preflight dryRun=${dryRun}`);
  },
  async prepare() {
    calls.push('prepare');
  },
  async start({ onProgress }) {
    calls.push('start');
    onProgress('fake: up');
    return {
      descriptor: fakeDescriptor(),
      owned: true,
      stop: async () => {
        calls.push('stop');
      },
    };
  },
  selectScenarios(_config, tagExpression) {
    calls.push('select');
    // Only the infrastructure checks, whatever else the profile selects.
    return tagExpression ? `(${tagExpression}) and @infrastructure` : '@infrastructure';
  },
  selectionMode: () => 'fake mode',
  async afterRun({ counts, print }) {
    calls.push('afterRun');
    print(`fake verdict: ${counts.passed} passed`);
    return { failed: counts.passed === 0 };
  },
  async sweepConnection() {
    calls.push('sweepConnection');
    return { nothing: 'the fake target leaves nothing' };
  },
};

/** Settings that name the fake target (the settings' schema knows only TARGET_NAMES; the coordinator does not care). */
function fakeConfig(): HarnessConfig {
  const config = loadConfig({}, {});
  return { ...config, target: 'fake' as TargetName };
}

describe('a target registered as one module', () => {
  const unregister = registerTarget('fake', fake);
  after(unregister);

  it('starts, stops and is swept through its module only', async () => {
    calls.length = 0;
    const config = fakeConfig();
    const setup = loadSetup(config.setupDir);
    const module = await loadTargetModule(config.target);
    await module.preflight?.({ config, setup, dryRun: false });
    await module.prepare?.({});
    const progress: string[] = [];
    const handle = await startTarget(config, setup, (line) => progress.push(line));
    assert.equal(handle.descriptor.name, 'fake');
    assert.equal(handle.owned, true);
    assert.deepEqual(progress, ['fake: up']);
    const verdict = await module.afterRun?.({
      runId: 'icfake0',
      config,
      descriptor: handle.descriptor,
      counts: { passed: 0, failed: 0, skipped: 3, other: 0 },
      scenarios: [],
      print: (line) => progress.push(line),
    });
    assert.deepEqual(verdict, { failed: true }, 'the target decides that a run where nothing passed failed');
    await handle.stop();
    const swept = await sweepTarget(config);
    assert.deepEqual(swept, { nothing: 'the fake target leaves nothing' });
    assert.deepEqual(calls, ['preflight dryRun=false', 'prepare', 'start', 'afterRun', 'stop', 'sweepConnection']);
  });

  it("every name in TARGET_NAMES loads its folder's module, and nothing else names a target", async () => {
    for (const name of TARGET_NAMES) {
      const module = await loadTargetModule(name);
      assert.equal(typeof module.start, 'function', `support/targets/${name}/module.ts: a start`);
    }
    // The one list: the folders with a module.ts are the names, no more and no fewer.
    const folders = readdirSync(path.join(repoRoot, 'support/targets'), { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(path.join(repoRoot, 'support/targets', d.name, 'module.ts')))
      .map((d) => d.name)
      .sort();
    assert.deepEqual(folders, [...TARGET_NAMES].sort());
  });

  it('an unknown target name is said, not guessed', async () => {
    await assert.rejects(loadTargetModule('nowhere'), /no target module named "nowhere"/);
  });

  it("the coordinator's dry run asks the module for its pre-flight and selection, never its name", async () => {
    // The coordinator reads the target from the settings' schema; the fake stands in for the
    // default target's name here, so that the whole coordinator path up to the start runs with it.
    calls.length = 0;
    const restore = registerTarget('embedded', fake);
    const written: string[] = [];
    // The dry run's list goes to stdout and its summary to stderr: read, and passed on.
    const write = process.stdout.write.bind(process.stdout);
    const writeErr = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      written.push(String(chunk));
      return write(chunk, ...rest);
    }) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      written.push(String(chunk));
      return writeErr(chunk, ...rest);
    }) as typeof process.stderr.write;
    // The harness marks its own processes (cucumber.js refuses to run without it).
    const harnessMark = process.env.IRSA_HARNESS;
    process.env.IRSA_HARNESS = '1';
    let result: Awaited<ReturnType<typeof runConformance>>;
    try {
      result = await runConformance({ argv: ['--dry-run'], env: { PATH: process.env.PATH ?? '' } });
    } catch (e) {
      if (isUsageError(e)) assert.fail(`the dry run refused: ${e.message}`);
      throw e;
    } finally {
      process.stdout.write = write;
      process.stderr.write = writeErr;
      if (harnessMark === undefined) delete process.env.IRSA_HARNESS;
      else process.env.IRSA_HARNESS = harnessMark;
      restore();
    }
    assert.equal(result.exitCode, 0);
    assert.deepEqual(calls, ['select', 'preflight dryRun=true'], 'selection and pre-flight, nothing started');
    const listed = written
      .join('')
      .split('\n')
      .filter((l) => /^features\/.*\.feature:\d+ {2}/.test(l));
    assert.ok(listed.length > 0, 'the dry run lists the scenarios the fake selects');
    assert.ok(
      !listed.some((l) => l.startsWith('features/02-application.feature')),
      'the profile selects the application feature; the fake narrowed it away',
    );
    assert.match(written.join(''), /would run on the embedded target \(fake mode\); --dry-run started nothing/);
  });
});
