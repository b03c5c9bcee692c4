/**
 * IAM policy simulation for the two decisions IRSA depends on, with explanations that name the
 * policy, the statement and the condition that decided:
 * - simulateTrust: may a token with these claims assume the role (sts:AssumeRoleWithWebIdentity)?
 * - simulatePermission: may the role's session perform this S3 action on this resource?
 * - simulateBucketPolicy: may a caller other than the owner (anonymous, or a principal with its own
 *   policies) change a bucket or its objects, as the bucket policy decides?
 *
 * Evaluation is done by @cloud-copilot/iam-simulate. It has no model of a web-identity request
 * from a custom OIDC provider: its request validation keeps only the condition keys iam-data lists
 * for sts:AssumeRoleWithWebIdentity (cognito-identity.amazonaws.com:sub, accounts.google.com:aud,
 * …), and a cluster's `<issuer host/path>:sub` is not among them (nor parseable when the issuer has
 * a port). So the trust policy is evaluated as a resource-based policy of the role, the request's
 * principal being the IdP ARN (which the library matches against `Principal.Federated`), and the
 * token's claims are supplied as request context under an alias prefix the library accepts,
 * `cognito-identity.amazonaws.com`: the trust policy's `<issuer host/path>:sub|aud|amr` keys are
 * rewritten to that prefix before evaluation and mapped back in explanations. Keys for any other
 * issuer stay as written and are therefore missing from the request, as they would be at STS.
 */
import {
  anonymousPrincipal,
  type EvaluationResult,
  type RequestAnalysis,
  runSimulation,
  type Simulation,
  type StatementExplain,
} from '@cloud-copilot/iam-simulate';
import { accountIdFromArn, parseArn, roleArn } from '../aws/arn.ts';
import { issuerHostPath as hostPathOf } from '../oidc/discovery.ts';
import { statementLabel, statementsOf } from './document.ts';

export type Decision = EvaluationResult;

type StatementAnalysis = NonNullable<RequestAnalysis['identityAnalysis']>['allowStatements'][number];
type ConditionExplain = NonNullable<StatementExplain['conditions']>[number];

/** The policies could not be evaluated (invalid syntax, unknown action, resource of the wrong type). */
export class PolicySimulationError extends Error {
  override readonly name = 'PolicySimulationError';
}

const ALIAS = 'cognito-identity.amazonaws.com';
/**
 * The key each claim is evaluated under. STS treats `amr` as multi-valued (Cognito's examples
 * match it with ForAnyValue), but iam-data types `cognito-identity.amazonaws.com:amr` as a single
 * String and the library would compare only its first value; so `amr` travels under a key of the
 * action that iam-data types ArrayOfString (found by the differential test against the emulator).
 */
const CLAIM_KEYS: Record<string, string> = {
  sub: `${ALIAS}:sub`,
  aud: `${ALIAS}:aud`,
  amr: 'sts:TransitiveTagKeys',
};
const CLAIM_OF_KEY = new Map(Object.entries(CLAIM_KEYS).map(([claim, key]) => [key.toLowerCase(), claim]));

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Rewrites `<host>:<claim>` condition keys to the alias prefix; returns the rewritten copy. */
function aliasIssuerKeys(trustPolicy: unknown, host: string): unknown {
  const copy: unknown = structuredClone(trustPolicy);
  if (!isRecord(copy)) return copy;
  const statements = Array.isArray(copy.Statement) ? copy.Statement : [copy.Statement];
  for (const s of statements) {
    if (!isRecord(s) || !isRecord(s.Condition)) continue;
    for (const [operator, block] of Object.entries(s.Condition)) {
      if (!isRecord(block)) continue;
      const rewritten: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(block)) {
        const i = key.lastIndexOf(':');
        const prefix = key.slice(0, i).toLowerCase();
        const claim = key.slice(i + 1).toLowerCase();
        const alias = i > 0 && prefix === host.toLowerCase() ? CLAIM_KEYS[claim] : undefined;
        rewritten[alias ?? key] = value;
      }
      s.Condition[operator] = rewritten;
    }
  }
  return copy;
}

