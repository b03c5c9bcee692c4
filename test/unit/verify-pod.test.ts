/**
 * The verify-only pod is admitted by locked-down namespaces (issue 15, item 4): it meets the Pod
 * Security "restricted" profile field by field, has small requests and limits, a writable HOME on
 * an emptyDir, and runs the image it is given. On OpenShift it
 * names no user (the restricted SCC assigns one). test/integration/live-embedded.test.ts runs it in a namespace
 * labelled pod-security.kubernetes.io/enforce=restricted with a quota that requires limits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VERIFY_POD_USER, verifyPodManifest } from '../../support/verify/pod.ts';

const base = {
  name: 'irsa-verify-ic1',
  subject: { namespace: 'payments', serviceAccount: 's3-reader' },
  image: 'mirror.example/amazon/aws-cli:2.27.50',
  runId: 'ic1',
  env: { AWS_REGION: 'us-east-1' },
};

describe('the verify-only pod', () => {
  it('meets the restricted Pod Security profile', () => {
    const pod = verifyPodManifest({ ...base, runAsUser: VERIFY_POD_USER });
    const spec = pod.spec;
    assert.ok(spec);
    assert.equal(spec.securityContext?.runAsNonRoot, true);
    assert.equal(spec.securityContext?.runAsUser, 65534);
    assert.equal(spec.securityContext?.fsGroup, 65534, 'the projected token is readable by the group');
    assert.deepEqual(spec.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(spec.hostNetwork ?? false, false);
    for (const c of spec.containers) {
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext?.capabilities, { drop: ['ALL'] });
      assert.equal(c.securityContext?.privileged ?? false, false);
      assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, 'requests');
      assert.ok(c.resources?.limits?.cpu && c.resources.limits.memory, 'limits');
      assert.equal(c.image, base.image, 'the image it is given (IRSA_IMAGE_VERIFY)');
      const home = c.env?.find((e) => e.name === 'HOME')?.value;
      assert.equal(home, '/home/irsa-verify');
      assert.ok(
        c.volumeMounts?.some((m) => m.mountPath === home && spec.volumes?.some((v) => v.name === m.name && v.emptyDir)),
        'HOME is a writable emptyDir',
      );
      assert.deepEqual(
        c.env?.find((e) => e.name === 'AWS_REGION'),
        { name: 'AWS_REGION', value: 'us-east-1' },
      );
    }
    // Only volume types the restricted profile allows (the webhook adds a projected one).
    for (const v of spec.volumes ?? []) assert.deepEqual(Object.keys(v).sort(), ['emptyDir', 'name']);
    assert.equal(spec.activeDeadlineSeconds, 600, 'gone by itself should the harness die');
  });

  it('on OpenShift names no user: the restricted SCC assigns one of the namespace range', () => {
    const pod = verifyPodManifest(base);
    assert.equal(pod.spec?.securityContext?.runAsUser, undefined);
    assert.equal(pod.spec?.securityContext?.fsGroup, undefined);
    assert.equal(pod.spec?.securityContext?.runAsNonRoot, true);
  });
});
