/**
 * Partitions and endpoints (issue 15, item 6): every ARN the harness builds takes the region's
 * partition (aws, aws-cn, aws-us-gov), and S3 URLs its DNS suffix; credentials of another
 * partition than the region's are refused; AWS_ENDPOINT_URL (and AWS_CA_BUNDLE) point every AWS
 * client of the live target at an endpoint as IRSA_AWS_ENDPOINT does, an endpoint of AWS's own
 * (FIPS, VPC) keeps real-AWS behaviour. The suite itself runs in aws-cn on the embedded target in
 * test/integration/partition-run.test.ts.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { dnsSuffixOf, isAwsHostedEndpoint, partitionOf } from '../../support/aws/regions.ts';
import { bucketForIssuer } from '../../support/aws/s3-url.ts';
import { loadConfig } from '../../support/config.ts';
import { isUsageError } from '../../support/errors.ts';
import { repoRoot } from '../../support/paths.ts';
import { permissionPolicyFor, trustPolicyFor } from '../../support/provision/application.ts';
import type { ProvisionContext } from '../../support/provision/context.ts';
import { publicReadPolicy } from '../../support/provision/infrastructure.ts';
import { loadSetup } from '../../support/setup/setup.ts';
import { checkPartition, liveConnectionDescriptor } from '../../support/targets/live/index.ts';

describe('partitions', () => {
  it('come from the region', () => {
    assert.equal(partitionOf('us-east-1'), 'aws');
    assert.equal(partitionOf('cn-north-1'), 'aws-cn');
    assert.equal(partitionOf('us-gov-west-1'), 'aws-us-gov');
    assert.equal(dnsSuffixOf('cn-northwest-1'), 'amazonaws.com.cn');
  });

  it("the setup's policies and the harness's own are rendered in the region's partition", () => {
    const setup = loadSetup(path.join(repoRoot, 'fixtures/setups/default'));
    const ctx = {
      setup,
      target: { aws: { region: 'cn-north-1' }, dialect: { audience: 'sts.amazonaws.com' } },
    } as unknown as ProvisionContext;
    const tenant = { namespace: 'ns', serviceAccount: 'sa', appBucket: 'app-bucket' } as Parameters<
      typeof permissionPolicyFor
    >[1];
    const permission = JSON.stringify(permissionPolicyFor(ctx, tenant));
    assert.match(permission, /"arn:aws-cn:s3:::app-bucket\/\*"/);
    assert.doesNotMatch(permission, /arn:aws:/);
    const trust = JSON.stringify(
      trustPolicyFor(ctx, tenant, {
        issuer: 'https://oidc.example/x',
        identityProviderArn: 'arn:aws-cn:iam::111122223333:oidc-provider/oidc.example/x',
      } as Parameters<typeof trustPolicyFor>[2]),
    );
    assert.match(trust, /arn:aws-cn:iam::111122223333:oidc-provider/);
    assert.match(publicReadPolicy('docs', ['keys.json'], 'aws-us-gov'), /"arn:aws-us-gov:s3:::docs\/keys\.json"/);
  });

  it("an issuer that is a bucket's root is recognised with the partition's domain", () => {
    const aws = { region: 'cn-north-1' };
    assert.equal(bucketForIssuer(aws, `https://my-oidc.s3.cn-north-1.${dnsSuffixOf('cn-north-1')}`), 'my-oidc');
    assert.equal(bucketForIssuer(aws, 'https://my-oidc.s3.cn-north-1.amazonaws.com'), undefined, 'not a China URL');
    assert.equal(
      bucketForIssuer({ region: 'us-gov-west-1' }, 'https://gov-oidc.s3.us-gov-west-1.amazonaws.com'),
      'gov-oidc',
    );
  });

  it("credentials of another partition than the region's are refused (exit 2)", () => {
    assert.doesNotThrow(() =>
      checkPartition({ arn: 'arn:aws-us-gov:iam::111122223333:user/ops' }, 'us-gov-west-1', 'x'),
    );
    assert.throws(
      () => checkPartition({ arn: 'arn:aws-us-gov:iam::111122223333:user/ops' }, 'us-east-1', 'default'),
      (e: unknown) =>
        isUsageError(e) &&
        /^region us-east-1 \(default\) is in partition aws, but the AWS credentials are of partition aws-us-gov/.test(
          e.message,
        ) &&
        /us-gov-west-1/.test(e.hint),
    );
  });
});

describe('AWS_ENDPOINT_URL', () => {
  const connect = { kubeconfigPath: '/k', server: 'https://api.example:6443', region: 'us-east-1' };

  it('is read as the live target endpoint; IRSA_AWS_ENDPOINT wins', () => {
    assert.equal(
      loadConfig({ AWS_ENDPOINT_URL: 'https://aws.internal:4566' }).live.awsEndpoint,
      'https://aws.internal:4566',
    );
    assert.equal(
      loadConfig({ AWS_ENDPOINT_URL: 'https://a.internal', IRSA_AWS_ENDPOINT: 'https://b.internal' }).live.awsEndpoint,
      'https://b.internal',
    );
    assert.equal(loadConfig({ AWS_CA_BUNDLE: '/etc/ca.pem' }).live.awsCaBundle, '/etc/ca.pem');
    assert.throws(
      () => loadConfig({ AWS_ENDPOINT_URL: 'not a url' }),
      (e: unknown) => isUsageError(e) && /^invalid setting AWS_ENDPOINT_URL \(live\.awsEndpoint\)/.test(e.message),
    );
  });

  it('an emulator: path-style buckets, strong consistency; an endpoint of AWS: as AWS', () => {
    const emulator = liveConnectionDescriptor(loadConfig({ AWS_ENDPOINT_URL: 'https://aws.internal:4566' }), connect);
    assert.equal(
      emulator.aws.endpoint,
      'https://aws.internal:4566',
      'every client uses it (clients.ts awsClientOptions)',
    );
    assert.equal(emulator.aws.forcePathStyle, true);
    assert.equal(emulator.aws.eventuallyConsistent, false);
    const fips = `https://sts-fips.us-east-1.${dnsSuffixOf('us-east-1')}`;
    assert.ok(isAwsHostedEndpoint(fips, 'us-east-1'));
    const aws = liveConnectionDescriptor(loadConfig({ AWS_ENDPOINT_URL: fips }), connect);
    assert.equal(aws.aws.endpoint, fips);
    assert.equal(aws.aws.forcePathStyle, false);
    assert.equal(aws.aws.eventuallyConsistent, true);
  });
});