function labelOf(a: StatementAnalysis, policyName?: string): string {
  const label = statementLabel({ index: a.statement.index() - 1, sid: a.statement.sid() });
  return policyName ? `policy ${policyName} ${label}` : label;
}

function conditionValues(c: ConditionExplain): string[] {
  const vs = Array.isArray(c.values) ? c.values : [c.values];
  return vs.map((v) => v.value);
}

/**
 * Why a statement's conditions did not match, one phrase per failed condition:
 * `requires <key> <operator> <values>, <subject> has <value>`.
 */
function failedConditions(
  explain: StatementExplain,
  subject: string,
  displayKey: (key: string) => string,
  missing: (key: string) => string,
): string[] {
  return (explain.conditions ?? [])
    .filter((c) => !c.matches)
    .map((c) => {
      const key = displayKey(c.conditionKeyValue);
      const wanted = `${key} ${c.operator} ${conditionValues(c).join(' or ')}`;
      if (c.missingOperator) return `uses an unknown condition operator ${c.operator}`;
      if (c.failedBecauseMissing) return `requires ${wanted}, ${missing(key)}`;
      const has = c.resolvedConditionKeyValue ?? (c.unmatchedValues ?? []).join(', ');
      return `requires ${wanted}, ${subject} has ${has}`;
    });
}

function matchedConditions(explain: StatementExplain, displayKey: (key: string) => string): string {
  const cs = (explain.conditions ?? []).filter((c) => c.matches);
  if (cs.length === 0) return '';
  return ` (${cs.map((c) => `${displayKey(c.conditionKeyValue)} ${c.operator} ${conditionValues(c).join(' or ')}`).join(', ')})`;
}

function validationMessage(result: Awaited<ReturnType<typeof runSimulation>>): string {
  if (result.resultType !== 'error') return '';
  const parts: string[] = [result.errors.message];
  const add = (where: string, errs: { message: string; path: string }[] | undefined) => {
    for (const e of errs ?? []) parts.push(`${where} ${e.path}: ${e.message}`);
  };
  add('trust/resource policy', result.errors.resourcePolicyErrors);
  for (const [name, errs] of Object.entries(result.errors.identityPolicyErrors ?? {})) add(`policy ${name}`, errs);
  return parts.join('; ');
}

export interface TrustSimulationInput {
  trustPolicy: unknown;
  /** `arn:<partition>:iam::<acct>:oidc-provider/<issuer host/path>`: the principal STS evaluates. */
  identityProviderArn: string;
  /** `amr` (multi-valued) only where the token carries one; Kubernetes tokens do not. */
  claims: { sub: string; aud: string; amr?: string[] };
  /** The issuer without scheme (an issuer with scheme is accepted too). */
  issuerHostPath: string;
  action?: 'sts:AssumeRoleWithWebIdentity';
  /** The role whose trust policy this is; only its account matters. */
  roleArn?: string;
}

export interface TrustSimulation {
  decision: Decision;
  explanation: string;
}

