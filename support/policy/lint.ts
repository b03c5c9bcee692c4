/**
 * Least-privilege lint for IRSA's two policies: the role's trust policy (who may assume it with a
 * web-identity token) and its permissions policy (what the pod may do in S3).
 *
 * Findings carry a severity, and the profile decides what fails (lintFails): `critical` fails every
 * profile (a role that any ServiceAccount of the cluster can assume: whoever can create a pod anywhere
 * holds the role), `error` fails the strict profile, `warning` is reported only. Only Allow
 * statements can over-grant, so Deny statements are not linted.
 */
import { issuerHostPath as hostPathOf } from '../oidc/discovery.ts';
import {
  asList,
  type ConditionEntry,
  conditionsOf,
  federatedPrincipals,
  type IndexedStatement,
  statementCoversAction,
  statementLabel,
  statementsOf,
} from './document.ts';

export type LintRule =
  | 'trust-no-web-identity-statement'
  | 'trust-principal-not-oidc-provider'
  | 'trust-principal-other-issuer'
  | 'trust-any-service-account'
  | 'trust-namespace-service-accounts'
  | 'trust-broad-service-account'
  | 'trust-condition-other-issuer'
  | 'trust-sub-not-service-account'
  | 'trust-wildcard-in-string-equals'
  | 'trust-audience-is-subject'
  | 'trust-subject-is-audience'
  | 'trust-no-audience-condition'
  | 'trust-wildcard-action'
  | 'permission-wildcard-action'
  | 'permission-partial-wildcard-action'
  | 'permission-not-action'
  | 'permission-object-action-on-any-resource'
  | 'permission-wildcard-bucket'
  | 'permission-not-resource';

export type LintSeverity = 'critical' | 'error' | 'warning';

export interface LintFinding {
  rule: LintRule;
  severity: LintSeverity;
  /** The statement's Sid when it has one, else its 0-based index. */
  statement: number | string;
  message: string;
}

const WEB_IDENTITY = 'sts:AssumeRoleWithWebIdentity';
const SA_SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;
const NEGATED = /Not/;

function finding(rule: LintRule, severity: LintSeverity, s: IndexedStatement, message: string): LintFinding {
  return { rule, severity, statement: s.sid ?? s.index, message: `${statementLabel(s)}: ${message}` };
}

function claimOf(key: string): { prefix: string; claim: string } | undefined {
  const i = key.lastIndexOf(':');
  if (i <= 0) return undefined;
  return { prefix: key.slice(0, i), claim: key.slice(i + 1).toLowerCase() };
}

const hasWildcard = (v: string) => /[*?]/.test(v);

/** Findings for one `<issuer>:sub` condition. */
function lintSubCondition(s: IndexedStatement, c: ConditionEntry, out: LintFinding[]): void {
  const like = c.baseOperator === 'StringLike';
  for (const value of c.values) {
    if (value === 'sts.amazonaws.com') {
      out.push(
        finding(
          'trust-subject-is-audience',
          'error',
          s,
          `${c.key} ${c.operator} ${value}: that is an audience, not a subject; did you mean ${claimOf(c.key)?.prefix}:aud? No token matches`,
        ),
      );
      continue;
    }
    if (!like && hasWildcard(value)) {
      out.push(
        finding(
          'trust-wildcard-in-string-equals',
          'warning',
          s,
          `${c.key} ${c.operator} ${value}: ${c.baseOperator} compares * literally, so no token matches; StringLike would match it (and widen the trust)`,
        ),
      );
      continue;
    }
    if (like && hasWildcard(value)) {
      const m = /^system:serviceaccount:([^:]*):(.*)$/.exec(value);
      const namespace = m?.[1];
      const name = m?.[2];
      if (!m || namespace === undefined || name === undefined || hasWildcard(namespace)) {
        out.push(
          finding(
            'trust-any-service-account',
            'critical',
            s,
            `${c.key} ${c.operator} ${value} admits service accounts of any namespace of the cluster`,
          ),
        );
      } else if (name === '*') {
        out.push(
          finding(
            'trust-namespace-service-accounts',
            'error',
            s,
            `${c.key} ${c.operator} ${value} admits every service account of namespace ${namespace}`,
          ),
        );
      } else {
        out.push(
          finding(
            'trust-broad-service-account',
            'warning',
            s,
            `${c.key} ${c.operator} ${value} admits every service account of namespace ${namespace} whose name matches ${name}`,
          ),
        );
      }
      continue;
    }
    if (!SA_SUBJECT.test(value)) {
      out.push(
        finding(
          'trust-sub-not-service-account',
          'warning',
          s,
          `${c.key} ${c.operator} ${value}: not of the form system:serviceaccount:<namespace>:<name>, no service-account token has it`,
        ),
      );
    }
  }
}

