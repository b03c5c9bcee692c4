"""Per-request IAM enforcement for moto, with AWS's rules for unsigned requests.

moto decides whether to check IAM from one process-wide counter (INITIAL_NO_AUTH_ACTION_COUNT) and,
once checking, reads the Authorization header of every request unconditionally, so an unsigned
request fails with HTTP 500. `install()` replaces the single entry point that every service calls,
`ActionAuthenticatorMixin._authenticate_and_authorize_action`, with a decision made from the request
alone:

- signed with SigV4 in the Authorization header: always checked by moto's own classes (signature,
  then the caller's identity policies; role sessions through STS's assumed roles), for S3 with the
  IAM action AWS authorizes the request with where the tables below name it (moto's own names differ
  for some sub-resources: it checks GET ?publicAccessBlock and ?ownershipControls as ListBucket). For
  S3, where those policies do not allow the request, the bucket policy may, as on AWS for a principal
  of the bucket owner's account: a statement for Principal "*" (or the caller's user or role ARN)
  that allows the action, unless a Deny of either policy applies;
- signed in the query string (presigned URL): refused with 403, moto 5.2.1 has no verifier for it;
- unsigned: allowed only where AWS allows it: STS AssumeRoleWithWebIdentity / AssumeRoleWithSAML,
  moto's list of public Cognito operations, and the S3 requests on a bucket or object that the bucket
  policy grants to everyone (unless Block Public Access restricts public buckets) or an ACL grants to
  AllUsers (unless Block Public Access ignores public ACLs or Object Ownership disables ACLs). That
  includes writes, deletes and policy or ACL changes: a setup whose discovery bucket lets anyone
  replace keys.json must be as open here as on AWS, so the conformance suite can see it. The IAM
  action is derived from the method and the sub-resource as AWS does (PUT ?policy is
  s3:PutBucketPolicy, DELETE ?publicAccessBlock is s3:PutBucketPublicAccessBlock, ...); a request
  this module cannot name an action for (copies, multipart uploads, multi-object deletes, unknown
  sub-resources) is refused, which can only be narrower than AWS. Anything else is 403 AccessDenied
  in the service's error format.

Conditions of bucket policy statements are not evaluated: a conditional Deny is applied and a
conditional Allow is not, so an unknown condition can only make access narrower than on AWS.
Nothing here reads or changes moto's global switch, so concurrent requests cannot affect each other.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, SignatureDoesNotMatchError
from moto.iam.access_control import IAMPolicy, PermissionResult, S3IAMRequest
from moto.s3.exceptions import BucketAccessDeniedError, S3AccessDeniedError, S3SignatureDoesNotMatchError
from moto.s3.models import ALL_USERS_GRANTEE, FakeAcl, FakeBucket, FakeGrant, s3_backends
from moto.s3.responses import S3Response
from moto.utilities.utils import get_partition
from trust_policy import element_matches

UNAUTHENTICATED_STS_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}

# The IAM action AWS authorizes an S3 request with, by method and sub-resource (None: none).
S3_OBJECT_ACTIONS = {
    ("GET", None): "s3:GetObject",
    ("HEAD", None): "s3:GetObject",
    ("GET", "acl"): "s3:GetObjectAcl",
    ("GET", "tagging"): "s3:GetObjectTagging",
    ("PUT", None): "s3:PutObject",
    ("PUT", "acl"): "s3:PutObjectAcl",
    ("PUT", "tagging"): "s3:PutObjectTagging",
    ("DELETE", None): "s3:DeleteObject",
    ("DELETE", "tagging"): "s3:DeleteObjectTagging",
}
# The same request on one version of an object (?versionId=).
S3_VERSION_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:GetObjectAcl": "s3:GetObjectVersionAcl",
    "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
}
S3_BUCKET_ACTIONS = {
    ("GET", None): "s3:ListBucket",
    ("HEAD", None): "s3:ListBucket",
    ("GET", "versions"): "s3:ListBucketVersions",
    ("GET", "acl"): "s3:GetBucketAcl",
    ("GET", "policy"): "s3:GetBucketPolicy",
    ("GET", "publicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("GET", "ownershipControls"): "s3:GetBucketOwnershipControls",
    ("PUT", "acl"): "s3:PutBucketAcl",
    ("PUT", "policy"): "s3:PutBucketPolicy",
    ("PUT", "publicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("PUT", "ownershipControls"): "s3:PutBucketOwnershipControls",
    ("PUT", "versioning"): "s3:PutBucketVersioning",
    ("PUT", "tagging"): "s3:PutBucketTagging",
    ("DELETE", None): "s3:DeleteBucket",
    ("DELETE", "policy"): "s3:DeleteBucketPolicy",
    ("DELETE", "publicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("DELETE", "ownershipControls"): "s3:PutBucketOwnershipControls",
    ("DELETE", "tagging"): "s3:PutBucketTagging",
}
# Query parameters that refine a request rather than name a sub-resource. moto maps any unknown
# sub-resource (?encryption, ?retention, ...) to GetObject/ListBucket; AWS does not, so a request
# with anything else is named by the table above or refused rather than guessed.
OBJECT_PLAIN_PARAMS = {
    "versionId", "partNumber", "x-id",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-content-type", "response-expires",
}
BUCKET_PLAIN_PARAMS = {
    "list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token",
    "start-after", "fetch-owner", "encoding-type", "x-id",
}
# What an ACL grant must hold for an action: on the bucket (listing, writing any of its objects, its
# ACL) or on the object (reading it, its ACL). FULL_CONTROL holds every permission.
ACL_PERMISSIONS = {
    "s3:ListBucket": ("bucket", "READ"),
    "s3:ListBucketVersions": ("bucket", "READ"),
    "s3:PutObject": ("bucket", "WRITE"),
    "s3:DeleteObject": ("bucket", "WRITE"),
    "s3:DeleteObjectVersion": ("bucket", "WRITE"),
    "s3:GetBucketAcl": ("bucket", "READ_ACP"),
    "s3:PutBucketAcl": ("bucket", "WRITE_ACP"),
    "s3:GetObject": ("object", "READ"),
    "s3:GetObjectVersion": ("object", "READ"),
    "s3:GetObjectAcl": ("object", "READ_ACP"),
    "s3:GetObjectVersionAcl": ("object", "READ_ACP"),
    "s3:PutObjectAcl": ("object", "WRITE_ACP"),
    "s3:PutObjectVersionAcl": ("object", "WRITE_ACP"),
}
# Set while moto handles an unsigned object request this module has already allowed (see
# _key_response_authorized).
_allowed_unsigned = threading.local()


def install() -> None:
    ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize  # type: ignore[method-assign]
    S3Response._key_response = _key_response_authorized(S3Response._key_response)  # type: ignore[method-assign]
    FakeBucket.get_permission = _bucket_permission(FakeBucket.get_permission)  # type: ignore[method-assign]
    S3Response._acl_to_dict = staticmethod(_acl_to_dict_every_grant(S3Response._acl_to_dict))  # type: ignore[method-assign]


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
        if not _anonymous_s3_allowed(self, resource, set(url_query)):
            raise S3AccessDeniedError()
        return
    raise AccessDeniedError(user_arn="anonymous", action=f"{self.service_name}:{self._get_action()}")


def _check_sigv4_request(self: Any, iam_request_cls: type, resource: str, is_s3: bool) -> None:
    """moto's own check, minus the global counter (moto.core.authorization, 5.2.1), plus the bucket policy."""
    parsed_url = urlparse(self.uri)
    path = parsed_url.path + ("?" + parsed_url.query if parsed_url.query else "")
    url_params = set(parse_qs(parsed_url.query, keep_blank_values=True))
    action = self._get_action()
    if is_s3:
        # moto names some S3 requests differently from the action AWS authorizes them with (GET
        # ?publicAccessBlock and ?ownershipControls as ListBucket, for one): an identity policy is
        # evaluated for AWS's action wherever this module can name it.
        bucket_name, key_name = _bucket_and_key(resource)
        named = None if bucket_name in ("", "*") else _s3_action(self.method, key_name, url_params, self.headers)
        if named:
            action = named.split(":", 1)[1]
    try:
        iam_request = iam_request_cls(
            account_id=self.current_account,
            method=self.method,
            path=path,
            data=self.data,
            body=self.raw_body,
            headers=self.headers,
            action=action,
        )
        iam_request.check_signature()
    except (KeyError, IndexError, ValueError, TypeError):
        # A malformed Authorization header (not SigV4, a missing X-Amz-Date...) makes moto's parser
        # fail with a Python error, i.e. HTTP 500. AWS answers with a signature error.
        raise S3SignatureDoesNotMatchError() if is_s3 else SignatureDoesNotMatchError() from None
    try:
        iam_request.check_action_permitted(resource)
    except (S3AccessDeniedError, BucketAccessDeniedError):
        if not (is_s3 and _bucket_policy_allows_caller(self, iam_request, resource, url_params)):
            raise


