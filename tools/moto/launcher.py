"""The embedded target's AWS emulator: moto's server with IAM enforced on every signed request.

Why not `moto_server`: moto enforces IAM only after a process-wide counter (INITIAL_NO_AUTH_ACTION_COUNT)
runs out, and with enforcement on, every unsigned request fails with HTTP 500, including the
unsigned STS AssumeRoleWithWebIdentity call and anonymous GETs of a public OIDC discovery document,
which IRSA depends on. Toggling that global between steps is racy under concurrent requests. This
launcher decides per request instead (per_request_auth.py), creates an administrator directly in
moto's backends, and runs moto's own WSGI application (all services) on a threaded server with
keep-alive connections (cheroot; werkzeug's development server where cheroot is not installed).

    python launcher.py --host 127.0.0.1 --port P --region R --admin-credentials-out FILE
                       [--tls-cert CERT --tls-key KEY] [--trust-ca CA] [--exit-with-parent]

- Binds a loopback address only. --port 0 picks a free port (the file then tells which).
- FILE appears (mode 0600, written atomically) once the server accepts connections: JSON
  {accessKeyId, secretAccessKey, accountId, region, endpoint}. It is removed again on exit.
- One line per request on stderr, when its response is complete: the UTC time, method, path
  without query, status, caller's access key id or "anonymous", and the AWS call: service:Action
  with the names it acts on (RoleName, RoleArn, PolicyArn, ...; for S3 the path names the bucket),
  and the access key id of credentials it issued (-> ASIA...). A failed scenario's diagnostics
  select its lines by time and by these names. Headers, bodies, tokens and secrets are never logged.
- STS AssumeRoleWithWebIdentity answers as AWS does (web_identity.py): the token is validated
  against the issuer's published keys and the role's trust policy is evaluated (trust_policy.py).
  --trust-ca names a PEM file trusted, besides the system's CAs, when it fetches an issuer's keys.
- SIGTERM/SIGINT stop it cleanly; --exit-with-parent also stops it when the process that started it
  dies without stopping it.
Exit codes: 0 after a signal, 2 for bad arguments or an environment problem (cause and hint on stderr).
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs

ADMIN_USER = "irsa-conformance-admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
CREDENTIAL_IN_HEADER = re.compile(r"Credential=([^/,\s]+)/")
SERVICE_IN_HEADER = re.compile(r"Credential=[^/,\s]+/\d+/[^/,\s]+/([^/,\s]+)/")
# Request parameters that name what a call acts on: logged (never a document, token or secret).
LOGGED_PARAMETERS = ("RoleName", "RoleArn", "RoleSessionName", "PolicyArn", "PolicyName", "UserName", "OpenIDConnectProviderArn", "Url")
ISSUED_KEY = re.compile(rb"<AccessKeyId>([A-Z0-9]{16,128})</AccessKeyId>")
ISSUING_ACTIONS = ("AssumeRoleWithWebIdentity", "AssumeRole", "GetSessionToken", "CreateAccessKey")
MAX_LOGGED_FORM_BYTES = 1 << 20
# moto's management API (/moto-api: reset state, switch IAM enforcement off) and its EC2 metadata
# emulation answer anyone; both would undo the access control this launcher exists for.
UNAUTHENTICATED_MOTO_PATHS = ("/moto-api", "/latest/meta-data/", "/latest/api/")


class UsageError(Exception):
    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def log(message: str) -> None:
    sys.stderr.write(f"[moto] {message}\n")
    sys.stderr.flush()


def log_request(message: str) -> None:
    """A request's line, with the UTC time it ended (lifecycle lines such as "ready on" have none)."""
    now = time.time()
    log(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z {message}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="moto server with per-request IAM enforcement")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--region", required=True)
    parser.add_argument("--admin-credentials-out", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--trust-ca")
    parser.add_argument("--exit-with-parent", action="store_true")
    args = parser.parse_args(argv)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--host {args.host} is not a loopback IP address", "use 127.0.0.1 (or ::1): the emulator trusts every local caller")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together", "pass both (PEM files) for https, or neither for http")
    return args


