/**
 * Unit tests of support/policy: the least-privilege lint of trust and permission policies, and the
 * simulation of both with explanations naming statement and condition.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../support/errors.ts';
import { parseIamDocument } from '../../support/policy/document.ts';
import { type LintFinding, lintFails, lintPermissionPolicy, lintTrustPolicy } from '../../support/policy/lint.ts';
import { PolicySimulationError, simulatePermission, simulateTrust } from '../../support/policy/simulate.ts';

const ACCOUNT = '123456789012';
// A port in the issuer: the embedded target's shape, and a colon inside the condition key.
const HOST = '127.0.0.1:8443/oidc-bucket';
const IDP = `arn:aws:iam::${ACCOUNT}:oidc-provider/${HOST}`;
const SA = 'system:serviceaccount:app:s3-manager';
const AUD = 'sts.amazonaws.com';

function trustPolicy(
  condition: Record<string, Record<string, string | string[]>> | undefined,
  principal: unknown = { Federated: IDP },
) {
  const statement: Record<string, unknown> = {
    Sid: 'IRSA',
    Effect: 'Allow',
    Principal: principal,
    Action: 'sts:AssumeRoleWithWebIdentity',
  };
  if (condition) statement.Condition = condition;
  return { Version: '2012-10-17', Statement: [statement] };
}

const ARTICLE_TRUST = trustPolicy({ StringEquals: { [`${HOST}:sub`]: SA, [`${HOST}:aud`]: AUD } });

const ARTICLE_PERMISSIONS = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: 's3:ListAllMyBuckets', Resource: '*' },
    { Sid: 'Bucket', Effect: 'Allow', Action: 's3:ListBucket', Resource: 'arn:aws:s3:::app-bucket' },
    {
      Sid: 'Objects',
      Effect: 'Allow',
      Action: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'],
      Resource: 'arn:aws:s3:::app-bucket/*',
    },
  ],
};

const rules = (fs: LintFinding[]) => fs.map((f) => `${f.rule}:${f.severity}`);

describe('lintTrustPolicy', () => {
  it('accepts the article trust policy with sub and aud conditions', () => {
    assert.deepEqual(lintTrustPolicy(ARTICLE_TRUST, { issuerHostPath: HOST }), []);
    assert.deepEqual(lintTrustPolicy(ARTICLE_TRUST, { issuerHostPath: `https://${HOST}` }), [], 'issuer with scheme');
  });

  it('reports a trust policy without a sub condition: any service account', () => {
    const f = lintTrustPolicy(trustPolicy({ StringEquals: { [`${HOST}:aud`]: AUD } }), { issuerHostPath: HOST });
    assert.deepEqual(rules(f), ['trust-any-service-account:critical']);
    assert.equal(f[0]?.statement, 'IRSA');
    assert.match(f[0]?.message ?? '', /^statement 0 \(Sid IRSA\): no 127\.0\.0\.1:8443\/oidc-bucket:sub condition/);
  });

  it('reports the demo script wildcard system:serviceaccount:*:* and a namespace-wide wildcard', () => {
    const any = lintTrustPolicy(
      trustPolicy({
        StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:*:*' },
        StringEquals: { [`${HOST}:aud`]: AUD },
      }),
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(any), ['trust-any-service-account:critical']);
    assert.match(any[0]?.message ?? '', /any namespace/);
    const ns = lintTrustPolicy(
      trustPolicy({
        StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:app:*' },
        StringEquals: { [`${HOST}:aud`]: AUD },
      }),
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(ns), ['trust-namespace-service-accounts:error']);
    assert.match(ns[0]?.message ?? '', /every service account of namespace app/);
    const prefix = lintTrustPolicy(
      trustPolicy({
        StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:app:s3-*' },
        StringEquals: { [`${HOST}:aud`]: AUD },
      }),
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(prefix), ['trust-broad-service-account:warning']);
  });

  it('does not count a negated sub condition as a restriction', () => {
    const f = lintTrustPolicy(
      trustPolicy({ StringNotEquals: { [`${HOST}:sub`]: SA }, StringEquals: { [`${HOST}:aud`]: AUD } }),
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(f), ['trust-any-service-account:critical']);
  });

  it('warns when there is no aud condition', () => {
    const f = lintTrustPolicy(trustPolicy({ StringEquals: { [`${HOST}:sub`]: SA } }), { issuerHostPath: HOST });
    assert.deepEqual(rules(f), ['trust-no-audience-condition:warning']);
  });

  it('reports a Principal that is not the cluster issuer IdP', () => {
    const star = lintTrustPolicy(trustPolicy({ StringEquals: { [`${HOST}:sub`]: SA, [`${HOST}:aud`]: AUD } }, '*'), {
      issuerHostPath: HOST,
    });
    assert.deepEqual(rules(star), ['trust-principal-not-oidc-provider:error']);
    const other = lintTrustPolicy(
      trustPolicy({ StringEquals: { [`${HOST}:sub`]: SA, [`${HOST}:aud`]: AUD } }, { Federated: `${IDP}/` }),
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(other), ['trust-principal-other-issuer:error']);
    assert.match(other[0]?.message ?? '', /oidc-bucket\/, but the cluster's issuer is 127\.0\.0\.1:8443\/oidc-bucket:/);
  });

  it('reports swapped :aud and :sub keys and keys of another issuer', () => {
    const swapped = lintTrustPolicy(trustPolicy({ StringEquals: { [`${HOST}:sub`]: AUD, [`${HOST}:aud`]: SA } }), {
      issuerHostPath: HOST,
    });
    assert.deepEqual(rules(swapped).sort(), ['trust-audience-is-subject:error', 'trust-subject-is-audience:error']);
    const foreign = lintTrustPolicy(
      trustPolicy({ StringEquals: { 'oidc.eks.example/id/X:sub': SA, [`${HOST}:aud`]: AUD } }),
      { issuerHostPath: HOST },
    );
    // Another issuer's :sub is absent from this cluster's tokens: the statement admits none of them.
    assert.deepEqual(rules(foreign), ['trust-condition-other-issuer:error']);
    const foreignIfExists = lintTrustPolicy(
      trustPolicy({
        StringEqualsIfExists: { 'oidc.eks.example/id/X:sub': SA },
        StringEquals: { [`${HOST}:aud`]: AUD },
      }),
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(foreignIfExists), [
      'trust-condition-other-issuer:error',
      'trust-any-service-account:critical',
    ]);
  });

  it('warns about a wildcard StringEquals never matches and a sub that is no service account', () => {
    const eq = lintTrustPolicy(
      trustPolicy({ StringEquals: { [`${HOST}:sub`]: 'system:serviceaccount:app:*', [`${HOST}:aud`]: AUD } }),
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(eq), ['trust-wildcard-in-string-equals:warning']);
    const odd = lintTrustPolicy(
      trustPolicy({ StringEquals: { [`${HOST}:sub`]: 'app:s3-manager', [`${HOST}:aud`]: AUD } }),
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(odd), ['trust-sub-not-service-account:warning']);
  });

  it('reports a trust policy with no web-identity statement, and ignores Deny statements', () => {
    const f = lintTrustPolicy(
      {
        Version: '2012-10-17',
        Statement: { Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' },
      },
      { issuerHostPath: HOST },
    );
    assert.deepEqual(rules(f), ['trust-no-web-identity-statement:error']);
    const deny = {
      Version: '2012-10-17',
      Statement: [...ARTICLE_TRUST.Statement, { Effect: 'Deny', Principal: '*', Action: 'sts:*' }],
    };
    assert.deepEqual(lintTrustPolicy(deny, { issuerHostPath: HOST }), []);
  });

  it('warns about a wildcard action and names statements by index when there is no Sid', () => {
    const doc = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Federated: IDP },
          Action: 'sts:*',
          Condition: { StringEquals: { [`${HOST}:sub`]: SA, [`${HOST}:aud`]: AUD } },
        },
      ],
    };
    const f = lintTrustPolicy(doc, { issuerHostPath: HOST });
    assert.deepEqual(rules(f), ['trust-wildcard-action:warning']);
    assert.equal(f[0]?.statement, 0);
  });

  it('refuses a document that is not a policy with a UsageError', () => {
    assert.throws(() => lintTrustPolicy({ foo: 1 }, { issuerHostPath: HOST }), UsageError);
    assert.throws(() => lintTrustPolicy('{"Statement": [', { issuerHostPath: HOST }), /not valid JSON/);
    assert.throws(
      () => lintTrustPolicy({ Statement: [{ Effect: 'allow' }] }, { issuerHostPath: HOST }),
      /Effect "allow"/,
    );
  });
});

describe('lintPermissionPolicy', () => {
  it('accepts the article permissions policy', () => {
    assert.deepEqual(lintPermissionPolicy(ARTICLE_PERMISSIONS), []);
  });

  it('reports s3:* and * actions, and object actions on every bucket', () => {
    const s3all = lintPermissionPolicy({ Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] });
    assert.deepEqual(rules(s3all), [
      'permission-wildcard-action:error',
      'permission-object-action-on-any-resource:error',
    ]);
    const star = lintPermissionPolicy({
      Statement: [{ Effect: 'Allow', Action: '*', Resource: 'arn:aws:s3:::app-bucket/*' }],
    });
    assert.deepEqual(rules(star), ['permission-wildcard-action:error']);
    assert.match(star[0]?.message ?? '', /every action of every service/);
  });

  it('reports Put/Get/DeleteObject on "*" or arn:aws:s3:::* but not on the app bucket', () => {
    for (const resource of [
      '*',
      'arn:aws:s3:::*',
      'arn:aws:s3:::*/*',
      'arn:aws-cn:s3:::*/*',
      ['arn:aws:s3:::app-bucket/*', 'arn:aws:s3:::*'],
    ]) {
      const f = lintPermissionPolicy({
        Statement: [{ Sid: 'O', Effect: 'Allow', Action: 's3:GetObject', Resource: resource }],
      });
      assert.deepEqual(rules(f), ['permission-object-action-on-any-resource:error'], JSON.stringify(resource));
      assert.equal(f[0]?.statement, 'O');
    }
    const listAll = lintPermissionPolicy({
      Statement: [{ Effect: 'Allow', Action: 's3:ListAllMyBuckets', Resource: '*' }],
    });
    assert.deepEqual(listAll, [], 'a bucket-listing action on * is not an object action');
  });

  it('warns about partial wildcards, wildcard buckets, NotAction and NotResource; ignores Deny', () => {
    const f = lintPermissionPolicy({
      Statement: [
        { Effect: 'Allow', Action: 's3:Put*', Resource: 'arn:aws:s3:::tenant-*/*' },
        { Effect: 'Allow', NotAction: 'iam:*', Resource: 'arn:aws:s3:::app-bucket/*' },
        { Effect: 'Allow', Action: 's3:GetObject', NotResource: 'arn:aws:s3:::secret/*' },
        { Effect: 'Deny', Action: '*', Resource: '*' },
      ],
    });
    assert.deepEqual(rules(f), [
      'permission-partial-wildcard-action:warning',
      'permission-wildcard-bucket:warning',
      'permission-not-action:warning',
      'permission-not-resource:warning',
    ]);
    assert.deepEqual(
      f.map((x) => x.statement),
      [0, 0, 1, 2],
    );
  });
});