def _s3_action(method: str, key_name: str, url_params: set[str], headers: Any) -> str | None:
    """The IAM action of an S3 request on a bucket or an object, or None where this module does not name one."""
    sub_resources = url_params - (OBJECT_PLAIN_PARAMS if key_name else BUCKET_PLAIN_PARAMS)
    if len(sub_resources) > 1:
        return None
    sub_resource = next(iter(sub_resources), None)
    if not key_name:
        return S3_BUCKET_ACTIONS.get((method, sub_resource))
    if headers.get("x-amz-copy-source"):
        return None  # a copy needs s3:GetObject on its source as well
    action = S3_OBJECT_ACTIONS.get((method, sub_resource))
    if action and "versionId" in url_params:
        return S3_VERSION_ACTIONS.get(action)
    return action


def _bucket_and_key(resource: str) -> tuple[str, str]:
    bucket_name, _, key_name = resource.partition(":::")[2].partition("/")
    return bucket_name, key_name


def _anonymous_s3_allowed(self: Any, resource: str, url_params: set[str]) -> bool:
    bucket_name, key_name = _bucket_and_key(resource)
    if bucket_name in ("", "*"):
        return False  # ListBuckets, CreateBucket: never anonymous
    action = _s3_action(self.method, key_name, url_params, self.headers)
    if action is None:
        return False
    backend = s3_backends[self.current_account][get_partition(self.region)]
    bucket = backend.buckets.get(bucket_name)
    if bucket is None:
        return True  # let moto answer NoSuchBucket, as AWS does for anyone
    block = bucket.public_access_block
    if bucket.policy and not (block and block.restrict_public_buckets):
        decision = _policy_decision(json.loads(bucket.policy), action, resource, _applies_to_anonymous)
        if decision is not None:
            return decision
    return _acl_grants_everyone(backend, bucket, key_name, action)


