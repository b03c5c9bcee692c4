/**
 * Reading IAM policy documents as the lint and the simulator need them: statements with their
 * index and Sid, string-or-array fields as arrays, conditions as (operator, key, values) triples,
 * and IAM's wildcard matching for actions and resources.
 *
 * Policies arrive as parsed JSON (unknown); shape errors are UsageErrors naming the statement.
 */
import { UsageError } from '../errors.ts';

/** A policy document as IAM returns it: URL-encoded JSON on real IAM, plain JSON on emulators. */
export function parseIamDocument(raw: string): unknown {
  return JSON.parse(raw.trimStart().startsWith('{') ? raw : decodeURIComponent(raw));
}

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: unknown;
  NotPrincipal?: unknown;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[] | boolean | number>>;
}

export interface PolicyDocument {
  Version?: string;
  Id?: string;
  Statement: PolicyStatement | PolicyStatement[];
}

export interface ConditionEntry {
  /** As written, e.g. `StringLike`, `ForAnyValue:StringEquals`, `StringEqualsIfExists`. */
  operator: string;
  /** The base operator without set prefix and IfExists, e.g. `StringLike`. */
  baseOperator: string;
  key: string;
  values: string[];
}

export interface IndexedStatement {
  /** 0-based position in the Statement array (0 for a single statement object). */
  index: number;
  sid?: string;
  effect: 'Allow' | 'Deny';
  statement: Record<string, unknown>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `statement 0` or `statement 0 (Sid AllowS3)`: how findings and explanations name a statement. */
export function statementLabel(s: { index: number; sid?: string | undefined }): string {
  return s.sid ? `statement ${s.index} (Sid ${s.sid})` : `statement ${s.index}`;
}

/** The statements of a policy document with index and Sid. */
export function statementsOf(doc: unknown, policyName = 'policy'): IndexedStatement[] {
  const parsed = typeof doc === 'string' ? parseJson(doc, policyName) : doc;
  if (!isRecord(parsed) || parsed.Statement === undefined) {
    throw new UsageError(
      `${policyName} has no Statement`,
      'an IAM policy is {"Version": "2012-10-17", "Statement": [...]}',
    );
  }
  const raw = Array.isArray(parsed.Statement) ? parsed.Statement : [parsed.Statement];
  return raw.map((s: unknown, index: number) => {
    if (!isRecord(s)) {
      throw new UsageError(`${policyName}: statement ${index} is not an object`, 'each statement is a JSON object');
    }
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') {
      throw new UsageError(
        `${policyName}: statement ${index} has Effect ${JSON.stringify(s.Effect)}`,
        'Effect must be "Allow" or "Deny" (case-sensitive)',
      );
    }
    const out: IndexedStatement = { index, effect: s.Effect, statement: s };
    if (typeof s.Sid === 'string' && s.Sid !== '') out.sid = s.Sid;
    return out;
  });
}

function parseJson(text: string, policyName: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(
      `${policyName} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`,
      'check the rendered template (a shell variable left unexpanded, or CLI output mixed in?)',
    );
  }
}

/** A string-or-array field as an array of strings (absent: empty). */
export function asList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map((x) => String(x));
  return [String(v)];
}

/** Conditions of a statement as flat entries. */
export function conditionsOf(statement: Record<string, unknown>): ConditionEntry[] {
  const cond = statement.Condition;
  if (!isRecord(cond)) return [];
  const out: ConditionEntry[] = [];
  for (const [operator, block] of Object.entries(cond)) {
    if (!isRecord(block)) continue;
    const baseOperator = operator.replace(/^(ForAnyValue|ForAllValues):/, '').replace(/IfExists$/, '');
    for (const [key, value] of Object.entries(block)) {
      out.push({ operator, baseOperator, key, values: asList(value) });
    }
  }
  return out;
}

/** IAM wildcard match (`*` any run, `?` one character), case-insensitive as IAM matches actions. */
export function wildcardMatches(pattern: string, value: string, caseInsensitive = true): boolean {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, caseInsensitive ? 'is' : 's').test(value);
}

/** Whether the statement's Action / NotAction applies to `action`. */
export function statementCoversAction(statement: Record<string, unknown>, action: string): boolean {
  if (statement.Action !== undefined) return asList(statement.Action).some((p) => wildcardMatches(p, action));
  if (statement.NotAction !== undefined) return !asList(statement.NotAction).some((p) => wildcardMatches(p, action));
  return false;
}

/** The values of `Principal.Federated` (empty when the principal is not federated). */
export function federatedPrincipals(statement: Record<string, unknown>): string[] {
  const p = statement.Principal;
  if (!isRecord(p)) return [];
  return asList(p.Federated);
}
