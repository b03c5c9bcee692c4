/**
 * What provisioning does with the issuer (managed, patched, published), decided in process from
 * what was detected. An EKS-shaped cluster (a fake API) is test/integration/live-managed-issuer.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseIssuerControl, servesDiscoveryDocuments } from '../../support/targets/live/index.ts';

const EKS_ISSUER = 'https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE';

describe('what provisioning does with the issuer', () => {
  const base = {
    setting: 'auto',
    mode: 'provision',
    openshift: false,
    issuer: EKS_ISSUER,
    publishable: false,
  } as const;
  const serves = (yes: boolean) => async () => yes;

  it('auto: an issuer that serves its own documents is managed, on OpenShift too (STS mode)', async () => {
    assert.equal((await chooseIssuerControl({ ...base, servesDocuments: serves(true) })).control.mode, 'managed');
    const sts = await chooseIssuerControl({ ...base, openshift: true, servesDocuments: serves(true) });
    assert.equal(sts.control.mode, 'managed', 'an STS-mode OpenShift issuer is never patched');
    assert.match(sts.why, /serves its own discovery documents/);
    const s3 = await chooseIssuerControl({ ...base, publishable: true, servesDocuments: serves(true) });
    assert.equal(s3.control.mode, 'managed', 'an S3 issuer with documents is used, not recreated');
  });

  it('auto: otherwise published: OpenShift patches the issuer, elsewhere the issuer bucket', async () => {
    assert.equal(
      (await chooseIssuerControl({ ...base, openshift: true, servesDocuments: serves(false) })).control.mode,
      'patchable',
    );
    const bucket = await chooseIssuerControl({ ...base, publishable: true, servesDocuments: serves(false) });
    assert.deepEqual(bucket.control, { mode: 'read-only', issuer: EKS_ISSUER });
    assert.match(bucket.why, /publishes into the issuer's S3 bucket/);
  });

  it('the setting decides over detection; verify-only never changes anything', async () => {
    const never = async () => assert.fail('not asked');
    assert.equal(
      (await chooseIssuerControl({ ...base, setting: 'managed', servesDocuments: never })).control.mode,
      'managed',
    );
    assert.equal(
      (await chooseIssuerControl({ ...base, setting: 'publish', openshift: true, servesDocuments: never })).control
        .mode,
      'patchable',
    );
    assert.equal(
      (await chooseIssuerControl({ ...base, mode: 'verify-only', servesDocuments: never })).control.mode,
      'read-only',
    );
  });

  it('serving documents means an anonymous 200 with a jwks_uri', async () => {
    const fake = (status: number, body: unknown) => ({ anonymousGetJson: async () => ({ status, body }) });
    assert.equal(
      await servesDiscoveryDocuments(fake(200, { issuer: EKS_ISSUER, jwks_uri: `${EKS_ISSUER}/keys` }), EKS_ISSUER),
      true,
    );
    assert.equal(await servesDiscoveryDocuments(fake(403, '<Error/>'), EKS_ISSUER), false);
    assert.equal(await servesDiscoveryDocuments(fake(200, { issuer: EKS_ISSUER }), EKS_ISSUER), false);
    const failing = { anonymousGetJson: async () => Promise.reject(new Error('ENOTFOUND')) };
    assert.equal(await servesDiscoveryDocuments(failing, EKS_ISSUER), false);
  });
});