def _acl_grants_everyone(backend: Any, bucket: Any, key_name: str, action: str) -> bool:
    """Whether an ACL grants AllUsers what `action` needs, where ACLs count at all."""
    block = bucket.public_access_block
    if (block and block.ignore_public_acls) or getattr(bucket, "ownership_rule", None) == "BucketOwnerEnforced":
        return False
    where, permission = ACL_PERMISSIONS.get(action, (None, None))
    if where == "bucket":
        acl = bucket.acl
    elif where == "object":
        key = backend.get_object(bucket.name, key_name)
        if key is None:
            return False  # AWS, too, says 403 rather than NoSuchKey to a caller who may not list
        acl = key.acl
    else:
        return False
    return bool(acl) and any(
        ALL_USERS_GRANTEE in grant.grantees and (permission in grant.permissions or "FULL_CONTROL" in grant.permissions)
        for grant in acl.grants
    )


def _bucket_policy_allows_caller(self: Any, iam_request: Any, resource: str, url_params: set[str]) -> bool:
    """For a principal of the bucket owner's account (the only account here) the bucket policy alone may
    allow a request its identity policies do not: unless a Deny of either policy applies."""
    bucket_name, key_name = _bucket_and_key(resource)
    if bucket_name in ("", "*"):
        return False
    action = _s3_action(self.method, key_name, url_params, self.headers)
    bucket = s3_backends[self.current_account][get_partition(self.region)].buckets.get(bucket_name)
    if action is None or bucket is None or not bucket.policy:
        return False
    for policy in iam_request._access_key.collect_policies():
        if IAMPolicy(policy).is_action_permitted(action, resource) == PermissionResult.DENIED:
            return False
    caller = iam_request._access_key.arn
    return _policy_decision(json.loads(bucket.policy), action, resource, lambda s: _applies_to(s, caller)) is True


