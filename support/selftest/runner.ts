/**
 * The self-test's runner: each run of the suite (the correct setup, or one fault) is a child
 * process (`main.ts conformance`, reports under <reports>/selftest/<id>), and runs whose webhook
 * flags match share one warm embedded environment per worker, replaced when a run left something
 * on it or a component died. Runs are child processes because cucumber's support code registers
 * step definitions once per process (ESM module cache) and the run's infrastructure record is
 * cached per process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HarnessConfig } from '../config.ts';
import { readMessages, scenarioOutcomes } from '../outcomes.ts';
import { ensurePrivateDir, envsRoot, repoRoot } from '../paths.ts';
import { redact } from '../redact.ts';
import { loadSetup } from '../setup/setup.ts';
import { CORRECT_SETUP, type Fault } from './catalogue.ts';
import type { RunResult } from './verdict.ts';

export interface RunSpec {
  /** Directory name of the run's reports, and the label in progress lines. */
  id: string;
  setupDir: string;
  tags?: string;
  /** Exact scenario names (passed to cucumber as anchored, escaped --name patterns). */
  scenarios?: string[];
  lintProfile: 'default' | 'strict';
  webhookFlags: Record<string, string>;
}

/**
 * The runs of one self-test: the correct setup runs the whole suite (unless `narrowed`, i.e.
 * --only picks some faults); a fault with another lint profile gets a control run of the correct
 * setup with that profile and the same selection, so a strict-only failure is shown to come from
 * the fault. Fault runs that share the environment come first, then those that need their own.
 */
export function planRuns(
  faults: Fault[],
  narrowed: boolean,
  correctFlags: Record<string, string>,
): { baselines: RunSpec[]; faultRuns: (RunSpec & { fault: Fault })[] } {
  const baselines: RunSpec[] = [];
  if (!narrowed)
    baselines.push({
      id: 'correct-setup',
      setupDir: CORRECT_SETUP,
      lintProfile: 'default',
      webhookFlags: correctFlags,
    });
  for (const f of faults) {
    if (!f.lintProfile || f.lintProfile === 'default') continue;
    const id = `correct-setup-${f.lintProfile}${f.tags || f.scenarios ? `-as-${f.id}` : ''}`;
    if (baselines.some((b) => b.id === id)) continue;
    baselines.push({
      id,
      setupDir: CORRECT_SETUP,
      lintProfile: f.lintProfile,
      webhookFlags: correctFlags,
      ...(f.tags ? { tags: f.tags } : {}),
      ...(f.scenarios ? { scenarios: f.scenarios } : {}),
    });
  }
  const faultRuns: (RunSpec & { fault: Fault })[] = faults.map((f) => ({
    id: f.id,
    fault: f,
    setupDir: f.dir,
    lintProfile: f.lintProfile ?? 'default',
    webhookFlags: f.webhookFlags,
    ...(f.tags ? { tags: f.tags } : {}),
    ...(f.scenarios ? { scenarios: f.scenarios } : {}),
  }));
  const shares = (s: RunSpec) => JSON.stringify(s.webhookFlags) === JSON.stringify(correctFlags);
  faultRuns.sort((a, b) => Number(!shares(a)) - Number(!shares(b)));
  return { baselines, faultRuns };
}

/** A warm embedded environment this process started, shared by runs whose webhook flags match. */
interface SharedEnv {
  statePath: string;
  flags: string;
  /** Set when a component died: the next run gets a fresh environment. */
  broken: boolean;
  stop(): Promise<void>;
}

const RUN_TIMEOUT_MS = 20 * 60_000;

/** A cucumber --name pattern matching exactly this scenario name. */
export function exactName(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
}

