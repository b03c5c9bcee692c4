"""A role trust policy evaluated for one request, as IAM evaluates it for STS.

This is the emulator's own evaluator, deliberately independent of the harness's diagnosis
(support/policy/simulate.ts uses @cloud-copilot/iam-simulate): the target decides with this, the
harness explains with that, and a differential test (test/integration/trust-policy-differential.test.ts)
requires the two to agree. Pure Python, no moto import.

    evaluate(policy, principal, action, context) -> Decision(allowed, reason)

- principal: the caller, e.g. the IAM OIDC provider's ARN for AssumeRoleWithWebIdentity;
- context: condition keys (matched case-insensitively) to a list of values; a key that is not in
  it is missing from the request, as IAM treats a claim it does not map to a key.

What it implements, which is all a trust policy for web identities uses:
- Deny wins over Allow; nothing allowed is an implicit deny.
- Principal / NotPrincipal: "*", {"AWS": "*"} and {"Federated": <ARN or list>}; other principal
  types (AWS accounts, services) never match a federated caller.
- Action / NotAction: case-insensitive, with * and ? wildcards.
- Condition: every operator block must match, every key of a block must match, any of a key's
  values may. Operators: String(Not)Equals(IgnoreCase), String(Not)Like, Arn(Not)Equals,
  Arn(Not)Like, Bool, Null, each with the IfExists suffix and the ForAnyValue: / ForAllValues: set
  prefixes. A missing key fails a positive operator and satisfies a negated one; IfExists
  satisfies either; ForAnyValue fails and ForAllValues satisfies on an empty set.
- An operator it does not know (IAM refuses such a policy when it is stored) refuses the request
  and says so: it never grants more than AWS would.
- Resource is not evaluated (IAM forbids it in trust policies); policy variables (${...}) are
  compared literally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

STRING_OPERATORS = {
    "stringequals": ("equals", False, True),
    "stringnotequals": ("equals", True, True),
    "stringequalsignorecase": ("equals", False, False),
    "stringnotequalsignorecase": ("equals", True, False),
    "stringlike": ("like", False, True),
    "stringnotlike": ("like", True, True),
    "arnequals": ("arn", False, True),
    "arnlike": ("arn", False, True),
    "arnnotequals": ("arn", True, True),
    "arnnotlike": ("arn", True, True),
    "bool": ("bool", False, False),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


class UnknownOperator(Exception):
    pass


def evaluate(policy: Any, principal: str, action: str, context: dict[str, list[str]]) -> Decision:
    """The decision for `principal` performing `action` with these condition keys."""
    values = {key.lower(): [str(v) for v in vs] for key, vs in context.items()}
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    allowed_by = None
    misses: list[str] = []
    for index, statement in enumerate(statements):
        if not isinstance(statement, dict):
            continue
        label = statement.get("Sid") or f"statement {index}"
        if not _principal_matches(statement, principal):
            if statement.get("Effect") == "Allow":
                misses.append(f"{label}: trusts {_principals_of(statement)}, the caller is {principal}")
            continue
        if not element_matches(statement, "Action", action, case_sensitive=False):
            if statement.get("Effect") == "Allow":
                misses.append(f"{label}: does not cover {action}")
            continue
        try:
            failure = _failed_condition(statement.get("Condition", {}), values)
        except UnknownOperator as error:
            return Decision(False, f"{label}: unknown condition operator {error}, which IAM would not have stored")
        if statement.get("Effect") == "Deny":
            if failure is None:
                return Decision(False, f"denied by {label}")
            continue
        if statement.get("Effect") == "Allow":
            if failure is None:
                allowed_by = allowed_by or label
            else:
                misses.append(f"{label}: {failure}")
    if allowed_by:
        return Decision(True, f"allowed by {allowed_by}")
    return Decision(False, "; ".join(misses) if misses else "no statement allows it")


def _principals_of(statement: dict[str, Any]) -> str:
    return str(statement.get("Principal", statement.get("NotPrincipal", "no principal")))


def _principal_matches(statement: dict[str, Any], principal: str) -> bool:
    if "Principal" in statement:
        return _names(statement["Principal"], principal)
    if "NotPrincipal" in statement:
        return not _names(statement["NotPrincipal"], principal)
    return False


def _names(element: Any, principal: str) -> bool:
    if element == "*":
        return True
    if not isinstance(element, dict):
        return False
    if "*" in _as_list(element.get("AWS", [])):
        return True
    return principal in _as_list(element.get("Federated", []))


def element_matches(statement: dict[str, Any], element: str, value: str, case_sensitive: bool) -> bool:
    """Whether Action/NotAction (or Resource/NotResource) of a statement covers `value`, with IAM's wildcards."""
    if element in statement:
        patterns, wanted = statement[element], True
    elif f"Not{element}" in statement:
        patterns, wanted = statement[f"Not{element}"], False
    else:
        return False
    matched = any(_glob(p, value, case_sensitive) for p in _as_list(patterns) if isinstance(p, str))
    return matched == wanted