describe('lintFails', () => {
  const error: LintFinding = { rule: 'permission-wildcard-action', severity: 'error', statement: 0, message: 'm' };
  const warning: LintFinding = { rule: 'trust-no-audience-condition', severity: 'warning', statement: 0, message: 'm' };
  const critical: LintFinding = { rule: 'trust-any-service-account', severity: 'critical', statement: 0, message: 'm' };
  it('fails on errors only in strict mode, on critical findings in every mode', () => {
    assert.equal(lintFails([error], true), true);
    assert.equal(lintFails([warning], true), false);
    assert.equal(lintFails([error, warning], false), false);
    assert.equal(lintFails([critical], false), true);
    assert.equal(lintFails([critical, warning], true), true);
  });
});

describe('simulateTrust', () => {
  const claims = { sub: SA, aud: AUD };
  const run = (trust: unknown, c = claims, idp = IDP) =>
    simulateTrust({ trustPolicy: trust, identityProviderArn: idp, claims: c, issuerHostPath: HOST });

  it('allows the article trust policy for the right service account, naming the statement', async () => {
    const r = await run(ARTICLE_TRUST);
    assert.equal(r.decision, 'Allowed');
    assert.match(
      r.explanation,
      /^statement 0 \(Sid IRSA\) allows sts:AssumeRoleWithWebIdentity from arn:aws:iam::123456789012:oidc-provider\/127\.0\.0\.1:8443\/oidc-bucket/,
    );
  });

  it('names the sub condition when another service account of the namespace tries', async () => {
    const r = await run(ARTICLE_TRUST, { sub: 'system:serviceaccount:app:other', aud: AUD });
    assert.equal(r.decision, 'ImplicitlyDenied');
    assert.equal(
      r.explanation,
      `statement 0 (Sid IRSA) requires ${HOST}:sub StringEquals ${SA}, the token has system:serviceaccount:app:other`,
    );
  });

  it('names the aud condition for a token with the wrong audience', async () => {
    const r = await run(ARTICLE_TRUST, { sub: SA, aud: 'vault' });
    assert.equal(r.decision, 'ImplicitlyDenied');
    assert.equal(r.explanation, `statement 0 (Sid IRSA) requires ${HOST}:aud StringEquals ${AUD}, the token has vault`);
  });

  it('explains a condition keyed for another issuer', async () => {
    const r = await run(trustPolicy({ StringEquals: { 'oidc.other.example/x:sub': SA } }));
    assert.equal(r.decision, 'ImplicitlyDenied');
    assert.match(r.explanation, /requires oidc\.other\.example\/x:sub StringEquals .*another issuer's key/);
  });

  it('explains a Principal for another IdP', async () => {
    const r = await run(
      trustPolicy(
        { StringEquals: { [`${HOST}:sub`]: SA } },
        { Federated: `arn:aws:iam::${ACCOUNT}:oidc-provider/other.example` },
      ),
    );
    assert.equal(r.decision, 'ImplicitlyDenied');
    assert.equal(
      r.explanation,
      `statement 0 (Sid IRSA) trusts arn:aws:iam::${ACCOUNT}:oidc-provider/other.example, the token's identity provider is ${IDP}`,
    );
  });

  it('lets the demo wildcard admit a service account of any namespace', async () => {
    const r = await run(trustPolicy({ StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:*:*' } }), {
      sub: 'system:serviceaccount:tenant-b:x',
      aud: AUD,
    });
    assert.equal(r.decision, 'Allowed');
    assert.match(r.explanation, /StringLike system:serviceaccount:\*:\*/);
  });

  it('names the Deny statement that wins', async () => {
    const doc = {
      Version: '2012-10-17',
      Statement: [
        ...ARTICLE_TRUST.Statement,
        {
          Sid: 'Block',
          Effect: 'Deny',
          Principal: '*',
          Action: 'sts:AssumeRoleWithWebIdentity',
          Condition: { StringEquals: { [`${HOST}:sub`]: SA } },
        },
      ],
    };
    const r = await run(doc);
    assert.equal(r.decision, 'ExplicitlyDenied');
    assert.match(r.explanation, /^statement 1 \(Sid Block\) denies sts:AssumeRoleWithWebIdentity/);
  });

  it('says so when no statement covers web identity', async () => {
    const r = await run({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Federated: IDP }, Action: 'sts:AssumeRole' }],
    });
    assert.equal(r.decision, 'ImplicitlyDenied');
    assert.equal(r.explanation, 'statement 0 does not cover sts:AssumeRoleWithWebIdentity');
  });
});