/**
 * Lints a role trust policy for IRSA. `issuerHostPath` is the issuer without scheme (the IdP's
 * URL as IAM stores it); an issuer with scheme is accepted too.
 */
export function lintTrustPolicy(doc: unknown, opts: { issuerHostPath: string }): LintFinding[] {
  const host = hostPathOf(opts.issuerHostPath);
  const out: LintFinding[] = [];
  const webIdentity = statementsOf(doc, 'trust policy').filter(
    (s) => s.effect === 'Allow' && statementCoversAction(s.statement, WEB_IDENTITY),
  );
  if (webIdentity.length === 0) {
    out.push({
      rule: 'trust-no-web-identity-statement',
      severity: 'error',
      statement: -1,
      message: `no Allow statement for ${WEB_IDENTITY}: no pod can assume the role with its token`,
    });
    return out;
  }
  for (const s of webIdentity) {
    const actions = asList(s.statement.Action);
    const wide = actions.filter((a) => hasWildcard(a));
    if (wide.length > 0 || s.statement.NotAction !== undefined) {
      out.push(
        finding(
          'trust-wildcard-action',
          'warning',
          s,
          `${wide.length > 0 ? `Action ${wide.join(', ')}` : 'NotAction'} allows more than ${WEB_IDENTITY}`,
        ),
      );
    }

    const federated = federatedPrincipals(s.statement);
    const providers = federated.filter((f) => /^arn:[^:]+:iam::[^:]*:oidc-provider\//.test(f));
    if (providers.length === 0) {
      out.push(
        finding(
          'trust-principal-not-oidc-provider',
          'error',
          s,
          `Principal ${JSON.stringify(s.statement.Principal ?? null)} is not {"Federated": "arn:<partition>:iam::<account>:oidc-provider/${host}"}`,
        ),
      );
    } else if (!providers.some((p) => p.slice(p.indexOf(':oidc-provider/') + ':oidc-provider/'.length) === host)) {
      out.push(
        finding(
          'trust-principal-other-issuer',
          'error',
          s,
          `Principal federates ${providers.join(', ')}, but the cluster's issuer is ${host}: tokens of this cluster are refused`,
        ),
      );
    }

    const conditions = conditionsOf(s.statement);
    const ours = (claim: string) =>
      conditions.filter((c) => {
        const k = claimOf(c.key);
        return k !== undefined && k.claim === claim && k.prefix.toLowerCase() === host.toLowerCase();
      });
    for (const c of conditions) {
      const k = claimOf(c.key);
      if (k && (k.claim === 'sub' || k.claim === 'aud') && k.prefix.toLowerCase() !== host.toLowerCase()) {
        out.push(
          finding(
            'trust-condition-other-issuer',
            'error',
            s,
            `condition key ${c.key} belongs to another issuer than ${host}: tokens of this cluster do not have it`,
          ),
        );
      }
    }

    const subs = ours('sub');
    const restricting = subs.filter((c) => !NEGATED.test(c.baseOperator));
    // A required :sub of another issuer (no ...IfExists) is absent from this cluster's tokens, so the
    // statement admits none of them: trust-condition-other-issuer says so, this is no open door.
    const admitsNone = conditions.some((c) => {
      const k = claimOf(c.key);
      return (
        k?.claim === 'sub' &&
        k.prefix.toLowerCase() !== host.toLowerCase() &&
        !NEGATED.test(c.baseOperator) &&
        !c.operator.endsWith('IfExists')
      );
    });
    if (restricting.length === 0 && !admitsNone) {
      out.push(
        finding(
          'trust-any-service-account',
          'critical',
          s,
          subs.length === 0
            ? `no ${host}:sub condition: every service account of the cluster can assume the role`
            : `${host}:sub is only excluded (${subs.map((c) => c.operator).join(', ')}): every other service account of the cluster can assume the role`,
        ),
      );
    }
    for (const c of restricting) lintSubCondition(s, c, out);

    const auds = ours('aud');
    if (auds.length === 0) {
      out.push(
        finding(
          'trust-no-audience-condition',
          'warning',
          s,
          `no ${host}:aud condition: tokens minted for any audience the IdP lists are accepted`,
        ),
      );
    }
    for (const c of auds) {
      for (const value of c.values) {
        if (value.startsWith('system:serviceaccount:')) {
          out.push(
            finding(
              'trust-audience-is-subject',
              'error',
              s,
              `${c.key} ${c.operator} ${value}: that is a subject, not an audience; did you mean ${host}:sub? No token matches`,
            ),
          );
        }
      }
    }
  }
  return out;
}

/** S3 actions on objects: granting them on every bucket lets a pod read or overwrite any tenant's data. */
const OBJECT_ACTIONS = [
  's3:GetObject',
  's3:PutObject',
  's3:DeleteObject',
  's3:GetObjectVersion',
  's3:DeleteObjectVersion',
  's3:PutObjectAcl',
  's3:GetObjectAcl',
];

/** A resource pattern whose bucket part is only wildcards (`*`, `arn:aws:s3:::*`, …): every bucket. */
function coversEveryBucket(resource: string): boolean {
  if (resource === '*') return true;
  const m = /^arn:[^:]+:s3:::(.*)$/.exec(resource);
  if (!m) return false;
  const bucket = (m[1] ?? '').split('/')[0] ?? '';
  return bucket !== '' && /^[*?]+$/.test(bucket);
}

/** Lints a permissions (identity) policy attached to an IRSA role. */
export function lintPermissionPolicy(doc: unknown, policyName = 'permissions policy'): LintFinding[] {
  const out: LintFinding[] = [];
  for (const s of statementsOf(doc, policyName)) {
    if (s.effect !== 'Allow') continue;
    const actions = asList(s.statement.Action);
    const full = actions.filter((a) => a === '*' || /^[a-z0-9-]+:\*$/i.test(a));
    const partial = actions.filter((a) => hasWildcard(a) && !full.includes(a));
    if (full.length > 0) {
      out.push(
        finding(
          'permission-wildcard-action',
          'error',
          s,
          `Action ${full.join(', ')} grants every action${full.includes('*') ? ' of every service' : ` of ${full.map((a) => a.split(':')[0]).join(', ')}`}`,
        ),
      );
    }
    if (partial.length > 0) {
      out.push(
        finding(
          'permission-partial-wildcard-action',
          'warning',
          s,
          `Action ${partial.join(', ')} uses wildcards: name the actions the workload needs`,
        ),
      );
    }
    if (s.statement.NotAction !== undefined) {
      out.push(
        finding(
          'permission-not-action',
          'warning',
          s,
          `Allow with NotAction ${asList(s.statement.NotAction).join(', ')} grants every other action`,
        ),
      );
    }
    if (s.statement.NotResource !== undefined) {
      out.push(
        finding(
          'permission-not-resource',
          'warning',
          s,
          `Allow with NotResource ${asList(s.statement.NotResource).join(', ')} grants every other resource`,
        ),
      );
    }
    const objectActions = OBJECT_ACTIONS.filter((oa) => statementCoversAction(s.statement, oa));
    if (objectActions.length === 0) continue;
    const resources = asList(s.statement.Resource);
    const everywhere = resources.filter(coversEveryBucket);
    if (everywhere.length > 0) {
      out.push(
        finding(
          'permission-object-action-on-any-resource',
          'error',
          s,
          `${objectActions.join(', ')} on ${everywhere.join(', ')}: the pod can reach objects in every bucket of the account`,
        ),
      );
      continue;
    }
    const wildcardBuckets = resources.filter((r) => {
      const m = /^arn:[^:]+:s3:::([^/]*)/.exec(r);
      return m !== null && hasWildcard(m[1] ?? '');
    });
    if (wildcardBuckets.length > 0) {
      out.push(
        finding(
          'permission-wildcard-bucket',
          'warning',
          s,
          `${objectActions.join(', ')} on ${wildcardBuckets.join(', ')}: the bucket name has a wildcard, other tenants' buckets may match`,
        ),
      );
    }
  }
  return out;
}

/** Whether the findings fail a check: critical findings in every profile, errors in the strict one. */
export function lintFails(findings: LintFinding[], strict: boolean): boolean {
  return findings.some((f) => f.severity === 'critical' || (strict && f.severity === 'error'));
}

/** The severity a profile reports a finding with: strict keeps it; default keeps critical, the rest warn. */
export function reportedSeverity(f: LintFinding, strict: boolean): LintSeverity {
  return strict || f.severity === 'critical' ? f.severity : 'warning';
}

/** One finding as a profile reports it: severity, rule, statement and message. */
export function reportedFinding(f: LintFinding, strict: boolean): string {
  return `${reportedSeverity(f, strict)} [${f.rule}] statement ${f.statement}: ${f.message}`;
}
