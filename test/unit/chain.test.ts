/**
 * Who may change the discovery bucket (support/chain/discovery-bucket.ts), evaluated on bucket states
 * written here: the bucket policy through iam-simulate, the ACLs by S3's rules, with Block Public
 * Access and Object Ownership; and what differs between two readings (support/chain/tamper.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DiscoveryBucketState, describeRights, whoMayChange } from '../../support/chain/discovery-bucket.ts';
import { differences } from '../../support/chain/tamper.ts';

const BUCKET = 'irsa-oidc-test';
const OWN = '123456789012';
const OWNER_ID = 'owner-canonical-id';
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';
const AUTHENTICATED = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';

const publicRead = {
  Sid: 'PublicRead',
  Effect: 'Allow',
  Principal: '*',
  Action: 's3:GetObject',
  Resource: [`arn:aws:s3:::${BUCKET}/.well-known/openid-configuration`, `arn:aws:s3:::${BUCKET}/keys.json`],
};

function state(over: Partial<DiscoveryBucketState> & { statements?: object[] } = {}): DiscoveryBucketState {
  const { statements = [], ...rest } = over;
  const ownerOnly = {
    owner: { ID: OWNER_ID },
    grants: [{ Grantee: { Type: 'CanonicalUser' as const, ID: OWNER_ID }, Permission: 'FULL_CONTROL' as const }],
  };
  return {
    bucket: BUCKET,
    accountId: OWN,
    objects: [
      { key: '.well-known/openid-configuration', body: '{}', contentType: 'application/json', acl: ownerOnly },
      { key: 'keys.json', body: '{"keys":[]}', contentType: 'application/json', acl: ownerOnly },
    ],
    policy: JSON.stringify({ Version: '2012-10-17', Statement: [publicRead, ...statements] }),
    acl: ownerOnly,
    publicAccessBlock: {
      BlockPublicAcls: true,
      IgnorePublicAcls: true,
      BlockPublicPolicy: false,
      RestrictPublicBuckets: false,
    },
    objectOwnership: 'BucketOwnerEnforced',
    ...rest,
  };
}

const summary = async (s: DiscoveryBucketState) =>
  (await whoMayChange(s)).map(
    (r) => `${r.kind} ${r.operation} ${r.target.replace(`s3://${BUCKET}`, '')}: ${r.allowedBy}`,
  );

describe('whoMayChange', () => {
  it('finds nobody on the default setup: a public read of the two documents, owner-only ACLs', async () => {
    assert.deepEqual(await summary(state()), []);
    assert.deepEqual(await summary(state({ policy: undefined })), [], 'nor without a bucket policy');
  });

  it('names the statement that lets anyone write, for every caller it reaches', async () => {
    const rights = await summary(
      state({
        statements: [
          {
            Sid: 'AnyoneWrites',
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:PutObject',
            Resource: `arn:aws:s3:::${BUCKET}/keys.json`,
          },
        ],
      }),
    );
    assert.deepEqual(rights, [
      'anonymous PutObject /keys.json: bucket policy statement 1 (Sid AnyoneWrites)',
      'same-account PutObject /keys.json: bucket policy statement 1 (Sid AnyoneWrites)',
      'other-account PutObject /keys.json: bucket policy statement 1 (Sid AnyoneWrites)',
    ]);
  });

  it('reports a condition the caller controls, and does not count one on who the caller is', async () => {
    const rights = await summary(
      state({
        statements: [
          {
            Sid: 'OverTls',
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:DeleteObject',
            Resource: `arn:aws:s3:::${BUCKET}/*`,
            Condition: { Bool: { 'aws:SecureTransport': 'true' } },
          },
          {
            Sid: 'OwnAccountPolicies',
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:PutBucketPolicy',
            Resource: `arn:aws:s3:::${BUCKET}`,
            Condition: { StringEquals: { 'aws:PrincipalAccount': OWN } },
          },
        ],
      }),
    );
    assert.ok(
      rights.includes(
        'anonymous DeleteObject /keys.json: bucket policy statement 1 (Sid OverTls) when aws:SecureTransport Bool true',
      ),
    );
    // Any principal of the owner's account, even without permissions of its own, may replace the policy.
    assert.deepEqual(
      rights.filter((r) => r.includes('PutBucketPolicy')),
      ['same-account PutBucketPolicy : bucket policy statement 2 (Sid OwnAccountPolicies)'],
    );
  });

  it('evaluates every account the policy names, and Block Public Access restricting a public policy', async () => {
    const partner = {
      Sid: 'Partner',
      Effect: 'Allow',
      Principal: { AWS: 'arn:aws:iam::210987654321:root' },
      Action: 's3:PutObject',
      Resource: `arn:aws:s3:::${BUCKET}/keys.json`,
    };
    const s = state({ statements: [partner] });
    assert.deepEqual(describeRights(await whoMayChange(s)), [
      `account 210987654321 (named in the bucket policy as arn:aws:iam::210987654321:root) may PutObject s3://${BUCKET}/keys.json (s3:PutObject): bucket policy statement 1 (Sid Partner)`,
    ]);
    // The policy is public (its public read): RestrictPublicBuckets confines it to the owner's account.
    const restricted = state({
      statements: [partner],
      publicAccessBlock: { ...s.publicAccessBlock, RestrictPublicBuckets: true },
    });
    assert.deepEqual(await summary(restricted), []);
  });

  it('counts ACL grants by S3 rules: AllUsers, AuthenticatedUsers, another canonical user; not when ignored or disabled', async () => {
    const acl = {
      owner: { ID: OWNER_ID },
      grants: [
        { Grantee: { Type: 'CanonicalUser' as const, ID: OWNER_ID }, Permission: 'FULL_CONTROL' as const },
        { Grantee: { Type: 'Group' as const, URI: ALL_USERS }, Permission: 'WRITE' as const },
        { Grantee: { Type: 'Group' as const, URI: AUTHENTICATED }, Permission: 'WRITE_ACP' as const },
        { Grantee: { Type: 'CanonicalUser' as const, ID: 'someone-else' }, Permission: 'FULL_CONTROL' as const },
      ],
    };
    const open = state({
      acl,
      objectOwnership: 'ObjectWriter',
      publicAccessBlock: {
        BlockPublicAcls: false,
        IgnorePublicAcls: false,
        BlockPublicPolicy: false,
        RestrictPublicBuckets: false,
      },
    });
    const rights = await summary(open);
    const bucketAcl = (who: string) => rights.filter((r) => r.startsWith(`${who} PutBucketAcl`));
    assert.ok(
      rights.includes(`anonymous PutObject /keys.json: the bucket ACL's grant of WRITE to AllUsers (${ALL_USERS})`),
    );
    assert.ok(
      rights.includes(`anonymous DeleteObject /keys.json: the bucket ACL's grant of WRITE to AllUsers (${ALL_USERS})`),
    );
    assert.deepEqual(bucketAcl('anonymous'), [], 'WRITE_ACP to AuthenticatedUsers does not reach anonymous callers');
    assert.deepEqual(bucketAcl('same-account'), [
      `same-account PutBucketAcl : the bucket ACL's grant of WRITE_ACP to AuthenticatedUsers (${AUTHENTICATED})`,
    ]);
    assert.ok(
      bucketAcl('other-account').includes(
        "other-account PutBucketAcl : the bucket ACL's grant of FULL_CONTROL to canonical user someone-else",
      ),
    );
    const ignored = await summary({
      ...open,
      publicAccessBlock: { ...open.publicAccessBlock, IgnorePublicAcls: true },
    });
    assert.ok(
      ignored.every((r) => r.includes('canonical user someone-else')),
      'IgnorePublicAcls leaves only the non-public grant',
    );
    assert.deepEqual(await summary({ ...open, objectOwnership: 'BucketOwnerEnforced' }), [], 'ACLs disabled');
  });
});

describe('differences', () => {
  it('names what changed between two readings, and nothing for the same one', () => {
    const before = state();
    assert.deepEqual(differences(before, state()), []);
    const after = state({
      policy: undefined,
      publicAccessBlock: undefined,
      objects: [{ key: '.well-known/openid-configuration' }, { key: 'keys.json', body: '{"keys":[1]}' }],
    });
    assert.deepEqual(differences(before, after), [
      '.well-known/openid-configuration: gone',
      'keys.json: other content',
      'the bucket policy',
      'Block Public Access',
    ]);
  });
});