function lastLines(file: string, n: number): string {
  if (!existsSync(file)) return '';
  return redact(readFileSync(file, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .slice(-n)
    .join(' / ');
}

export class Runner {
  readonly children = new Set<ChildProcess>();
  interrupted: NodeJS.Signals | undefined;
  /** One shared environment per worker: runs on one environment must not overlap (webhook
   * configurations are cluster-wide; the discovery bucket and the identity provider are per environment). */
  private readonly envs = new Map<number, SharedEnv>();

  constructor(
    private readonly opts: {
      reportsRoot: string;
      reuse: boolean;
      verbose: boolean;
      region: string;
      startTimeoutSeconds: number;
      embedded: HarnessConfig['embedded'];
    },
  ) {}

  /** Starts (or reuses) the shared environment for these flags; returns its state file. */
  private async sharedEnv(worker: number, flags: Record<string, string>): Promise<string> {
    const key = JSON.stringify(flags);
    const current = this.envs.get(worker);
    if (current && (current.broken || current.flags !== key)) {
      this.envs.delete(worker);
      await current.stop();
    }
    const reusable = this.envs.get(worker);
    if (reusable) return reusable.statePath;
    const { startEmbeddedTarget } = await import('../targets/embedded/index.ts');
    const { embeddedOptionsFor } = await import('../targets/embedded/options.ts');
    const options = embeddedOptionsFor(
      {
        reportsDir: this.opts.reportsRoot,
        region: this.opts.region,
        embedded: this.opts.embedded,
        timeouts: { startSeconds: this.opts.startTimeoutSeconds },
      },
      { spec: { webhook: { flags } } },
    );
    const envId = options.envId;
    ensurePrivateDir(envsRoot);
    const statePath = path.join(envsRoot, `selftest-${envId}.json`);
    const started = Date.now();
    const shared: SharedEnv = { statePath, flags: key, broken: false, stop: async () => undefined };
    const t = await startEmbeddedTarget({
      ...options,
      stateFile: statePath,
      // This process stops it (or its exit handler does); the runs attached to it must finish
      // their clean-up first, so signals are handled here, not by the target.
      handleSignals: false,
      onUnexpectedExit: () => {
        shared.broken = true;
      },
    });
    shared.stop = () => t.stop();
    this.envs.set(worker, shared);
    process.stderr.write(
      `selftest: shared embedded environment ${envId} ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
    return statePath;
  }

  /**
   * After a run on the shared environment, nothing of it may remain that the next run would
   * trip over (webhook configurations mutate every later pod; the discovery bucket and the
   * identity provider are per environment). If something does, the environment is replaced.
   */
  private async verifyClean(statePath: string): Promise<string | undefined> {
    const { createClients } = await import('../clients.ts');
    const { HeadBucketCommand } = await import('@aws-sdk/client-s3');
    const { ListOpenIDConnectProvidersCommand } = await import('@aws-sdk/client-iam');
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as {
      descriptor: import('../targets/target.ts').TargetDescriptor;
    };
    const c = createClients(state.descriptor);
    try {
      const left: string[] = [];
      const hooks = await c.admission.listMutatingWebhookConfiguration({
        labelSelector: 'app.kubernetes.io/managed-by=irsa-conformance',
      });
      for (const h of hooks.items) left.push(`MutatingWebhookConfiguration ${h.metadata?.name}`);
      const issuer = state.descriptor.issuer;
      if (issuer.mode === 'fixed') {
        const exists = await c.s3.send(new HeadBucketCommand({ Bucket: issuer.discoveryBucket })).then(
          () => true,
          () => false,
        );
        if (exists) left.push(`bucket ${issuer.discoveryBucket}`);
      }
      const idps = await c.iam.send(new ListOpenIDConnectProvidersCommand({}));
      for (const p of idps.OpenIDConnectProviderList ?? []) left.push(`identity provider ${p.Arn}`);
      return left.length ? left.join(', ') : undefined;
    } finally {
      c.destroy();
    }
  }

  async run(spec: RunSpec, worker: number): Promise<RunResult> {
    const reportsDir = path.join(this.opts.reportsRoot, 'selftest', spec.id);
    rmSync(reportsDir, { recursive: true, force: true });
    mkdirSync(reportsDir, { recursive: true });
    const defaultFlags = JSON.stringify(loadSetup(CORRECT_SETUP).spec.webhook.flags);
    // Only runs with the default setup's webhook flags share the environment; others start their own.
    const attach =
      this.opts.reuse && JSON.stringify(spec.webhookFlags) === defaultFlags
        ? await this.sharedEnv(worker, spec.webhookFlags)
        : undefined;
    // Scenarios in the run's own thread (cucumber's --parallel 0): two runs go at once, so the CPU
    // is already busy, and two workers per run would each load the support code again (about 2.5
    // CPU-seconds each); a fault run selects a few scenarios, which workers would not hurry.
    const args = [
      '--import',
      'tsx',
      path.join(repoRoot, 'support', 'cli', 'main.ts'),
      'conformance',
      '--parallel',
      '0',
    ];
    if (spec.tags) args.push('--tags', spec.tags);
    for (const n of spec.scenarios ?? []) args.push('--name', exactName(n));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      IRSA_TARGET: 'embedded',
      IRSA_SETUP: spec.setupDir,
      IRSA_REPORTS_DIR: reportsDir,
      IRSA_LINT_PROFILE: spec.lintProfile,
      // What the catalogue's expectations assume (tenant 2 exists; a failed run deletes what it made).
      IRSA_TENANTS: '3',
      IRSA_KEEP_ON_FAILURE: 'false',
    };
    delete env.IRSA_ATTACH;
    delete env.IRSA_RUN_STATE;
    if (attach) env.IRSA_ATTACH = attach;
    const outFile = path.join(reportsDir, 'output.log');
    const out = openSync(outFile, 'w');
    const started = Date.now();
    let timedOut = false;
    const exitCode = await new Promise<number>((resolve) => {
      // Its own process group: a terminal's Ctrl-C reaches only this process, which forwards it
      // once, so the run cleans up (a second SIGINT would make it exit at once).
      const child = spawn(process.execPath, args, {
        cwd: repoRoot,
        env,
        stdio: ['ignore', this.opts.verbose ? 'inherit' : out, this.opts.verbose ? 'inherit' : out],
        detached: true,
      });
      this.children.add(child);
      const watchdog = setTimeout(() => {
        timedOut = true;
        child.kill('SIGTERM');
      }, RUN_TIMEOUT_MS);
      child.on('error', (e) => {
        writeFileSync(outFile, `cannot start the run: ${e.message}\n`, { flag: 'a' });
      });
      child.on('close', (code, signal) => {
        clearTimeout(watchdog);
        this.children.delete(child);
        resolve(code ?? (signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1));
      });
    });
    closeSync(out);
    const scenarios = scenarioOutcomes(readMessages(path.join(reportsDir, 'cucumber.ndjson')));
    const result: RunResult = { exitCode, scenarios, durationMs: Date.now() - started };
    if (timedOut) result.error = `no result within ${RUN_TIMEOUT_MS / 60_000} min; output in ${outFile}`;
    else if (exitCode !== 0 && exitCode !== 1) result.error = `${lastLines(outFile, 3)} (output in ${outFile})`;
    const shared = this.envs.get(worker);
    if (attach && shared && !this.interrupted) {
      const left = await this.verifyClean(attach).catch((e: Error) => `cannot check: ${e.message}`);
      if (left) {
        process.stderr.write(
          `selftest: run ${spec.id} left ${left} on the shared environment; the next run gets a fresh one\n`,
        );
        shared.broken = true;
      }
    }
    return result;
  }

  signal(signal: NodeJS.Signals): void {
    this.interrupted = signal;
    for (const child of this.children) child.kill(signal);
  }

  async close(): Promise<void> {
    const envs = [...this.envs.values()];
    this.envs.clear();
    await Promise.all(envs.map((e) => e.stop()));
  }
}
