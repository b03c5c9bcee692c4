/**
 * The verify-only summary (one page: verdict, a row per check, detected dialect, capability
 * matrix, redacted) and which scenarios a live run selects in each mode.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../support/config.ts';
import { UPSTREAM_DEFAULT_DIALECT } from '../../support/targets/dialect.ts';
import { tagsForLiveMode, verifySummaryMarkdown } from '../../support/targets/live/summary.ts';
import { CAPABILITIES, type CapabilityMatrix, type TargetDescriptor } from '../../support/targets/target.ts';
import { unsignedJwt } from '../support/live-fake-kube.ts';

describe('tagsForLiveMode', () => {
  it('verify-only selects the infrastructure and verify-only features, provision everything else', () => {
    assert.equal(tagsForLiveMode('verify-only', undefined), '(@infrastructure or @verify-only)');
    assert.equal(tagsForLiveMode('provision', ''), 'not @verify-only');
    assert.equal(tagsForLiveMode('verify-only', '@smoke'), '(@smoke) and (@infrastructure or @verify-only)');
  });
  it("drops the embedded/docker profiles' default exclusion, which would empty verify-only", () => {
    assert.equal(tagsForLiveMode('verify-only', 'not @verify-only'), '(@infrastructure or @verify-only)');
    assert.equal(
      tagsForLiveMode('verify-only', '(not @verify-only) and (@smoke)'),
      '((@smoke)) and (@infrastructure or @verify-only)',
    );
  });
});

describe('verifySummaryMarkdown', () => {
  const config = loadConfig({
    IRSA_TARGET: 'live',
    IRSA_LIVE_MODE: 'verify-only',
    IRSA_VERIFY_NAMESPACE: 'payments',
    IRSA_VERIFY_SERVICE_ACCOUNT: 's3-reader',
    IRSA_VERIFY_ROLE_ARN: 'arn:aws:iam::123456789012:role/payments',
    IRSA_VERIFY_ALLOWED_BUCKET: 'payments-data',
    IRSA_VERIFY_DENIED_BUCKET: 'billing-data',
  });
  const capabilities = Object.fromEntries(
    CAPABILITIES.map((c) => [c, { available: c !== 'writes-allowed', reason: `measured ${c}` }]),
  ) as CapabilityMatrix;
  const descriptor: TargetDescriptor = {
    name: 'live',
    envId: 'live-api',
    kubeconfigPath: '/k',
    aws: { region: 'eu-west-1', forcePathStyle: false, accountId: '123456789012' },
    podAwsEnv: {},
    issuer: { mode: 'read-only', issuer: 'https://oidc.example' },
    webhook: { mode: 'existing', configurationName: 'pod-identity-webhook' },
    dialect: { ...UPSTREAM_DEFAULT_DIALECT, mountPath: '/m' },
    podRoot: '',
    logs: {},
    readOnly: { podNamespace: 'payments' },
    detected: [
      { name: 'API server', value: 'https://api.staging:6443', source: 'kubeconfig context admin' },
      { name: 'OpenShift', value: '4.16.3', source: 'ClusterVersion version' },
    ],
    capabilities,
  };
  const render = (checks: { name: string; uri: string; status: string; message?: string }[]) =>
    verifySummaryMarkdown({ runId: 'icabc123', finishedAt: new Date(0), descriptor, config, checks });

  it('all passed: PASS, a row per check, the dialect and the matrix', () => {
    const md = render([
      { name: 'The discovery documents are public', uri: 'features/01-infrastructure.feature', status: 'PASSED' },
      { name: 'STS exchanges the token', uri: 'features/verify-only.feature', status: 'PASSED' },
    ]);
    assert.match(md, /\*\*Result: PASS\*\* — 2 passed, 0 failed, 0 skipped/);
    assert.match(md, /\| 1 \| The discovery documents are public \| infrastructure \| pass \|/);
    assert.match(md, /\| 2 \| STS exchanges the token \| service account path \| pass \|/);
    assert.match(md, /\| OpenShift \| 4\.16\.3 \| ClusterVersion version \|/);
    assert.match(md, /\| writes-allowed \| no \| measured writes-allowed \|/);
    assert.match(md, /ServiceAccount payments\/s3-reader/);
    assert.ok(md.split('\n').length < 60, 'one page');
  });

  it('a failure: FAIL with its first line, no stack, secrets redacted', () => {
    const token = unsignedJwt({ iss: 'https://oidc.example', sub: 'system:serviceaccount:payments:s3-reader' });
    const md = render([
      {
        name: 'A token of the ServiceAccount passes the checks STS makes',
        uri: 'features/verify-only.feature',
        status: 'FAILED',
        message: `AssertionError [ERR_ASSERTION]: STS would refuse ${token}: kid not found | in keys.json\n    at Object.<anonymous> (steps/verify.steps.ts:1:1)`,
      },
      {
        name: 'A pod of the ServiceAccount gets the role and uses it',
        uri: 'features/verify-only.feature',
        status: 'SKIPPED',
      },
    ]);
    assert.match(md, /\*\*Result: FAIL \(1 of 2 checks failed\)\*\*/);
    assert.match(md, /\| \*\*FAIL\*\* \| STS would refuse .*kid not found \\\| in keys\.json \|/);
    assert.ok(!md.includes(token), 'the token is redacted');
    assert.ok(!md.includes('steps/verify.steps.ts:1:1'), 'no stack trace');
    assert.match(md, /\| skipped \| a capability is missing/);
  });

  it('no check ran: says so instead of passing, also when every check was skipped', () => {
    assert.match(render([]), /\*\*Result: NO CHECKS RAN \(0 skipped\)\*\*/);
    const skipped = {
      name: 'A pod of the ServiceAccount gets the role and uses it',
      uri: 'features/verify-only.feature',
    };
    assert.match(render([{ ...skipped, status: 'SKIPPED' }]), /\*\*Result: NO CHECKS RAN \(1 skipped\)\*\*/);
  });
});