def create_admin(region: str) -> dict[str, str]:
    """An IAM user allowed everything, made in moto's backends directly: no request, no global switch."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends
    from moto.utilities.utils import get_partition

    account_id = os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
    iam = iam_backends[account_id][get_partition(region)]
    iam.create_user(region_name=region, user_name=ADMIN_USER)
    iam.put_user_policy(ADMIN_USER, ADMIN_USER, json.dumps(ADMIN_POLICY))
    key = iam.create_access_key(ADMIN_USER)
    return {"accessKeyId": key.access_key_id, "secretAccessKey": key.secret_access_key, "accountId": account_id}


def caller_of(environ: dict[str, Any]) -> str:
    """The access key id a request claims (not yet verified), for the request log."""
    authorization = environ.get("HTTP_AUTHORIZATION")
    if authorization:
        match = CREDENTIAL_IN_HEADER.search(authorization)
        return match.group(1) if match else "malformed-authorization"
    query = parse_qs(environ.get("QUERY_STRING", ""))
    credential = query.get("X-Amz-Credential") or query.get("AWSAccessKeyId")  # presigned: SigV4 or SigV2
    return credential[0].split("/")[0] if credential else "anonymous"


def call_of(environ: dict[str, Any]) -> tuple[str, str]:
    """The AWS call a request makes, as `service:Action Name=value ...` for the log, and its Action.

    Query-protocol calls (IAM, STS) name their Action in the query string or the form body; the body
    is read here and handed on unchanged. S3 calls are REST: their path names the bucket."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    params = {k: v[0] for k, v in query.items() if v}
    content_type = environ.get("CONTENT_TYPE", "")
    if environ.get("REQUEST_METHOD") == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if 0 < length <= MAX_LOGGED_FORM_BYTES:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items() if v})
    match = SERVICE_IN_HEADER.search(environ.get("HTTP_AUTHORIZATION", ""))
    action = params.get("Action", "")
    service = match.group(1) if match else ("sts" if action.startswith("AssumeRoleWith") else "")
    if not action:
        return (f"{service or 's3'}:{environ.get('REQUEST_METHOD', '?')}", "")
    names = " ".join(f"{k}={params[k]}" for k in LOGGED_PARAMETERS if k in params)
    return (f"{service or '?'}:{action}{' ' + names if names else ''}", action)


class IssuingResponse:
    """A response that issues credentials, passed through: its line, with the access key id it
    issued, is logged once the body has been sent."""

    def __init__(self, body: Any, line: Any):
        self.body, self.line, self.seen = body, line, b""

    def __iter__(self) -> Any:
        for chunk in self.body:
            if len(self.seen) < 65536:
                self.seen += chunk
            yield chunk

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            issued = ISSUED_KEY.search(self.seen)
            log_request(self.line() + (f" -> {issued.group(1).decode()}" if issued else ""))