/** Evaluates a role's trust policy for a web-identity token with `claims`. */
export async function simulateTrust(input: TrustSimulationInput): Promise<TrustSimulation> {
  const host = hostPathOf(input.issuerHostPath);
  const action = input.action ?? 'sts:AssumeRoleWithWebIdentity';
  statementsOf(input.trustPolicy, 'trust policy'); // shape errors as UsageError, before the library's
  const accountId = accountIdFromArn(input.identityProviderArn);
  const simulation: Simulation = {
    request: {
      principal: input.identityProviderArn,
      action,
      resource: {
        resource:
          input.roleArn ??
          roleArn(accountId, 'irsa-simulated-role', '/', parseArn(input.identityProviderArn).partition),
        accountId: input.roleArn ? accountIdFromArn(input.roleArn) : accountId,
      },
      contextVariables: {
        [CLAIM_KEYS.sub as string]: input.claims.sub,
        [CLAIM_KEYS.aud as string]: input.claims.aud,
        ...(input.claims.amr ? { [CLAIM_KEYS.amr as string]: input.claims.amr } : {}),
      },
    },
    identityPolicies: [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: aliasIssuerKeys(input.trustPolicy, host),
  };
  const result = await runSimulation(simulation, {});
  if (result.resultType === 'error') {
    throw new PolicySimulationError(`the trust policy cannot be evaluated: ${validationMessage(result)}`);
  }
  const analysis = result.resultType === 'single' ? result.result.analysis : result.results[0]?.analysis;
  const decision = result.overallResult;
  const resourceAnalysis = analysis?.resourceAnalysis;
  const displayKey = (key: string) => {
    const claim = CLAIM_OF_KEY.get(key.toLowerCase());
    return claim ? `${host}:${claim}` : key;
  };
  const missing = (key: string) =>
    `the token's claims are keyed ${host}:sub and ${host}:aud, so ${key} (another issuer's key) is absent`;
  const token = `sub ${input.claims.sub}, aud ${input.claims.aud}`;

  if (decision === 'Allowed') {
    const allow = resourceAnalysis?.allowStatements[0];
    const which = allow ? labelOf(allow) : 'the trust policy';
    const how = allow ? matchedConditions(allow.explain, displayKey) : '';
    return {
      decision,
      explanation: `${which} allows ${action} from ${input.identityProviderArn}${how} for the token with ${token}`,
    };
  }
  if (decision === 'ExplicitlyDenied') {
    const denies = resourceAnalysis?.denyStatements ?? [];
    const which = denies.map((d) => `${labelOf(d)} denies ${action}${matchedConditions(d.explain, displayKey)}`);
    return {
      decision,
      explanation: `${which.join('; ') || `a Deny statement denies ${action}`} for the token with ${token}`,
    };
  }
  const reasons: string[] = [];
  for (const s of resourceAnalysis?.unmatchedStatements ?? []) {
    if (!s.statement.isAllow()) continue;
    const label = labelOf(s);
    if (!s.explain.actionMatch) {
      reasons.push(`${label} does not cover ${action}`);
      continue;
    }
    if (s.explain.principalMatch === 'NoMatch') {
      const trusted = (Array.isArray(s.explain.principals) ? s.explain.principals : [s.explain.principals])
        .filter((p) => p !== undefined)
        .map((p) => p.principal);
      reasons.push(
        `${label} trusts ${trusted.join(', ') || 'no principal'}, the token's identity provider is ${input.identityProviderArn}`,
      );
      continue;
    }
    for (const failure of failedConditions(s.explain, 'the token', displayKey, missing)) {
      reasons.push(`${label} ${failure}`);
    }
  }
  return {
    decision,
    explanation:
      reasons.length > 0
        ? reasons.join('; ')
        : `no statement of the trust policy allows ${action} from ${input.identityProviderArn}`,
  };
}

export interface PermissionSimulationInput {
  policies: { name: string; document: unknown }[];
  /** The role ARN or its assumed-role session ARN. */
  principalArn: string;
  action: string;
  resource: string;
  contextVariables?: Record<string, string | string[]>;
}

export interface PermissionSimulation {
  decision: Decision;
  explanation: string;
  /** `policy <name> statement <i> (Sid …)` of every statement that allowed the request. */
  allowingStatements: string[];
  /** The same for every statement that denied it explicitly. */
  denyingStatements: string[];
}

/** Evaluates the role's identity policies for one action on one resource. */
export async function simulatePermission(input: PermissionSimulationInput): Promise<PermissionSimulation> {
  for (const p of input.policies) statementsOf(p.document, `policy ${p.name}`);
  const principalAccount = accountIdFromArn(input.principalArn);
  const resourceAccount = input.resource === '*' ? '' : accountIdFromArn(input.resource);
  const simulation: Simulation = {
    request: {
      principal: input.principalArn,
      action: input.action,
      // S3 ARNs carry no account: the bucket is taken to be in the principal's account.
      resource: { resource: input.resource, accountId: resourceAccount || principalAccount },
      contextVariables: input.contextVariables ?? {},
    },
    identityPolicies: input.policies.map((p) => ({ name: p.name, policy: p.document })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  const result = await runSimulation(simulation, {});
  if (result.resultType === 'error') {
    throw new PolicySimulationError(
      `${input.action} on ${input.resource} cannot be evaluated: ${validationMessage(result)}`,
    );
  }
  const analyses = result.resultType === 'single' ? [result.result.analysis] : result.results.map((r) => r.analysis);
  const allows = new Map<string, StatementAnalysis>();
  const denies = new Map<string, StatementAnalysis>();
  const unmatched: StatementAnalysis[] = [];
  for (const a of analyses) {
    for (const s of a.identityAnalysis?.allowStatements ?? []) allows.set(labelOf(s, s.policyId), s);
    for (const s of a.identityAnalysis?.denyStatements ?? []) denies.set(labelOf(s, s.policyId), s);
    unmatched.push(...(a.identityAnalysis?.unmatchedStatements ?? []));
  }
  const decision = result.overallResult;
  const allowingStatements = [...allows.keys()];
  const denyingStatements = [...denies.keys()];
  const request = `${input.action} on ${input.resource}`;
  let explanation: string;
  if (decision === 'Allowed') {
    explanation = `${allowingStatements.join(', ')} allow${allowingStatements.length === 1 ? 's' : ''} ${request}`;
  } else if (decision === 'ExplicitlyDenied') {
    explanation = `${denyingStatements.join(', ')} explicitly den${denyingStatements.length === 1 ? 'ies' : 'y'} ${request}`;
    if (allowingStatements.length > 0) explanation += ` (allowed by ${allowingStatements.join(', ')}, but a Deny wins)`;
  } else {
    const nearMisses: string[] = [];
    for (const s of unmatched) {
      if (!s.statement.isAllow() || !s.explain.actionMatch) continue;
      const label = labelOf(s, s.policyId);
      if (!s.explain.resourceMatch) {
        const resources = (Array.isArray(s.explain.resources) ? s.explain.resources : [s.explain.resources])
          .filter((r) => r !== undefined)
          .map((r) => r.resource);
        nearMisses.push(`${label} allows ${input.action} only on ${resources.join(', ') || 'other resources'}`);
      } else if (!s.explain.conditionMatch) {
        const failed = failedConditions(
          s.explain,
          'the request',
          (k) => k,
          (k) => `the request has no ${k}`,
        );
        nearMisses.push(`${label} ${failed.join('; ')}`);
      }
    }
    const names = input.policies.map((p) => p.name).join(', ') || 'none';
    explanation = `no statement of the role's policies (${names}) allows ${request}`;
    if (nearMisses.length > 0) explanation += `: ${nearMisses.join('; ')}`;
  }
  return { decision, explanation, allowingStatements, denyingStatements };
}

/** Who asks, in a simulation of a bucket policy: nobody signed, or a principal with its own policies. */
export type BucketCaller =
  | { anonymous: true }
  | { anonymous?: false; arn: string; identityPolicies: { name: string; document: unknown }[] };

export interface BucketPolicySimulationInput {
  /** The bucket policy as S3 has it; undefined when the bucket has none. */
  bucketPolicy: unknown;
  caller: BucketCaller;
  action: string;
  /** The bucket's or an object's ARN. */
  resource: string;
  /** The account that owns the bucket (S3 ARNs carry none). */
  bucketAccountId: string;
  /** Block Public Access's RestrictPublicBuckets as it applies to the bucket. */
  restrictPublicBuckets: boolean;
}

export interface BucketPolicySimulation {
  decision: Decision;
  /** `statement <i> (Sid …)` of every bucket policy statement that allowed the request. */
  allowingStatements: string[];
  /** The conditions, as written in the policy, under which it is allowed; undefined when it always is. */
  conditions?: string;
  /** "s3-bpa" when the policy allows it but Block Public Access stops it. */
  blockedBy: string[];
}

/** Condition keys whose presence and value follow from who the caller is, not from what it sends. */
const CALLER_KEYS = [
  { keyName: '/^aws:principal/', presenceIsKnown: true, valueIsKnown: true },
  { keyName: 'aws:userid', presenceIsKnown: true, valueIsKnown: true },
  { keyName: 'aws:username', presenceIsKnown: true, valueIsKnown: true },
] as const;

function conditionText(c: NonNullable<RequestAnalysis['conditions']>): string | undefined {
  switch (c.conditionType) {
    case 'always':
      return undefined;
    case 'never':
      return 'never';
    case 'condition':
      return `${c.inverted ? 'not ' : ''}${c.key} ${c.op} ${c.values.join(' or ')}`;
    case 'sessionName':
      return `the session name is ${c.sessionName.join(' or ')}`;
    case 'group': {
      const parts = c.conditions.map(conditionText).filter((p): p is string => p !== undefined);
      return parts.length > 1 ? `(${parts.join(` ${c.operator} `)})` : parts[0];
    }
  }
}

/**
 * Whether a caller other than the bucket's owner may perform `action` on `resource`, as the bucket
 * policy (and, for a principal, its own identity policies) decide. Discovery mode: a condition on
 * what the caller sends (aws:SecureTransport, aws:SourceIp, …) counts as one it can meet and is
 * reported with the answer; conditions on who the caller is (aws:PrincipalArn, aws:PrincipalAccount,
 * …) are decided by the caller's identity, which an anonymous caller does not have.
 */
export async function simulateBucketPolicy(input: BucketPolicySimulationInput): Promise<BucketPolicySimulation> {
  if (input.bucketPolicy !== undefined) statementsOf(input.bucketPolicy, 'bucket policy');
  const caller = input.caller;
  const principal = caller.anonymous ? anonymousPrincipal : caller.arn;
  const simulation: Simulation = {
    request: {
      principal,
      action: input.action,
      resource: { resource: input.resource, accountId: input.bucketAccountId },
      contextVariables: caller.anonymous
        ? {}
        : { 'aws:PrincipalArn': caller.arn, 'aws:PrincipalAccount': accountIdFromArn(caller.arn) },
    },
    identityPolicies: caller.anonymous
      ? []
      : caller.identityPolicies.map((p) => ({ name: p.name, policy: p.document })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(input.bucketPolicy === undefined ? {} : { resourcePolicy: input.bucketPolicy }),
    additionalSettings: { s3: { blockPublicAccess: input.restrictPublicBuckets } },
  };
  const result = await runSimulation(simulation, {
    simulationMode: 'Discovery',
    discoveryContextKeyConstraints: [...CALLER_KEYS],
  });
  if (result.resultType === 'error') {
    throw new PolicySimulationError(
      `${input.action} on ${input.resource} cannot be evaluated for the bucket policy: ${validationMessage(result)}`,
    );
  }
  const analysis = result.resultType === 'single' ? result.result.analysis : result.results[0]?.analysis;
  const allowingStatements = (analysis?.resourceAnalysis?.allowStatements ?? []).map((s) => labelOf(s));
  const conditions = analysis?.conditions ? conditionText(analysis.conditions) : undefined;
  return {
    decision: result.overallResult,
    allowingStatements,
    ...(conditions ? { conditions } : {}),
    blockedBy: [...(analysis?.blockedBy ?? [])],
  };
}
