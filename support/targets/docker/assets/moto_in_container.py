"""The docker target's moto: the embedded launcher's per-request IAM enforcement, on two listeners.

    python3 moto_in_container.py --host 0.0.0.0 --https-port P --http-port 5000 \
        --tls-cert CERT --tls-key KEY --region R --admin-credentials-out FILE [--launcher-dir DIR]

- https on P, with the harness's certificate: the harness's admin endpoint and the service-account
  issuer URL (kube-apiserver serves its OIDC discovery only for an https issuer). P is the same
  number inside the container and on the host, so https://127.0.0.1:P/<bucket> names the same
  server from the harness (published port) and from inside this container.
- http on the second port: the pods, which reach this container by its Docker network alias and
  cannot be given the harness's CA (AWS_CA_BUNDLE wants a file inside the pod).
Both listeners serve the same moto application in one process, so they share one set of backends.

Everything else is tools/moto/launcher.py (copied beside this file in the container; --launcher-dir
elsewhere): the administrator made in moto's backends, IAM checked per request
(per_request_auth.py), AssumeRoleWithWebIdentity answered as AWS STS does (web_identity.py; the
issuer https://127.0.0.1:P/<bucket> is this server, read in-process), moto's management endpoints refused, one log line per request without
secrets, FILE written atomically once both listeners accept connections. Binding all interfaces is
safe here only because it is the container's own network namespace: the harness publishes P on the
host's loopback only, and the http port not at all.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="moto with per-request IAM enforcement on an https and an http port")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--https-port", required=True, type=int)
    parser.add_argument("--http-port", required=True, type=int)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--admin-credentials-out", required=True)
    parser.add_argument("--launcher-dir", default=os.path.dirname(os.path.abspath(__file__)))
    return parser.parse_args(argv)


def serve(args: argparse.Namespace) -> None:
    started = time.monotonic()
    sys.path.insert(0, args.launcher_dir)
    import launcher
    import per_request_auth
    import web_identity
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    launcher.remove(args.admin_credentials_out)
    per_request_auth.install()
    web_identity.install()
    credentials = launcher.create_admin(args.region)
    app = launcher.GatedApp(DomainDispatcherApplication(create_backend_app))
    secure = launcher.make_server(
        argparse.Namespace(host=args.host, port=args.https_port, tls_cert=args.tls_cert, tls_key=args.tls_key), app
    )
    plain = launcher.make_server(argparse.Namespace(host=args.host, port=args.http_port, tls_cert=None, tls_key=None), app)
    https_port, http_port = secure.server_address[1], plain.server_address[1]
    os.environ["MOTO_PORT"] = str(https_port)  # moto builds some self-referencing URLs from it
    web_identity.serve_locally(f"127.0.0.1:{https_port}", app)
    for server in (secure, plain):
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    try:
        endpoint = f"https://{args.host}:{https_port}"
        launcher.write_credentials(
            args.admin_credentials_out,
            {**credentials, "region": args.region, "endpoint": endpoint, "httpPort": str(http_port)},
        )
        launcher.log(
            f"ready on {endpoint} and http://{args.host}:{http_port} in {time.monotonic() - started:.2f}s "
            f"(admin {credentials['accessKeyId']}, region {args.region})"
        )
        while True:
            time.sleep(1.0)  # SIGTERM/SIGINT interrupt this with launcher.Stop
    finally:
        launcher.remove(args.admin_credentials_out)
        for server in (secure, plain):
            server.shutdown()
            server.server_close()
        launcher.log("stopped")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, args.launcher_dir)
    try:
        import launcher
    except ModuleNotFoundError as error:
        sys.stderr.write(f"irsa: {error} (looked in {args.launcher_dir})\nhint: copy tools/moto/*.py beside this file\n")
        return 2
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, launcher.on_signal)
    try:
        serve(args)
    except launcher.Stop:
        return 0
    except launcher.UsageError as error:
        sys.stderr.write(f"irsa: {error}\nhint: {error.hint}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
