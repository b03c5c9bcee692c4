/**
 * The webhook's manifests for a live provision: every object in creation order, the flags, the key
 * only in the Secret. Deploying them on a fake API is test/integration/live-webhook-deploy.test.ts.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import type { V1Deployment, V1Secret } from '@kubernetes/client-node';
import { issueWebhookTls, webhookManifests } from '../../support/webhook-deploy.ts';

const NS = 'irsa-pod-identity-webhook';

describe('webhookManifests', () => {
  it('every object in creation order, the flags on the command line, the key only in the Secret', async () => {
    const tls = await issueWebhookTls(NS, 'pod-identity-webhook');
    const objects = webhookManifests(
      {
        namespace: NS,
        name: 'pod-identity-webhook',
        image: 'registry.example/webhook:v0.6.17',
        flags: { 'annotation-prefix': 'eks.amazonaws.com', 'token-audience': 'sts.amazonaws.com' },
        labels: { 'irsa-conformance.io/run-id': 'ic1' },
      },
      tls,
    );
    assert.deepEqual(
      objects.map((o) => o.kind),
      ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Secret', 'Deployment', 'Service'],
    );
    const deployment = objects.find((o) => o.kind === 'Deployment') as V1Deployment;
    const args = deployment.spec?.template.spec?.containers[0]?.args ?? [];
    assert.ok(args.includes('--annotation-prefix=eks.amazonaws.com'));
    assert.ok(args.includes('--in-cluster=false'), 'certificates from the Secret, no CSR to approve');
    const secret = objects.find((o) => o.kind === 'Secret') as V1Secret;
    assert.equal(secret.stringData?.['tls.key'], tls.keyPem);
    assert.ok(!JSON.stringify(objects.filter((o) => o.kind !== 'Secret')).includes('PRIVATE KEY'));
    const cert = new X509Certificate(tls.certPem);
    assert.match(cert.subjectAltName ?? '', new RegExp(`DNS:pod-identity-webhook\\.${NS}\\.svc`));
    assert.ok(cert.verify(new X509Certificate(tls.caPem).publicKey), 'signed by the CA that goes into caBundle');
  });
});
