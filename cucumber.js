// Cucumber profiles: `embedded` (default), `docker`, `live`. A profile only names the target;
// the target's settings come from IRSA_* environment variables or the IRSA_CONFIG file.
// Run through `npm run conformance -- -p <profile>` so the target is started first.
const common = {
  paths: ['features/**/*.feature'],
  import: ['support/tsx-register.js', 'support/cucumber/**/*.ts', 'steps/**/*.ts'],
  format: [
    'progress-bar',
    'html:reports/cucumber.html',
    'junit:reports/junit.xml',
    'message:reports/cucumber.ndjson',
    'rerun:reports/rerun.txt',
  ],
  formatOptions: { junit: { suiteName: 'irsa-conformance' } },
  // The infrastructure scenarios come first; later scenarios wait for its set-up in any case.
  order: 'defined',
  strict: true,
};

export default { ...common, worldParameters: { target: 'embedded' } };
export const embedded = { ...common, worldParameters: { target: 'embedded' } };
export const docker = { ...common, worldParameters: { target: 'docker' } };
export const live = { ...common, worldParameters: { target: 'live' } };