def _policy_decision(
    policy: dict[str, Any], action: str, resource: str, applies: Callable[[dict[str, Any]], bool]
) -> bool | None:
    """True/False when a statement that applies to the caller allows/denies; None if none does.

    Deny wins. Conditions are not evaluated: a conditional Deny is applied and a conditional Allow is
    not, so an unknown condition can only make access narrower than on AWS, never wider.
    """
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = None
    for statement in statements:
        if not (
            applies(statement)
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
    return _applies_to(statement, None)


def _applies_to(statement: dict[str, Any], caller: str | None) -> bool:
    """Whether the statement's Principal (or NotPrincipal) covers the caller (None: anonymous)."""
    if "Principal" in statement:
        return _names(statement["Principal"], caller)
    if "NotPrincipal" in statement:  # everyone except those listed; anonymous is never listed
        return not (caller is not None and _names(statement["NotPrincipal"], caller))
    return False


def _names(principal: Any, caller: str | None) -> bool:
    """Whether a Principal element names everyone, or the caller by its user, role or session ARN."""
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    aws = principal.get("AWS", [])
    names = aws if isinstance(aws, list) else [aws]
    if "*" in names:
        return True
    if caller is None:
        return False
    return caller in names or _role_of_session(caller) in names


def _role_of_session(arn: str) -> str | None:
    """arn:aws:sts::<account>:assumed-role/<role>/<session> -> arn:aws:iam::<account>:role/<role>."""
    prefix, _, rest = arn.partition(":assumed-role/")
    if not rest:
        return None
    return f"{prefix.replace(':sts::', ':iam::')}:role/{rest.split('/')[0]}"


def _key_response_authorized(original: Any) -> Any:
    """moto refuses some object requests before any IAM check (a bucket policy's Deny, a private ACL on
    an anonymous request) with an empty 403: turn those into S3's XML AccessDenied error. And its
    pre-check of unsigned requests knows object ACLs and s3:<Method>Object only (a bucket ACL that grants
    WRITE, a policy that grants s3:PutObjectAcl count for nothing there): decide unsigned requests here,
    before it, with the rules of _anonymous_s3_allowed, and let the pre-check pass what they allow."""

    def key_response(self: Any, request: Any, full_url: str) -> Any:
        url_query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
        unsigned = "Authorization" not in request.headers and "X-Amz-Signature" not in url_query
        if unsigned:
            bucket_name = self.parse_bucket_name_from_url(request, full_url)
            resource = f"arn:{get_partition(self.region)}:s3:::{bucket_name}/{self.parse_key_name()}"
            if not _anonymous_s3_allowed(self, resource, set(url_query)):
                raise S3AccessDeniedError()
        _allowed_unsigned.active = unsigned
        try:
            response = original(self, request, full_url)
        finally:
            _allowed_unsigned.active = False
        if isinstance(response, tuple) and response[0] == 403 and not response[2]:
            raise S3AccessDeniedError()
        return response

    return key_response


def _bucket_permission(original: Any) -> Any:
    """moto's object pre-check asks the bucket policy, ignoring its principals. It asks for
    "s3:HeadObject", an action that does not exist: AWS authorizes HEAD with s3:GetObject. And for an
    unsigned request already allowed by _key_response_authorized, what the policy does not decide is
    permitted (an ACL or another action allowed it)."""

    def get_permission(self: Any, action: str, resource: str) -> Any:
        result = original(self, "s3:GetObject" if action == "s3:HeadObject" else action, resource)
        if result == PermissionResult.NEUTRAL and getattr(_allowed_unsigned, "active", False):
            return PermissionResult.PERMITTED
        return result

    return get_permission


def _acl_to_dict_every_grant(original: Any) -> Any:
    """GetBucketAcl/GetObjectAcl: moto answers one Grant per grant it holds, with its first grantee and
    first permission only, so a canned public-read-write ACL reads as READ for AllUsers. AWS answers one
    Grant per grantee and permission: expand, so that what an ACL allows can be read back."""

    def acl_to_dict(acl: Any) -> dict[str, Any]:
        expanded = FakeAcl(
            [FakeGrant([grantee], [permission]) for grant in acl.grants for grantee in grant.grantees for permission in grant.permissions]
        )
        return original(expanded)

    return acl_to_dict