describe('simulatePermission', () => {
  const role = `arn:aws:sts::${ACCOUNT}:assumed-role/app-role/botocore-session-1`;
  const policies: { name: string; document: unknown }[] = [{ name: 'app-policy', document: ARTICLE_PERMISSIONS }];
  const run = (action: string, resource: string, ps = policies) =>
    simulatePermission({ policies: ps, principalArn: role, action, resource });

  it('allows the article actions and names the allowing statement', async () => {
    const put = await run('s3:PutObject', 'arn:aws:s3:::app-bucket/k');
    assert.equal(put.decision, 'Allowed');
    assert.deepEqual(put.allowingStatements, ['policy app-policy statement 2 (Sid Objects)']);
    assert.equal((await run('s3:ListAllMyBuckets', '*')).decision, 'Allowed');
    assert.deepEqual((await run('s3:ListBucket', 'arn:aws:s3:::app-bucket')).allowingStatements, [
      'policy app-policy statement 1 (Sid Bucket)',
    ]);
  });

  it('denies PutObject to another bucket and says which statement nearly matched', async () => {
    const r = await run('s3:PutObject', 'arn:aws:s3:::other-bucket/k');
    assert.equal(r.decision, 'ImplicitlyDenied');
    assert.deepEqual(r.allowingStatements, []);
    assert.equal(
      r.explanation,
      "no statement of the role's policies (app-policy) allows s3:PutObject on arn:aws:s3:::other-bucket/k: policy app-policy statement 2 (Sid Objects) allows s3:PutObject only on arn:aws:s3:::app-bucket/*",
    );
  });

  it('shows an over-broad policy allowing what the isolation check expects denied', async () => {
    const broad = [
      {
        name: 'too-broad',
        document: {
          Version: '2012-10-17',
          Statement: [{ Sid: 'All', Effect: 'Allow', Action: 's3:*', Resource: '*' }],
        },
      },
    ];
    const r = await run('s3:PutObject', 'arn:aws:s3:::tenant-b-bucket/k', broad);
    assert.equal(r.decision, 'Allowed');
    assert.equal(
      r.explanation,
      'policy too-broad statement 0 (Sid All) allows s3:PutObject on arn:aws:s3:::tenant-b-bucket/k',
    );
  });

  it('names the explicit Deny and the Allow it overrides', async () => {
    const ps = [
      {
        name: 'broad',
        document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] },
      },
      {
        name: 'guard',
        document: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'OnlyApp',
              Effect: 'Deny',
              Action: 's3:*',
              NotResource: ['arn:aws:s3:::app-bucket', 'arn:aws:s3:::app-bucket/*'],
            },
          ],
        },
      },
    ];
    const r = await run('s3:GetObject', 'arn:aws:s3:::other/k', ps);
    assert.equal(r.decision, 'ExplicitlyDenied');
    assert.deepEqual(r.denyingStatements, ['policy guard statement 0 (Sid OnlyApp)']);
    assert.deepEqual(r.allowingStatements, ['policy broad statement 0']);
    assert.match(
      r.explanation,
      /^policy guard statement 0 \(Sid OnlyApp\) explicitly denies s3:GetObject on arn:aws:s3:::other\/k \(allowed by policy broad statement 0, but a Deny wins\)$/,
    );
  });

  it('throws PolicySimulationError for an unknown action, UsageError for a non-policy', async () => {
    await assert.rejects(run('s3:PutObjekt', 'arn:aws:s3:::app-bucket/k'), PolicySimulationError);
    await assert.rejects(run('s3:PutObject', 'arn:aws:s3:::app-bucket/k', [{ name: 'x', document: {} }]), UsageError);
  });
});

describe('parseIamDocument', () => {
  it('reads what real IAM returns (URL-encoded) and what an emulator returns (plain JSON) alike', () => {
    const doc = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] };
    assert.deepEqual(parseIamDocument(encodeURIComponent(JSON.stringify(doc))), doc);
    assert.deepEqual(parseIamDocument(`  ${JSON.stringify(doc)}`), doc);
    assert.throws(() => parseIamDocument(''), SyntaxError);
  });
});
