/** Unit tests of support/aws/arn.ts: the ARNs IRSA builds and the ones it reads back. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accountIdFromArn,
  identityProviderArn,
  isAssumedRoleArn,
  parseArn,
  roleArn,
  roleNameFromArn,
  s3BucketArn,
  s3ObjectArn,
} from '../../support/aws/arn.ts';
import { UsageError } from '../../support/errors.ts';

describe('parseArn', () => {
  it('splits a role ARN with a path', () => {
    assert.deepEqual(parseArn('arn:aws:iam::123456789012:role/team/app'), {
      partition: 'aws',
      service: 'iam',
      region: '',
      accountId: '123456789012',
      resource: 'role/team/app',
      resourceType: 'role',
      resourceId: 'team/app',
    });
  });

  it('keeps colons inside the resource and reads S3 ARNs without account', () => {
    const p = parseArn('arn:aws:s3:::bucket/a:b/c');
    assert.equal(p.accountId, '');
    assert.equal(p.resource, 'bucket/a:b/c');
    assert.equal(parseArn('arn:aws-cn:sts::123456789012:assumed-role/r/s').partition, 'aws-cn');
  });

  it('refuses strings that are not ARNs with a UsageError naming them', () => {
    for (const bad of ['', 'arn:aws:iam::123:role/x', 'role/x', 'arn:aws:iam::123456789012:']) {
      assert.throws(
        () => parseArn(bad),
        (e: unknown) => e instanceof UsageError && e.message.includes(JSON.stringify(bad)),
      );
    }
  });
});

describe('role names and accounts', () => {
  it('reads the role name from a role ARN (path dropped) and an assumed-role ARN', () => {
    assert.equal(roleNameFromArn('arn:aws:iam::123456789012:role/app'), 'app');
    assert.equal(roleNameFromArn('arn:aws:iam::123456789012:role/team/sub/app'), 'app');
    assert.equal(roleNameFromArn('arn:aws:sts::123456789012:assumed-role/app/botocore-session-1'), 'app');
    assert.throws(() => roleNameFromArn('arn:aws:iam::123456789012:user/bob'), /not a role ARN/);
  });

  it('reads the account id', () => {
    assert.equal(accountIdFromArn('arn:aws:iam::000000000000:role/app'), '000000000000');
  });

  it('builds role and S3 ARNs', () => {
    assert.equal(roleArn('123456789012', 'app'), 'arn:aws:iam::123456789012:role/app');
    assert.equal(roleArn('123456789012', 'app', '/team'), 'arn:aws:iam::123456789012:role/team/app');
    assert.equal(s3BucketArn('b'), 'arn:aws:s3:::b');
    assert.equal(s3ObjectArn('b', 'k/x'), 'arn:aws:s3:::b/k/x');
  });
});

describe('identityProviderArn', () => {
  it('is oidc-provider/<issuer without scheme>', () => {
    assert.equal(
      identityProviderArn('123456789012', 'https://s3.us-east-1.amazonaws.com/oidc-bucket'),
      'arn:aws:iam::123456789012:oidc-provider/s3.us-east-1.amazonaws.com/oidc-bucket',
    );
  });

  it('keeps a trailing slash and a port, so mismatches stay visible', () => {
    assert.equal(identityProviderArn('1', 'https://h/p/'), 'arn:aws:iam::1:oidc-provider/h/p/');
    assert.equal(identityProviderArn('1', 'http://127.0.0.1:5000/b'), 'arn:aws:iam::1:oidc-provider/127.0.0.1:5000/b');
  });
});

describe('isAssumedRoleArn', () => {
  const acct = '123456789012';
  it('accepts a session of the role', () => {
    assert.equal(isAssumedRoleArn(`arn:aws:sts::${acct}:assumed-role/app/s1`, 'app'), true);
  });
  it('refuses another role, a role prefix, a missing session, or the role ARN itself', () => {
    assert.equal(isAssumedRoleArn(`arn:aws:sts::${acct}:assumed-role/other/s1`, 'app'), false);
    assert.equal(isAssumedRoleArn(`arn:aws:sts::${acct}:assumed-role/app-2/s1`, 'app'), false);
    assert.equal(isAssumedRoleArn(`arn:aws:sts::${acct}:assumed-role/app/`, 'app'), false);
    assert.equal(isAssumedRoleArn(`arn:aws:iam::${acct}:role/app`, 'app'), false);
  });
});
