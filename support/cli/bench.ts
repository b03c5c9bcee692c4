/**
 * `npm run bench`: the performance figures of issue 9, as medians (with min and max) of repeated
 * runs on the embedded target with cached binaries. Not part of the test command's pass/fail.
 *   1. target start per component and total, stop time, peak RSS of each component
 *   2. the default suite from cold (target start included) and on a warm environment
 *   3. per-scenario p50/p95 (warm runs)
 *   4. tenant scaling: the isolation matrix with 1, 10 and 30 tenants at --parallel 4, and the
 *      marginal cost per extra tenant
 *   5. the other node (IRSA_KUBE_NODE: kwok or kubelet, whichever 1 and 2 did not measure): start
 *      per component, node ready after the control plane, stop, the default suite from cold, and
 *      both side by side with the ratio kubelet / kwok (where a real node can run here)
 * Prints a table and writes bench.json to the reports directory. A suite run that fails is left
 * out of the figures, its reports and the components' logs are kept, and the bench exits 1.
 * Options (BENCH_COMMAND, --help): --runs N (default 3), --tenants 1,10,30,
 * --skip start,cold,warm,tenants,other-node, --dry-run.
 * The suite runs (child processes, interruption) are support/bench/suite-run.ts, the statistics
 * support/bench/figures.ts; this file parses the options, measures part by part and prints.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ParseArgsOptionsConfig } from 'node:util';
import { peakRssMiB, percentile, type Stat, stat } from '../bench/figures.ts';
import { benchTempDir, onBenchSignal, runSuite, type SuiteRun } from '../bench/suite-run.ts';
import { UsageError } from '../errors.ts';
import { embeddedOptionsFor } from '../targets/embedded/options.ts';
import type { KubeNode } from '../targets/embedded/real-node.ts';
import { ensureEmbeddedSetup } from '../targets/embedded/setup.ts';
import { type CommandSpec, parseCommand, positiveInt } from './args.ts';

const fmt = (s: Stat, unit = 's', digits = 2) =>
  `${s.median.toFixed(digits)} ${unit} (min ${s.min.toFixed(digits)}, max ${s.max.toFixed(digits)}, n=${s.n})`;

const BENCH_PARTS = ['start', 'cold', 'warm', 'tenants', 'other-node'];

export const BENCH_COMMAND = {
  command: 'npm run bench --',
  synopsis: '[--runs N] [--tenants 1,10,30] [--skip PART[,PART]] [--dry-run]',
  description: `
The performance figures, as medians (with min and max) of repeated runs on the embedded target:
target start per component and stop (start), the default suite from cold (cold) and on a warm
environment with per-scenario p50/p95 (warm), the tenant isolation matrix at --parallel 4
(tenants), and start and cold suite on the other node, kwok or kubelet, beside the configured one
(other-node). Prints a table and writes bench.json to the reports directory; takes many minutes.

  --runs N          runs of each measurement (default 3)
  --tenants LIST    tenant counts of the scaling measurement (default 1,10,30)
  --skip PARTS      leave out some of: ${BENCH_PARTS.join(', ')}
  --dry-run         print what would be measured; start nothing, write nothing

Exit codes: 0 done, 1 a suite run failed (left out of the figures), 2 bad input.`,
  options: {
    runs: { type: 'string', default: '3' },
    tenants: { type: 'string', default: '1,10,30' },
    skip: { type: 'string', default: '' },
    'dry-run': { type: 'boolean' },
  },
} satisfies CommandSpec<ParseArgsOptionsConfig>;

export async function runBench(argv: string[]): Promise<number> {
  const parsed = parseCommand(BENCH_COMMAND, argv);
  if (!parsed) return 0;
  const runs = positiveInt(parsed.values.runs, '--runs', 20);
  const tenantCounts = parsed.values.tenants.split(',').map((n) => positiveInt(n, '--tenants', 50));
  const skip = new Set(parsed.values.skip.split(',').filter(Boolean));
  const unknown = [...skip].filter((p) => !BENCH_PARTS.includes(p));
  if (unknown.length)
    throw new UsageError(
      `--skip names no part of the bench: ${unknown.join(', ')}`,
      `parts: ${BENCH_PARTS.join(', ')}`,
    );
  if (parsed.values['dry-run']) {
    const parts = BENCH_PARTS.filter((p) => !skip.has(p));
    process.stdout.write(
      `bench would measure ${parts.join(', ') || 'nothing'} with ${runs} run(s) each${parts.includes('tenants') ? `, tenants ${tenantCounts.join(', ')}` : ''}\n`,
    );
    return 0;
  }
  await ensureEmbeddedSetup();
  const { startEmbeddedTarget } = await import('../targets/embedded/index.ts');
  const { loadConfig } = await import('../config.ts');
  const { loadSetup } = await import('../setup/setup.ts');
  const config = loadConfig(process.env, { target: 'embedded' });
  const setup = loadSetup(config.setupDir);
  process.on('SIGINT', onBenchSignal);
  process.on('SIGTERM', onBenchSignal);
  const logsDir = benchTempDir('irsa-bench-logs-');
  const result: Record<string, unknown> = {
    machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30) },
    runs,
  };
  const out = (line: string) => process.stdout.write(`${line}\n`);
  // A failed suite run is left out of the figures, and named at the end (the bench then exits 1).
  const failedRuns: { what: string; failures: string[] }[] = [];
  const suite = async (what: string, env: Record<string, string>, args: string[] = []): Promise<SuiteRun> => {
    const r = await runSuite(env, args, config.reportsDir);
    if (r.exitCode !== 0) failedRuns.push({ what, failures: r.failures });
    return r;
  };
  // The configured node (`auto`: the real node where one can run here).
  const { chooseKubeNode } = await import('../targets/embedded/real-node.ts');
  const node = chooseKubeNode(config.embedded.kubeNode).node;
  // Every target of the bench: the setup's webhook flags and the configured embedded settings.
  const startBenchTarget = (envId: string, stateFile?: string, kubeNode: KubeNode = node) =>
    startEmbeddedTarget(
      embeddedOptionsFor(config, setup, {
        logsDir,
        envId,
        settings: { ...config.embedded, kubeNode },
        ...(stateFile ? { stateFile } : {}),
      }),
    );
  out(`irsa-conformance benchmark: ${runs} run(s) each, ${os.cpus().length} cores, node ${node}`);

  /** Start per component (and the node after the control plane), stop, and peak memory, over `runs` starts. */
  const startFigures = async (kubeNode: KubeNode) => {
    const perComponent: Record<string, number[]> = {};
    const stops: number[] = [];
    const rss: Record<string, number[]> = {};
    for (let i = 0; i < runs; i++) {
      const envId = `bench${i}${Date.now().toString(36).slice(-4)}`;
      const t = await startBenchTarget(envId, undefined, kubeNode);
      const node = t.timings.kubelet ?? t.timings.kwok;
      const apiserver = t.timings['kube-apiserver'];
      if (node !== undefined && apiserver !== undefined)
        perComponent['node after kube-apiserver'] = [
          ...(perComponent['node after kube-apiserver'] ?? []),
          (node - apiserver) / 1000,
        ];
      for (const [k, v] of Object.entries(t.timings)) {
        perComponent[k] = [...(perComponent[k] ?? []), v / 1000];
      }
      const state = JSON.parse(readFileSync(t.statePath, 'utf8')) as { processes: { name: string; pid: number }[] };
      for (const p of state.processes) {
        const m = peakRssMiB(p.pid);
        if (m !== undefined) rss[p.name] = [...(rss[p.name] ?? []), m];
      }
      const s0 = Date.now();
      await t.stop();
      stops.push((Date.now() - s0) / 1000);
    }
    out(`\nTarget start with node ${kubeNode} (ready after, from the start call):`);
    const start: Record<string, Stat> = {};
    for (const [k, v] of Object.entries(perComponent).sort((a, b) => stat(a[1]).median - stat(b[1]).median)) {
      start[k] = stat(v);
      out(`  ${k.padEnd(26)} ${fmt(start[k])}`);
    }
    const stop = stat(stops);
    out(`  ${'stop'.padEnd(26)} ${fmt(stop)}`);
    out('Peak resident memory per component (MiB, after start):');
    const mem: Record<string, Stat> = {};
    for (const [k, v] of Object.entries(rss)) {
      mem[k] = stat(v);
      out(`  ${k.padEnd(26)} ${fmt(mem[k], 'MiB', 0)}`);
    }
    return { start, stop, componentPeakRssMiB: mem };
  };

  const harnessRss: number[] = [];
  /** The default suite from cold (target start included), `runs` times. */
  const coldSuite = async (kubeNode: KubeNode) => {
    const cold: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await suite(`default suite, cold, node ${kubeNode}`, { IRSA_KUBE_NODE: kubeNode });
      if (r.exitCode === 0) cold.push(r.seconds);
      if (r.bench) harnessRss.push(r.bench.maxRssKb / 1024);
    }
    out(`\nDefault suite from cold with node ${kubeNode} (target start included): ${fmt(stat(cold))}`);
    return stat(cold);
  };

  // 1. target start and stop
  if (!skip.has('start')) Object.assign(result, await startFigures(node));

  // 2. cold suite
  if (!skip.has('cold')) result.coldSuite = await coldSuite(node);

  // 3. warm suite and per-scenario figures, 4. tenant scaling (warm, --parallel 4)
  if (!skip.has('warm') || !skip.has('tenants')) {
    const envId = `benchwarm${Date.now().toString(36).slice(-4)}`;
    const stateFile = path.join(logsDir, 'warm.json');
    const t = await startBenchTarget(envId, stateFile);
    try {
      if (!skip.has('warm')) {
        const warm: number[] = [];
        const perScenario: number[] = [];
        for (let i = 0; i < runs; i++) {
          const r = await suite('default suite, warm', { IRSA_ATTACH: stateFile });
          if (r.exitCode === 0) warm.push(r.seconds);
          if (r.bench) harnessRss.push(r.bench.maxRssKb / 1024);
          perScenario.push(...r.scenarioSeconds);
        }
        result.warmSuite = stat(warm);
        result.perScenario = {
          p50: percentile(perScenario, 50),
          p95: percentile(perScenario, 95),
          n: perScenario.length,
        };
        out(`Default suite on a warm environment: ${fmt(stat(warm))}`);
        out(
          `Per scenario: p50 ${percentile(perScenario, 50).toFixed(2)} s, p95 ${percentile(perScenario, 95).toFixed(2)} s (${perScenario.length} scenario runs)`,
        );
      }
      if (!skip.has('tenants')) {
        out('\nTenant isolation matrix at --parallel 4 (warm):');
        const byCount: Record<string, Stat> = {};
        for (const n of tenantCounts) {
          const times: number[] = [];
          for (let i = 0; i < runs; i++) {
            const r = await suite(`${n} tenants`, { IRSA_ATTACH: stateFile, IRSA_TENANTS: String(n) }, [
              '--tags',
              '@tenant-matrix',
              '--parallel',
              '4',
            ]);
            if (r.exitCode === 0) times.push(r.seconds);
          }
          byCount[String(n)] = stat(times);
          out(`  ${String(n).padStart(3)} tenants: ${fmt(byCount[String(n)] as Stat)}`);
        }
        const lo = Math.min(...tenantCounts);
        const hi = Math.max(...tenantCounts);
        const marginal =
          ((byCount[String(hi)]?.median ?? Number.NaN) - (byCount[String(lo)]?.median ?? Number.NaN)) / (hi - lo);
        out(`  marginal cost per extra tenant (${lo}→${hi}): ${marginal.toFixed(2)} s`);
        result.tenants = { byCount, marginalSecondsPerTenant: marginal };
      }
    } finally {
      await t.stop();
    }
  }
  // 5. the other node, side by side
  const other = node === 'kubelet' ? 'kwok' : 'kubelet';
  const noRealNode = chooseKubeNode('auto').why;
  if (!skip.has('other-node') && noRealNode) out(`\nNo real node here, so no kwok/kubelet comparison: ${noRealNode}`);
  else if (!skip.has('other-node')) {
    const { start, stop, coldSuite: cold } = result;
    const figures: Record<string, Record<string, unknown>> = {
      [node]: { start, stop, coldSuite: cold },
    };
    figures[other] = {
      ...(skip.has('start') ? {} : await startFigures(other)),
      ...(skip.has('cold') ? {} : { coldSuite: await coldSuite(other) }),
    };
    const median = (node: string, key: string, sub?: string): number | undefined => {
      const v = figures[node]?.[key] as Record<string, Stat> | Stat | undefined;
      const s = sub ? (v as Record<string, Stat> | undefined)?.[sub] : (v as Stat | undefined);
      return s?.median;
    };
    const rows: [string, number | undefined, number | undefined][] = [
      ['target ready', median('kwok', 'start', 'total'), median('kubelet', 'start', 'total')],
      [
        'node after kube-apiserver',
        median('kwok', 'start', 'node after kube-apiserver'),
        median('kubelet', 'start', 'node after kube-apiserver'),
      ],
      ['stop', median('kwok', 'stop'), median('kubelet', 'stop')],
      ['default suite, cold', median('kwok', 'coldSuite'), median('kubelet', 'coldSuite')],
    ];
    out('\nkwok and the real node side by side (medians):');
    out(`  ${''.padEnd(26)} ${'kwok'.padStart(9)} ${'kubelet'.padStart(9)}   kubelet/kwok`);
    const show = (v: number | undefined) => (v === undefined ? '–' : `${v.toFixed(2)} s`).padStart(9);
    for (const [name, kwok, kubelet] of rows) {
      const ratio = kwok && kubelet ? `${(kubelet / kwok).toFixed(2)}x` : '';
      out(`  ${name.padEnd(26)} ${show(kwok)} ${show(kubelet)}   ${ratio}`);
    }
    result.nodes = figures;
  }

  if (harnessRss.length) {
    result.harnessPeakRssMiB = stat(harnessRss);
    out(`\nPeak resident memory of the harness: ${fmt(stat(harnessRss), 'MiB', 0)}`);
  }
  mkdirSync(config.reportsDir, { recursive: true });
  result.failedRuns = failedRuns;
  if (failedRuns.length) {
    // The components' logs of the environments the failed runs used, next to their reports.
    const keptLogs = path.join(config.reportsDir, `bench-logs-${path.basename(logsDir)}`);
    renameSync(logsDir, keptLogs);
    out(`\n${failedRuns.length} suite run(s) failed and are left out of the figures above:`);
    for (const f of failedRuns) out(`  ${f.what}: ${f.failures.join('; ') || 'no scenario failed (see its reports)'}`);
    out(`their reports are in ${config.reportsDir}/bench-failed-*, the components' logs in ${keptLogs}`);
  } else rmSync(logsDir, { recursive: true, force: true });
  const written = path.join(config.reportsDir, 'bench.json');
  writeFileSync(written, JSON.stringify(result, null, 2));
  out(`\nwritten: ${path.relative(process.cwd(), written) || written}`);
  return failedRuns.length ? 1 : 0;
}
