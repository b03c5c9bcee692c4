"""AssumeRoleWithWebIdentity as AWS STS answers it, on top of moto.

moto 5.2.1 never reads the WebIdentityToken: it returns a session for any token, any role, even a
role that does not exist. `install()` wraps moto's handler with the checks STS makes, in this
order, each answered with AWS's code, HTTP status and (where one is on record) exact message:

 0. parameters: DurationSeconds 900-43200, RoleSessionName 2-64 of [\\w+=,.@-]
        ValidationError (400), the model's "1 validation error detected: ..." text
 1. the token is a JWT (three base64url parts, JSON header and claims)
        InvalidIdentityToken (400)
 2. an IAM OIDC provider of the role's account whose URL is the token's iss without "https://"
        InvalidIdentityToken "No OpenIDConnect provider found in your account for <iss>"
 3. azp (when present) or one of aud is among the provider's client IDs
        InvalidIdentityToken "Incorrect token audience"
 4. <iss>/.well-known/openid-configuration and its jwks_uri fetched anonymously (https, 5 s,
    256 KiB, JSON), from where the issuer publishes them and with the bucket policies as they are
        InvalidIdentityToken "Couldn't retrieve verification key from your identity provider,
        please reference AssumeRoleWithWebIdentity documentation for requirements"
 5. a key with the token's kid verifies its signature (RS256/384/512, ES256/384/512)
        no such key: the message of 4; a bad signature: InvalidIdentityToken
 6. exp (IAM allows five minutes of clock skew past it)
        ExpiredTokenException "Token expired: current date/time N must be before the expiration date/timeM"
    nbf and iat not in the future (same skew), sub present: InvalidIdentityToken
 7. the role exists and its trust policy allows sts:AssumeRoleWithWebIdentity for the provider's
    ARN with the keys <provider url>:sub, :aud (azp, else the matching client ID), :oaud (aud,
    when azp is present), :amr, aws:FederatedProvider and sts:RoleSessionName (trust_policy.py)
        AccessDenied (403) "Not authorized to perform sts:AssumeRoleWithWebIdentity", for a
        missing role too (AWS does not say which)
 8. DurationSeconds not above the role's MaxSessionDuration
        ValidationError "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."

Then moto issues the session, and the answer carries SubjectFromWebIdentityToken, Audience and
Provider (the provider's ARN, as real answers do). Where no message is on record (a malformed JWT,
a bad signature, a future nbf/iat) the answer carries the model's description of the error.

Keys are fetched for every call (no cache): a run that republishes keys.json must be judged on
what is published now. URLs on this server itself are read in-process through the same WSGI
application (serve_locally): the request still passes the launcher's gate and the anonymous-read
rules of per_request_auth, but holds no second server thread, so concurrent calls cannot starve
the pool waiting for themselves. Any other host is fetched over HTTPS, trusting the system's CAs
and the file given to install().

One log line per decision names the role, sub, aud and the check that decided; never the token.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse
from xml.sax.saxutils import escape

from werkzeug.exceptions import HTTPException

import trust_policy

ACTION = "sts:AssumeRoleWithWebIdentity"
FETCH_TIMEOUT_SECONDS = 5.0
FETCH_LIMIT_BYTES = 256 * 1024
CLOCK_SKEW_SECONDS = 300
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]*")

NO_VERIFICATION_KEY = (
    "Couldn't retrieve verification key from your identity provider,  "
    "please reference AssumeRoleWithWebIdentity documentation for requirements"
)
# The STS model's description of InvalidIdentityToken, for the cases whose exact text is not on record.
NOT_VALIDATED = (
    "The web identity token that was passed could not be validated by Amazon Web Services. "
    "Get a new identity token from the identity provider and then retry the request."
)
NOT_AUTHORIZED = f"Not authorized to perform {ACTION}"

_trust_ca: str | None = None
_local: dict[str, Any] = {}


class StsError(HTTPException):
    """An STS error in STS's own XML (moto's would nest it one level deeper and send AccessDenied as 400)."""

    def __init__(self, code: str, message: str, status: int = 400, reason: str | None = None):
        self.code = status  # type: ignore[assignment]
        self.error_code = code
        self.message = message
        self.reason = reason or message
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>Sender</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
        super().__init__(description=body)

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", "text/xml")]


@dataclass
class Accepted:
    sub: str
    audience: str
    provider_arn: str


def install(trust_ca: str | None = None) -> None:
    """Wraps moto's AssumeRoleWithWebIdentity; `trust_ca` is a PEM file trusted for issuers besides the system's CAs."""
    global _trust_ca
    _trust_ca = trust_ca
    from moto.sts.responses import TokenResponse

    try:
        import joserfc  # noqa: F401  (moto[server] depends on it)
    except ImportError:
        _log("joserfc is not installed: no token signature can be verified, every web identity is refused")

    original = TokenResponse.assume_role_with_web_identity

    def assume_role_with_web_identity(self: Any) -> Any:
        role_arn = self._get_param("RoleArn") or ""
        try:
            accepted = validate(self, role_arn)
        except StsError as error:
            _log(f"AssumeRoleWithWebIdentity {role_arn}: {error.error_code}: {error.reason}")
            raise
        # The call is unsigned, so it names no region: the session belongs to the role's partition
        # (aws-cn, aws-us-gov), where its credentials are then checked, as in that partition's STS.
        partition = _partition_of(role_arn)
        if partition and partition != self.partition and partition in PARTITION_REGIONS:
            self.partition, self.region = partition, PARTITION_REGIONS[partition]
        result = original(self)
        result.result.update(
            {
                "SubjectFromWebIdentityToken": accepted.sub,
                "Audience": accepted.audience,
                "Provider": accepted.provider_arn,
            }
        )
        return result

    TokenResponse.assume_role_with_web_identity = assume_role_with_web_identity  # type: ignore[method-assign]


def serve_locally(host_port: str, app: Any) -> None:
    """URLs on `host_port` (this server) are read in-process through `app` instead of over the network."""
    _local["host_port"] = host_port
    _local["app"] = app


def validate(request: Any, role_arn: str) -> Accepted:
    """Every check of the module docstring, in order; raises StsError for the first that fails."""
    from moto.iam.models import iam_backends

    duration = _validated_parameters(request)
    token = request._get_param("WebIdentityToken") or ""
    header, claims = _parse(token)
    account = _account_of(role_arn) or request.current_account
    # The role's partition (aws-cn, aws-us-gov): the unsigned call carries no region of its own.
    iam = iam_backends[account][_partition_of(role_arn) or request.partition]
    iss = str(claims.get("iss", ""))
    provider = next(
        (p for p in iam.open_id_providers.values() if iss.startswith("https://") and p.url == iss[len("https://"):]),
        None,
    )
    if provider is None:
        raise StsError("InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {iss}")
    audiences = [str(a) for a in _as_list(claims.get("aud", []))]
    azp = claims.get("azp")
    audience = str(azp) if azp is not None else next((a for a in audiences if a in provider.client_id_list), None)
    if audience is None or audience not in provider.client_id_list:
        raise StsError(
            "InvalidIdentityToken",
            "Incorrect token audience",
            reason=f"Incorrect token audience: {azp if azp is not None else audiences} not in {provider.client_id_list}",
        )
    _verify_signature(token, header, iss)
    sub = _check_times_and_subject(claims)
    context = {
        f"{provider.url}:sub": [sub],
        f"{provider.url}:aud": [audience],
        "aws:FederatedProvider": [provider.arn],
        "sts:RoleSessionName": [request._get_param("RoleSessionName") or ""],
    }
    if azp is not None:
        context[f"{provider.url}:oaud"] = audiences
    if "amr" in claims:
        context[f"{provider.url}:amr"] = [str(v) for v in _as_list(claims["amr"])]
    who = f"sub {sub} aud {audience}"
    try:
        role = iam.get_role_by_arn(role_arn)
    except Exception:
        raise StsError("AccessDenied", NOT_AUTHORIZED, 403, reason=f"{who}: no role {role_arn} in account {account}") from None
    try:
        policy = json.loads(role.assume_role_policy_document)
    except (TypeError, ValueError):
        raise StsError("AccessDenied", NOT_AUTHORIZED, 403, reason=f"{who}: the trust policy is not JSON") from None
    decision = trust_policy.evaluate(policy, provider.arn, ACTION, context)
    if not decision.allowed:
        raise StsError("AccessDenied", NOT_AUTHORIZED, 403, reason=f"{who}: {decision.reason}")
    if duration is not None and duration > int(role.max_session_duration or 3600):
        raise StsError(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            reason=f"{who}: DurationSeconds {duration} > MaxSessionDuration {role.max_session_duration}",
        )
    _log(f"AssumeRoleWithWebIdentity {role_arn}: {who} {decision.reason}")
    return Accepted(sub=sub, audience=audience, provider_arn=provider.arn)


def _validated_parameters(request: Any) -> int | None:
    errors = []
    raw_duration = request._get_param("DurationSeconds")
    duration = None
    if raw_duration is not None:
        try:
            duration = int(raw_duration)
        except ValueError:
            duration = None
            errors.append(f"Value '{raw_duration}' at 'durationSeconds' failed to satisfy constraint: Member must be an integer")
        if duration is not None and duration < 900:
            errors.append(f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900")
        if duration is not None and duration > 43200:
            errors.append(f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200")
    session = request._get_param("RoleSessionName") or ""
    if len(session) < 2:
        errors.append(f"Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2")
    elif len(session) > 64:
        errors.append(f"Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must have length less than or equal to 64")
    elif not ROLE_SESSION_NAME.fullmatch(session):
        errors.append(f"Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*")
    if errors:
        count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
        raise StsError("ValidationError", count + "; ".join(errors))
    return duration


def _parse(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError(f"{len(parts)} parts")
        header, claims = (json.loads(_b64url(p)) for p in parts[:2])
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("header or claims not a JSON object")
    except (ValueError, UnicodeDecodeError) as error:
        raise StsError("InvalidIdentityToken", NOT_VALIDATED, reason=f"not a JWT: {error}") from None
    return header, claims


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _account_of(role_arn: str) -> str | None:
    parts = role_arn.split(":")
    return parts[4] if len(parts) >= 6 and parts[0] == "arn" and re.fullmatch(r"\d{12}", parts[4]) else None


# A region of each partition but aws, for sessions of roles there (see assume_role_with_web_identity).
PARTITION_REGIONS = {"aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}


def _partition_of(role_arn: str) -> str | None:
    parts = role_arn.split(":")
    return parts[1] if len(parts) >= 6 and parts[0] == "arn" and parts[1] else None


def _verify_signature(token: str, header: dict[str, Any], iss: str) -> None:
    try:
        from joserfc import jws
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet
    except ImportError:
        raise StsError("InvalidIdentityToken", NOT_VALIDATED, reason="joserfc is not installed to verify signatures") from None

    try:
        discovery = _fetch_json(f"{iss.rstrip('/')}/.well-known/openid-configuration")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise OSError(f"jwks_uri {jwks_uri!r} is not an https URL")
        jwks = _fetch_json(jwks_uri)
    except OSError as error:
        raise StsError("InvalidIdentityToken", NO_VERIFICATION_KEY, reason=f"keys not retrievable: {error}") from None
    kid = header.get("kid")
    alg = header.get("alg")
    published = jwks.get("keys")
    keys = [
        k
        for k in (published if isinstance(published, list) else [])
        if isinstance(k, dict) and k.get("kty") in ("RSA", "EC") and (kid is None or k.get("kid") == kid)
    ]
    if not keys:
        raise StsError("InvalidIdentityToken", NO_VERIFICATION_KEY, reason=f"no key with kid {kid!r} in {jwks_uri}")
    if alg not in ALGORITHMS:
        raise StsError("InvalidIdentityToken", NOT_VALIDATED, reason=f"algorithm {alg!r} is not accepted")
    for key in keys:
        try:
            jws.deserialize_compact(token, KeySet.import_key_set({"keys": [key]}).keys[0], algorithms=[alg])
            return
        except (JoseError, ValueError, TypeError):
            continue
    raise StsError("InvalidIdentityToken", NOT_VALIDATED, reason=f"signature does not verify with the key kid {kid!r}")


def _check_times_and_subject(claims: dict[str, Any]) -> str:
    now = int(time.time())
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)):
        raise StsError("InvalidIdentityToken", NOT_VALIDATED, reason="no exp claim")
    if now >= int(exp) + CLOCK_SKEW_SECONDS:
        raise StsError(
            "ExpiredTokenException",
            f"Token expired: current date/time {now} must be before the expiration date/time{int(exp)}",
        )
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, (int, float)) or value > now + CLOCK_SKEW_SECONDS):
            raise StsError("InvalidIdentityToken", NOT_VALIDATED, reason=f"{name} {value} is in the future (now {now})")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise StsError("InvalidIdentityToken", NOT_VALIDATED, reason="no sub claim")
    return sub


def _fetch_json(url: str) -> dict[str, Any]:
    """An anonymous GET of a JSON object; OSError for anything that is not one."""
    parsed = urlparse(url)
    if parsed.scheme != "https":
        raise OSError(f"{url} is not https")
    if parsed.netloc == _local.get("host_port"):
        status, body = _fetch_in_process(parsed.path + (f"?{parsed.query}" if parsed.query else ""))
    else:
        status, body = _fetch_over_https(url)
    if status != 200:
        raise OSError(f"GET {url}: HTTP {status}")
    if len(body) > FETCH_LIMIT_BYTES:
        raise OSError(f"GET {url}: more than {FETCH_LIMIT_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise OSError(f"GET {url}: not JSON") from None
    if not isinstance(document, dict):
        raise OSError(f"GET {url}: not a JSON object")
    return document


def _fetch_in_process(path_and_query: str) -> tuple[int, bytes]:
    from werkzeug.test import Client

    client = Client(_local["app"])
    response = client.get(path_and_query, base_url=f"https://{_local['host_port']}")
    return response.status_code, response.get_data()[: FETCH_LIMIT_BYTES + 1]


def _fetch_over_https(url: str) -> tuple[int, bytes]:
    context = ssl.create_default_context()
    if _trust_ca:
        context.load_verify_locations(_trust_ca)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS, context=context) as response:
            return response.status, response.read(FETCH_LIMIT_BYTES + 1)
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        raise
    except Exception as error:  # http.client's protocol errors are not OSErrors
        raise OSError(f"GET {url}: {type(error).__name__}") from None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _log(message: str) -> None:
    sys.stderr.write(f"[moto] {message}\n")
    sys.stderr.flush()
