"""Per-request IAM enforcement for moto, with AWS's rules for unsigned requests.

moto decides whether to check IAM from one process-wide counter (INITIAL_NO_AUTH_ACTION_COUNT) and,
once checking, reads the Authorization header of every request unconditionally, so an unsigned
request fails with HTTP 500. `install()` replaces the single entry point that every service calls,
`ActionAuthenticatorMixin._authenticate_and_authorize_action`, with a decision made from the request
alone:

- signed with SigV4 in the Authorization header: always checked by moto's own classes (signature,
  then the caller's identity policies; role sessions through STS's assumed roles);
- signed in the query string (presigned URL): refused with 403, moto 5.2.1 has no verifier for it;
- unsigned: allowed only where AWS allows it: STS AssumeRoleWithWebIdentity / AssumeRoleWithSAML,
  moto's list of public Cognito operations, and S3 reads (GET/HEAD of an object, a bucket listing)
  that the bucket policy grants to everyone or an ACL grants to AllUsers. Anything else is 403
  AccessDenied in the service's error format. Anonymous writes stay refused: an attacker who can write
  an OIDC issuer's keys.json can mint tokens that STS accepts.

Nothing here reads or changes moto's global switch, so concurrent requests cannot affect each other.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, SignatureDoesNotMatchError
from moto.iam.access_control import S3IAMRequest
from moto.s3.exceptions import S3AccessDeniedError, S3SignatureDoesNotMatchError
from moto.s3.models import FakeBucket, s3_backends
from moto.s3.responses import S3Response
from moto.utilities.utils import get_partition
from trust_policy import element_matches

UNAUTHENTICATED_STS_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}

# moto's name for an S3 read (S3Response._set_action) -> the IAM action AWS authorizes it with.
ANONYMOUS_S3_READS = {
    "GetObject": "s3:GetObject",
    "GetObjectVersion": "s3:GetObjectVersion",
    "ListBucket": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
}
# Query parameters a plain object read or bucket listing may carry. moto maps any unknown
# sub-resource (?encryption, ?retention, ...) to GetObject/ListBucket; AWS does not, so an anonymous
# request with anything else is refused rather than guessed.
OBJECT_READ_PARAMS = {
    "versionId", "partNumber", "x-id",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires",
}
BUCKET_LIST_PARAMS = {
    "list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token",
    "start-after", "fetch-owner", "encoding-type", "x-id",
}


def install() -> None:
    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize  # type: ignore[method-assign]
    S3Response._key_response = _key_response_with_s3_errors(S3Response._key_response)  # type: ignore[method-assign]
    FakeBucket.get_permission = _head_object_as_get_object(FakeBucket.get_permission)  # type: ignore[method-assign]


def _authenticate_and_authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
    is_s3 = issubclass(iam_request_cls, S3IAMRequest)
    if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    # AWS authenticates these calls by the token or assertion they carry and ignores any signature.
    if not is_s3 and self.service_name == "sts" and self._get_action() in UNAUTHENTICATED_STS_ACTIONS:
        return
    if "Authorization" in self.headers:
        _check_sigv4_request(self, iam_request_cls, resource, is_s3)
        return
    # Not self.querystring: moto merges headers, form fields and its own notes into it.
    url_query = parse_qs(urlparse(self.uri).query, keep_blank_values=True)
    if "X-Amz-Signature" in url_query:
        raise S3AccessDeniedError() if is_s3 else AccessDeniedError(
            user_arn="presigned request", action="query-string authentication is not supported here"
        )
    if is_s3:
        if not _anonymous_s3_read_allowed(self, resource, set(url_query)):
            raise S3AccessDeniedError()
        return
    raise AccessDeniedError(user_arn="anonymous", action=f"{self.service_name}:{self._get_action()}")


def _check_sigv4_request(self: Any, iam_request_cls: type, resource: str, is_s3: bool) -> None:
    """moto's own check, minus the global counter (moto.core.authorization, 5.2.1)."""
    parsed_url = urlparse(self.uri)
    path = parsed_url.path + ("?" + parsed_url.query if parsed_url.query else "")
    try:
        iam_request = iam_request_cls(
            account_id=self.current_account,
            method=self.method,
            path=path,
            data=self.data,
            body=self.raw_body,
            headers=self.headers,
            action=self._get_action(),
        )
        iam_request.check_signature()
    except (KeyError, IndexError, ValueError, TypeError):
        # A malformed Authorization header (not SigV4, a missing X-Amz-Date...) makes moto's parser
        # fail with a Python error, i.e. HTTP 500. AWS answers with a signature error.
        raise S3SignatureDoesNotMatchError() if is_s3 else SignatureDoesNotMatchError() from None
    iam_request.check_action_permitted(resource)