def _failed_condition(condition: Any, values: dict[str, list[str]]) -> str | None:
    """None when every operator block matches, else a phrase naming the first that does not."""
    if not isinstance(condition, dict):
        return None
    for operator, block in condition.items():
        if not isinstance(block, dict):
            continue
        for key, wanted in block.items():
            expected = [_text(v) for v in _as_list(wanted)]
            present = values.get(key.lower())
            if not _condition_matches(operator, expected, present):
                has = f"the request has {present}" if present is not None else "the request has no such key"
                return f"{key} {operator} {expected}, {has}"
    return None


def _condition_matches(operator: str, expected: list[str], present: list[str] | None) -> bool:
    name = operator.lower()
    set_operator = None
    for prefix in ("foranyvalue:", "forallvalues:"):
        if name.startswith(prefix):
            set_operator, name = prefix[:-1], name[len(prefix):]
    if_exists = name.endswith("ifexists") and name != "ifexists"
    if if_exists:
        name = name[: -len("ifexists")]
    if name == "null":
        if set_operator or if_exists:
            raise UnknownOperator(operator)
        is_null = [e.lower() for e in expected]
        return (present is None and "true" in is_null) or (present is not None and "false" in is_null)
    if name not in STRING_OPERATORS:
        raise UnknownOperator(operator)
    kind, negated, case_sensitive = STRING_OPERATORS[name]

    def one(value: str) -> bool:
        """A request value against the policy's values (any of them), before negation."""
        return any(_compare(kind, pattern, value, case_sensitive) for pattern in expected)

    if not present:
        if if_exists:
            return True
        if set_operator == "forallvalues":
            return True
        if set_operator == "foranyvalue":
            return False
        return negated
    if set_operator == "foranyvalue":
        return any(one(v) != negated for v in present)
    if set_operator == "forallvalues":
        return all(one(v) != negated for v in present)
    matched = any(one(v) for v in present)
    return matched != negated


def _compare(kind: str, pattern: str, value: str, case_sensitive: bool) -> bool:
    if kind == "equals":
        return pattern == value if case_sensitive else pattern.lower() == value.lower()
    if kind == "like":
        return _glob(pattern, value, case_sensitive=True)
    if kind == "bool":
        return pattern.lower() == value.lower()
    # ARNs: the six colon-separated parts are matched one by one (a wildcard does not cross a colon,
    # except in the last part, the resource, which may itself hold colons).
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(_glob(p, v, case_sensitive=True) for p, v in zip(pattern_parts, value_parts))


def _glob(pattern: str, value: str, case_sensitive: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE) is not None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def main() -> int:
    """Batch mode for tests: a JSON list of {policy, principal, action, context} on stdin, decisions out."""
    import json
    import sys

    cases = json.load(sys.stdin)
    decisions = [evaluate(c["policy"], c["principal"], c["action"], c["context"]) for c in cases]
    json.dump([{"allowed": d.allowed, "reason": d.reason} for d in decisions], sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
