/**
 * Which requests a read-only target lets through (AWS, Kubernetes), and bucketForIssuer, in
 * process. Read-only clients against listeners and a verify-only run with recorded answers are
 * test/integration/live-verify-only.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bucketForIssuer } from '../../support/aws/s3-url.ts';
import { isAllowedKubeRequest, isReadOnlyAwsCommand } from '../../support/read-only.ts';

describe('which requests a read-only target lets through', () => {
  it('AWS: reads and the web-identity exchange only', () => {
    for (const c of [
      'GetObjectCommand',
      'ListObjectsV2',
      'HeadBucket',
      'GetRole',
      'ListOpenIDConnectProviders',
      'GetCallerIdentity',
      'DescribeRegions',
      'AssumeRoleWithWebIdentity',
    ])
      assert.ok(isReadOnlyAwsCommand(c), c);
    for (const c of [
      'CreateBucketCommand',
      'PutObject',
      'DeleteObjects',
      'PutBucketPolicy',
      'CreateRole',
      'AttachRolePolicy',
      'UpdateAssumeRolePolicy',
      'CreateOpenIDConnectProvider',
      'AddClientIDToOpenIDConnectProvider',
      'TagRole',
      'AssumeRole',
      'Getaway',
    ])
      assert.ok(!isReadOnlyAwsCommand(c), c);
  });
  it('Kubernetes: reads, TokenRequests, self-reviews and one pod in the named namespace', () => {
    const p = { podNamespace: 'team-a' };
    assert.ok(isAllowedKubeRequest('GET', '/api/v1/namespaces', p));
    assert.ok(isAllowedKubeRequest('POST', '/api/v1/namespaces/x/serviceaccounts/y/token', p));
    assert.ok(isAllowedKubeRequest('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', p));
    assert.ok(isAllowedKubeRequest('POST', '/api/v1/namespaces/team-a/pods', p));
    assert.ok(isAllowedKubeRequest('DELETE', '/api/v1/namespaces/team-a/pods/irsa-verify-x', p));
    assert.ok(!isAllowedKubeRequest('POST', '/api/v1/namespaces/team-b/pods', p));
    assert.ok(!isAllowedKubeRequest('DELETE', '/api/v1/namespaces/team-a', p));
    assert.ok(!isAllowedKubeRequest('DELETE', '/api/v1/namespaces/team-a/pods', p), 'no collection delete');
    assert.ok(!isAllowedKubeRequest('PATCH', '/api/v1/namespaces/team-a/pods/x', p));
    assert.ok(!isAllowedKubeRequest('POST', '/api/v1/namespaces/team-a/serviceaccounts', p));
    assert.ok(!isAllowedKubeRequest('POST', '/api/v1/namespaces/team-a/pods', {}), 'IRSA_VERIFY_NO_POD: no pod at all');
  });
});

describe('bucketForIssuer', () => {
  const aws = { region: 'us-east-1' };
  it('finds the bucket of S3 issuer URLs in the region', () => {
    assert.equal(bucketForIssuer(aws, 'https://my-oidc.s3.us-east-1.amazonaws.com'), 'my-oidc');
    assert.equal(bucketForIssuer(aws, 'https://my-oidc.s3.amazonaws.com/'), 'my-oidc');
    assert.equal(bucketForIssuer(aws, 'https://s3.us-east-1.amazonaws.com/my-oidc'), 'my-oidc');
    assert.equal(
      bucketForIssuer({ region: 'us-east-1', endpoint: 'https://127.0.0.1:4566/' }, 'https://127.0.0.1:4566/b-1'),
      'b-1',
    );
  });
  it('is undefined where the harness cannot publish at the issuer', () => {
    assert.equal(bucketForIssuer(aws, 'https://my-oidc.s3.eu-west-1.amazonaws.com'), undefined, 'another region');
    assert.equal(bucketForIssuer(aws, 'https://d111111abcdef8.cloudfront.net'), undefined);
    assert.equal(
      bucketForIssuer(aws, 'https://my-oidc.s3.us-east-1.amazonaws.com/cluster-a'),
      undefined,
      'a key prefix',
    );
    assert.equal(bucketForIssuer(aws, 'https://kubernetes.default.svc'), undefined);
    assert.equal(
      bucketForIssuer({ region: 'us-east-1', endpoint: 'https://127.0.0.1:4566' }, 'https://127.0.0.1:9999/b-1'),
      undefined,
    );
  });
});
