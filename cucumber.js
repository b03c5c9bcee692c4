// Cucumber profiles: `embedded` (default), `docker`, `live`. A profile only names the target;
// the target's settings come from IRSA_* environment variables, the IRSA_CONFIG file or
// worldParameters with the same keys (`--world-parameters '{"region":"eu-west-1"}'`).
// Run through `npm run conformance -- -p <profile>` so the target is started first.

// `npx cucumber-js` (or an IDE's run button) alone has no target to run against: stop with a hint
// instead of failing every scenario. The harness (support/cli/main.ts) marks its own processes.
if (!process.env.IRSA_HARNESS) {
  process.stderr.write(
    'irsa: cucumber-js alone cannot run this suite: the target has to be started (and stopped) around it\n' +
      'hint: run it through the harness with the same options, e.g. npm run conformance -- --name "keys.json" or -- features/02-application.feature:41 (npm run conformance -- --help)\n',
  );
  process.exit(2);
}
const common = {
  paths: ['features/**/*.feature'],
  import: ['support/tsx-register.js', 'support/cucumber/**/*.ts', 'steps/**/*.ts'],
  // Keeps the tenant-matrix rows up to IRSA_TENANTS and deletes the run's tenants when the suite ends.
  plugin: ['./support/plugins/tenant-matrix.ts'],
  format: [
    'progress-bar',
    // cucumber's own, with the capability matrix (html) and the skip reasons (junit) added.
    './support/formatters/html.ts:reports/cucumber.html',
    './support/formatters/junit.ts:reports/junit.xml',
    'message:reports/cucumber.ndjson',
    // Only the failed scenarios, for `npm run conformance -- reports/@rerun.txt` (support/formatters/rerun.ts).
    './support/formatters/rerun.ts:reports/@rerun.txt',
  ],
  formatOptions: { junit: { suiteName: 'irsa-conformance' } },
  // The infrastructure scenarios come first; later scenarios wait for its set-up in any case.
  order: 'defined',
  strict: true,
  // Two worker threads: measured on 2 cores, the warm suite takes 25 s instead of 32 s. Scenarios
  // share nothing but run-scoped set-up, which runs once under a lock (support/provision/once.ts).
  // `--parallel 1` runs them one after another (and `--parallel N` any other count).
  // Without --parallel, a selection of up to 12 scenarios runs in the harness's own thread
  // (support/run/selection.ts workerThreads): a worker's own load of the support code costs more.
  parallel: 2,
};

// The verify-only feature runs only in the live target's verify-only mode; for `live` the
// coordinator selects scenarios by IRSA_LIVE_MODE (support/targets/live/summary.ts tagsForLiveMode).
const notVerifyOnly = { tags: 'not @verify-only' };
export default { ...common, ...notVerifyOnly, worldParameters: { target: 'embedded' } };
export const embedded = { ...common, ...notVerifyOnly, worldParameters: { target: 'embedded' } };
export const docker = { ...common, ...notVerifyOnly, worldParameters: { target: 'docker' } };
export const live = { ...common, worldParameters: { target: 'live' } };