def _anonymous_s3_read_allowed(self: Any, resource: str, url_params: set[str]) -> bool:
    action = ANONYMOUS_S3_READS.get(self.data.get("Action", ""))
    if self.method not in ("GET", "HEAD") or action is None:
        return False
    bucket_name, _, key_name = resource.partition(":::")[2].partition("/")
    allowed_params = OBJECT_READ_PARAMS if key_name else BUCKET_LIST_PARAMS
    if not url_params <= allowed_params:
        return False
    backend = s3_backends[self.current_account][get_partition(self.region)]
    bucket = backend.buckets.get(bucket_name)
    if bucket is None:
        return True  # let moto answer NoSuchBucket, as AWS does for anyone
    block = bucket.public_access_block
    if bucket.policy and not (block and block.restrict_public_buckets):
        decision = _public_policy_decision(json.loads(bucket.policy), action, resource)
        if decision is not None:
            return decision
    if block and block.ignore_public_acls:
        return False
    if key_name:
        key = backend.get_object(bucket_name, key_name)
        if key is None:
            return False  # AWS, too, says 403 rather than NoSuchKey to a caller who may not list
        acl = key.acl
    else:
        acl = bucket.acl
    return bool(acl and acl.public_read)


def _public_policy_decision(policy: dict[str, Any], action: str, resource: str) -> bool | None:
    """True/False when a statement that applies to an anonymous caller allows/denies; None if none does.

    Deny wins. Conditions are not evaluated: a conditional Deny is applied and a conditional Allow is
    not, so an unknown condition can only make access narrower than on AWS, never wider.
    """
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = None
    for statement in statements:
        if not (
            _applies_to_anonymous(statement)
            and element_matches(statement, "Action", action, case_sensitive=False)
            and element_matches(statement, "Resource", resource, case_sensitive=True)
        ):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow" and "Condition" not in statement:
            allowed = True
    return allowed


def _applies_to_anonymous(statement: dict[str, Any]) -> bool:
    if "Principal" in statement:
        return _names_everyone(statement["Principal"])
    if "NotPrincipal" in statement:  # everyone except those listed; anonymous is never listed
        return not _names_everyone(statement["NotPrincipal"])
    return False


def _names_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        aws = principal.get("AWS", [])
        return "*" in (aws if isinstance(aws, list) else [aws])
    return False


def _key_response_with_s3_errors(original: Any) -> Any:
    """moto refuses some object requests before any IAM check (a bucket policy's Deny, a private ACL on
    an anonymous read) with an empty 403. Turn those into S3's XML AccessDenied error."""

    def key_response(self: Any, request: Any, full_url: str) -> Any:
        response = original(self, request, full_url)
        if isinstance(response, tuple) and response[0] == 403 and not response[2]:
            raise S3AccessDeniedError()
        return response

    return key_response


def _head_object_as_get_object(original: Any) -> Any:
    """moto's object pre-check asks the bucket policy for "s3:HeadObject", an action that does not
    exist: AWS authorizes HEAD with s3:GetObject. Without this, a public object could not be HEADed."""

    def get_permission(self: Any, action: str, resource: str) -> Any:
        return original(self, "s3:GetObject" if action == "s3:HeadObject" else action, resource)

    return get_permission
