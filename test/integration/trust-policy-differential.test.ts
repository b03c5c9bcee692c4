/**
 * Two independent trust-policy engines must agree: the embedded target's STS decides with
 * tools/moto/trust_policy.py, the harness explains with @cloud-copilot/iam-simulate
 * (support/policy/simulate.ts). Every case is a trust policy and a token's claims; a disagreement
 * prints the case and fails, since one of the two is then wrong and a scenario's behaviour and its
 * diagnosis would contradict each other.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../../support/paths.ts';
import { simulateTrust } from '../../support/policy/simulate.ts';

const HOST = '127.0.0.1:41751/irsa-oidc-envdiff';
const PROVIDER = `arn:aws:iam::123456789012:oidc-provider/${HOST}`;
const OTHER_PROVIDER = 'arn:aws:iam::210987654321:oidc-provider/oidc.example.com/id/ABC';
const ROLE = 'arn:aws:iam::123456789012:role/irsa-diff';
const ACTION = 'sts:AssumeRoleWithWebIdentity';
const SA = 'system:serviceaccount:team-a:s3-manager';

interface Claims {
  sub: string;
  aud: string;
  amr?: string[];
}

interface Case {
  name: string;
  policy: { Version: string; Statement: Record<string, unknown>[] };
  claims: Claims;
}

const subjects = [SA, 'system:serviceaccount:team-a:other-app', 'system:serviceaccount:intruder:s3-manager'];
const audiences = ['sts.amazonaws.com', 'not-sts.example.com'];
const amrs: (string[] | undefined)[] = [undefined, ['authenticated', 'mfa']];

/** Condition blocks over the keys STS derives from a Kubernetes token (and some it does not). */
const conditions: Record<string, Record<string, Record<string, unknown>>> = {
  'StringEquals sub': { StringEquals: { [`${HOST}:sub`]: SA } },
  'StringEquals sub list': { StringEquals: { [`${HOST}:sub`]: ['system:serviceaccount:x:y', SA] } },
  'StringEquals sub and aud': { StringEquals: { [`${HOST}:sub`]: SA, [`${HOST}:aud`]: 'sts.amazonaws.com' } },
  'StringEquals aud': { StringEquals: { [`${HOST}:aud`]: 'sts.amazonaws.com' } },
  'StringLike namespace wildcard': { StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:team-a:*' } },
  'StringLike any namespace': { StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:*:s3-manager' } },
  'StringLike single character': { StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:team-?:*' } },
  'StringLike star': { StringLike: { [`${HOST}:sub`]: '*' } },
  'StringNotEquals sub': { StringNotEquals: { [`${HOST}:sub`]: 'system:serviceaccount:intruder:s3-manager' } },
  'StringNotLike sub': { StringNotLike: { [`${HOST}:sub`]: '*:intruder:*' } },
  'StringEqualsIgnoreCase sub': { StringEqualsIgnoreCase: { [`${HOST}:sub`]: SA.toUpperCase() } },
  'StringNotEqualsIgnoreCase aud': { StringNotEqualsIgnoreCase: { [`${HOST}:aud`]: 'NOT-STS.EXAMPLE.COM' } },
  'StringEquals case differs': { StringEquals: { [`${HOST}:sub`]: SA.toUpperCase() } },
  'key name in other case': { StringEquals: { [`${HOST.toUpperCase()}:SUB`]: SA } },
  'StringEquals custom claim': { StringEquals: { [`${HOST}:email`]: 'a@example.com' } },
  'StringEqualsIfExists custom claim': { StringEqualsIfExists: { [`${HOST}:email`]: 'a@example.com' } },
  'StringEqualsIfExists sub': { StringEqualsIfExists: { [`${HOST}:sub`]: SA } },
  'StringNotEquals custom claim': { StringNotEquals: { [`${HOST}:email`]: 'a@example.com' } },
  'StringNotLikeIfExists sub': { StringNotLikeIfExists: { [`${HOST}:sub`]: '*intruder*' } },
  'Null custom claim true': { Null: { [`${HOST}:email`]: 'true' } },
  'Null sub false': { Null: { [`${HOST}:sub`]: 'false' } },
  'Null sub true': { Null: { [`${HOST}:sub`]: 'true' } },
  'ForAnyValue:StringLike amr': { 'ForAnyValue:StringLike': { [`${HOST}:amr`]: 'mf*' } },
  'ForAnyValue:StringEquals amr': { 'ForAnyValue:StringEquals': { [`${HOST}:amr`]: ['unauthenticated', 'mfa'] } },
  'ForAllValues:StringEquals amr': { 'ForAllValues:StringEquals': { [`${HOST}:amr`]: ['authenticated', 'mfa'] } },
  'ForAllValues:StringEquals amr too narrow': { 'ForAllValues:StringEquals': { [`${HOST}:amr`]: ['mfa'] } },
  'ForAllValues:StringLike sub': { 'ForAllValues:StringLike': { [`${HOST}:sub`]: 'system:serviceaccount:team-a:*' } },
  'ForAnyValue:StringNotEquals aud': { 'ForAnyValue:StringNotEquals': { [`${HOST}:aud`]: 'sts.amazonaws.com' } },
  'another issuer key': { StringEquals: { 'oidc.example.com/id/ABC:sub': SA } },
  'two operators': {
    StringEquals: { [`${HOST}:aud`]: 'sts.amazonaws.com' },
    StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:team-a:*' },
  },
};

function allow(extra: Record<string, unknown>): Record<string, unknown> {
  return { Effect: 'Allow', Principal: { Federated: PROVIDER }, Action: ACTION, ...extra };
}

function cases(): Case[] {
  const out: Case[] = [];
  const claimsList: Claims[] = [];
  for (const sub of subjects)
    for (const aud of audiences) for (const amr of amrs) claimsList.push({ sub, aud, ...(amr ? { amr } : {}) });
  for (const [name, condition] of Object.entries(conditions))
    for (const claims of claimsList)
      out.push({
        name: `${name} | ${claims.sub} ${claims.aud}${claims.amr ? ' amr' : ''}`,
        policy: { Version: '2012-10-17', Statement: [{ Sid: 'Trust', ...allow({ Condition: condition }) }] },
        claims,
      });
  // Principals and actions, unconditioned.
  const principals: Record<string, unknown> = {
    'the provider': { Federated: PROVIDER },
    'the provider in a list': { Federated: [OTHER_PROVIDER, PROVIDER] },
    'another provider': { Federated: OTHER_PROVIDER },
    everyone: '*',
    'an account': { AWS: 'arn:aws:iam::123456789012:root' },
  };
  const actions: Record<string, Record<string, unknown>> = {
    exact: { Action: ACTION },
    'lower case': { Action: ACTION.toLowerCase() },
    wildcard: { Action: 'sts:AssumeRole*' },
    'service wildcard': { Action: 'sts:*' },
    'other action': { Action: 'sts:AssumeRole' },
    'NotAction other': { NotAction: 'sts:AssumeRole' },
    'NotAction wildcard': { NotAction: 'sts:AssumeRoleWith*' },
  };
  const claims = { sub: SA, aud: 'sts.amazonaws.com' };
  for (const [pName, principal] of Object.entries(principals))
    for (const [aName, action] of Object.entries(actions))
      out.push({
        name: `principal ${pName}, action ${aName}`,
        policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: principal, ...action }] },
        claims,
      });
  // Deny wins; a Deny whose condition does not match does not.
  const denies: Record<string, Record<string, unknown>> = {
    'Deny intruder namespace': {
      Effect: 'Deny',
      Principal: '*',
      Action: ACTION,
      Condition: { StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:intruder:*' } },
    },
    'Deny other audiences': {
      Effect: 'Deny',
      Principal: { Federated: PROVIDER },
      Action: 'sts:*',
      Condition: { StringNotEquals: { [`${HOST}:aud`]: 'sts.amazonaws.com' } },
    },
    'Deny NotAction': { Effect: 'Deny', Principal: '*', NotAction: 'sts:AssumeRoleWithWebIdentity' },
    'Deny unconditioned': { Effect: 'Deny', Principal: { Federated: PROVIDER }, Action: ACTION },
  };
  for (const [dName, deny] of Object.entries(denies))
    for (const sub of subjects)
      for (const aud of audiences)
        out.push({
          name: `${dName} | ${sub} ${aud}`,
          policy: {
            Version: '2012-10-17',
            Statement: [allow({ Condition: { StringLike: { [`${HOST}:sub`]: 'system:serviceaccount:*:*' } } }), deny],
          },
          claims: { sub, aud },
        });
  return out;
}

function pythonEvaluator(all: Case[]): { allowed: boolean; reason: string }[] {
  const venv = process.env.IRSA_VENV;
  const python = venv ? join(venv, 'bin/python') : 'python3';
  const input = all.map((c) => ({
    policy: c.policy,
    principal: PROVIDER,
    action: ACTION,
    context: {
      [`${HOST}:sub`]: [c.claims.sub],
      [`${HOST}:aud`]: [c.claims.aud],
      ...(c.claims.amr ? { [`${HOST}:amr`]: c.claims.amr } : {}),
    },
  }));
  const out = execFileSync(python, [join(repoRoot, 'tools/moto/trust_policy.py')], {
    input: JSON.stringify(input),
    encoding: 'utf8',
  });
  return JSON.parse(out) as { allowed: boolean; reason: string }[];
}

test('the emulator and iam-simulate agree on every trust policy x claims case', async () => {
  const all = cases();
  assert.ok(all.length >= 200, `only ${all.length} cases`);
  const emulator = pythonEvaluator(all);
  const disagreements: string[] = [];
  let allowed = 0;
  for (const [i, c] of all.entries()) {
    const sim = await simulateTrust({
      trustPolicy: c.policy,
      identityProviderArn: PROVIDER,
      claims: c.claims,
      issuerHostPath: HOST,
      roleArn: ROLE,
    });
    const mine = emulator[i] as { allowed: boolean; reason: string };
    if (mine.allowed) allowed++;
    if ((sim.decision === 'Allowed') !== mine.allowed)
      disagreements.push(
        `${c.name}\n    policy ${JSON.stringify(c.policy.Statement)}\n    emulator: ${mine.allowed ? 'allowed' : 'refused'} (${mine.reason})\n    iam-simulate: ${sim.decision} (${sim.explanation})`,
      );
  }
  assert.deepEqual(
    disagreements,
    [],
    `${disagreements.length} of ${all.length} cases disagree:\n${disagreements.join('\n')}`,
  );
  // Both outcomes are exercised, so agreement is not agreement on "always" or "never".
  assert.ok(allowed > 40 && allowed < all.length - 40, `${allowed} of ${all.length} allowed`);
});