class GatedApp:
    """Wraps moto's WSGI app: refuses moto's unauthenticated side doors and logs one line per request."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method, path, caller = environ.get("REQUEST_METHOD", "?"), environ.get("PATH_INFO", ""), caller_of(environ)
        call, action = call_of(environ)
        issuing = action in ISSUING_ACTIONS
        status_code = ["?"]

        def line() -> str:
            return f"{method} {path} {status_code[0]} {caller} {call}"

        def logging_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_code[0] = status.split(" ", 1)[0]
            if not issuing:
                log_request(line())
            return start_response(status, headers, exc_info)

        if path.startswith(UNAUTHENTICATED_MOTO_PATHS):
            body = b"moto's management and metadata endpoints are disabled by the irsa-conformance launcher\n"
            logging_start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        try:
            body = self.app(environ, logging_start_response)
            return IssuingResponse(body, line) if issuing else body
        except Exception as error:
            log_request(f"{method} {path} 500 {caller} {call} ({type(error).__name__} in moto)")
            raise


class CherootServer:
    """cheroot's WSGI server (keep-alive, a thread pool), with werkzeug's server interface used below."""

    def __init__(self, args: argparse.Namespace, app: Any):
        from cheroot import wsgi
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        class LazyHandshake(BuiltinSSLAdapter):  # type: ignore[misc]
            # cheroot handshakes in the thread that accepts connections: a client that connects and
            # says nothing (a port probe) would stall every other one. Handshake in the request's
            # worker thread instead, on its first read.
            def wrap(self, sock: Any) -> Any:
                wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
                return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}

        # A listen backlog for bursts (the default 5 drops SYNs: 1 s retransmits) and a thread per
        # concurrent request a busy run makes; idle keep-alive connections hold no thread.
        self.server = wsgi.Server(
            (args.host, args.port), app, numthreads=32, server_name="irsa-moto", request_queue_size=256, timeout=10
        )
        # cheroot answers "Connection: close" once 10 connections are open; a run's worker threads
        # keep up to 64 each (support/clients.ts), and an idle one costs only a descriptor.
        self.server.keep_alive_conn_limit = 512
        if args.tls_cert:
            try:
                self.server.ssl_adapter = LazyHandshake(args.tls_cert, args.tls_key)
            except (OSError, ssl.SSLError) as error:
                raise UsageError(f"cannot load the TLS certificate/key: {error}", "pass PEM files: --tls-cert (chain) and --tls-key (unencrypted key)") from None
        try:
            self.server.prepare()
        except OSError as error:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}", "pick a free port (or --port 0)") from None
        self.server_address = self.server.bind_addr

    def serve_forever(self, poll_interval: float = 0.2) -> None:
        self.server.serve()

    def shutdown(self) -> None:
        self.server.stop()

    def server_close(self) -> None:
        pass


def make_server(args: argparse.Namespace, app: Any) -> Any:
    """cheroot when the environment has it (tools/python-env.sh installs it), else werkzeug's server.

    werkzeug's development server closes every connection after one response (and then waits
    10 ms for stray request bytes), so every request paid a new TCP and TLS handshake on both sides;
    cheroot keeps connections alive. Measured on 2 cores: the default suite 15.1 s -> 12.5 s, the
    30-tenant matrix 21.2 s -> 17.0 s. Images without cheroot (the docker target's moto) keep werkzeug.
    """
    try:
        import cheroot.wsgi  # noqa: F401
    except ImportError:
        pass
    else:
        return CherootServer(args, app)
    from werkzeug.serving import WSGIRequestHandler
    from werkzeug.serving import make_server as werkzeug_make_server

    class Handler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # werkzeug's line includes the query string, which can carry a presigned URL's secrets

    try:
        server = werkzeug_make_server(args.host, args.port, app, threaded=True, request_handler=Handler)
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}", "pick a free port (or --port 0)") from None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as error:
            server.server_close()
            raise UsageError(f"cannot load the TLS certificate/key: {error}", "pass PEM files: --tls-cert (chain) and --tls-key (unencrypted key)") from None
        # werkzeug would handshake inside accept(), on the one thread that accepts connections, so a
        # client that connects and says nothing (a port probe) would stall the server. Handshake lazily,
        # in each request's own thread, instead.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.ssl_context = context
    return server


class Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT."""


def on_signal(signum: int, frame: Any) -> None:
    for other in (signal.SIGTERM, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)  # shutting down already; a second signal must not interrupt it
    raise Stop()


def write_credentials(path: str, credentials: dict[str, str]) -> None:
    """Atomically, mode 0600: the file's appearance is the readiness signal, so it must never be partial."""
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(credentials, out)
        os.replace(temporary, path)
    except BaseException:
        remove(temporary)
        raise


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def serve(args: argparse.Namespace) -> None:
    started = time.monotonic()
    remove(args.admin_credentials_out)  # a stale file from an earlier run would signal readiness too early

    import per_request_auth
    import web_identity
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    per_request_auth.install()
    web_identity.install(args.trust_ca)
    credentials = create_admin(args.region)
    app = GatedApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(args, app)
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)  # moto builds some self-referencing URLs from it
    host = f"[{args.host}]" if ":" in args.host else args.host
    web_identity.serve_locally(f"{host}:{port}", app)
    endpoint = f"{'https' if args.tls_cert else 'http'}://{host}:{port}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    parent = os.getppid()
    try:
        write_credentials(args.admin_credentials_out, {**credentials, "region": args.region, "endpoint": endpoint})
        kind = "cheroot" if isinstance(server, CherootServer) else "werkzeug"
        log(f"ready on {endpoint} in {time.monotonic() - started:.2f}s ({kind}, admin {credentials['accessKeyId']}, region {args.region})")
        while not (args.exit_with_parent and os.getppid() != parent):
            time.sleep(1.0)  # SIGTERM/SIGINT interrupt this with Stop
        log("the process that started this one is gone: stopping")
    finally:
        remove(args.admin_credentials_out)
        server.shutdown()
        server.server_close()
        log("stopped")


def main(argv: list[str]) -> int:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    try:
        serve(parse_args(argv))
    except Stop:
        return 0
    except UsageError as error:
        sys.stderr.write(f"irsa: {error}\nhint: {error.hint}\n")
        return 2
    except ModuleNotFoundError as error:
        sys.stderr.write(f"irsa: {error} in {sys.executable}\nhint: run this with the virtualenv's python from tools/python-env.sh\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
