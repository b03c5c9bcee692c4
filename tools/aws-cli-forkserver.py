"""The AWS CLI of the embedded target's pods, started from an interpreter that has imported it already.

The embedded target runs a pod's commands as local processes (kwok's Exec). Each `aws` command of
the pinned AWS CLI (awscli v1, pure Python) spends about 0.3 s of CPU importing botocore and awscli
and parsing the same JSON models before it sends a request; a tenant of the isolation matrix runs
two, and on two cores that was the largest single cost of the suite. This fork server does that
work once; each `aws` then forks from it and runs the unchanged `awscli.clidriver.main()` with the
caller's arguments, environment, working directory and standard streams (passed as file
descriptors). Sessions, credentials and configuration are created per command, after the caller's
environment is in place. What a fresh `python -m awscli` would have derived differently from its
environment at import time is redone in the child:
  - awscli/__init__ puts its data directory after the caller's AWS_DATA_PATH: re-run;
  - paths under HOME (botocore's ~/.aws/models, SSO and credential caches, the CLI's history and
    assume-role cache...): the server imports under a HOME that exists nowhere else, and the child
    re-roots every module-level, class-level and default-argument string under it to the caller's
    HOME (`serve --self-check` proves none is left, for the tests);
  - the models the server parsed (a botocore Loader's cache) are used only when the caller's
    search path is the server's and the caller has no ~/.aws/models: the same files, parsed once.

  serve   --socket PATH --ready-file PATH [--exit-with-parent] [--self-check]
                                               the server (a component of the embedded target);
                                               --exit-with-parent: stop when its starter dies
  client  --socket PATH --python PATH -- ARGS  what `aws` runs in a pod; without a server at PATH it
                                               runs `python -m awscli ARGS` itself

The client is started with `python -I -S` (no site, about 10 ms): it only passes its streams on
and returns the command's exit status. The server's children are in its process group and stop
with the environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

MAX_REQUEST = 1 << 20
SELF_CHECK = False


# The HOME the server imports under: a path nothing else contains, so that every string derived
# from it can be found and re-rooted in a child.
SERVER_HOME = f"/nonexistent/irsa-aws-cli-forkserver-home-{os.getpid()}"
# Filled by serve(): the Loader whose cache holds the parsed models, and the search path it has.
shared_loader: object | None = None
shared_search_path: str | None = None


def serve(sock_path: str, ready_file: str, exit_with_parent: bool, self_check: bool) -> None:
    global shared_loader, shared_search_path, SELF_CHECK
    SELF_CHECK = self_check
    os.environ["HOME"] = SERVER_HOME
    # What every command needs, imported once.
    import awscli.clidriver  # noqa: F401
    import awscli.customizations.s3.subcommands  # noqa: F401
    import awscli.handlers  # noqa: F401
    import botocore.auth  # noqa: F401
    import botocore.credentials  # noqa: F401
    import botocore.httpsession  # noqa: F401
    import botocore.loaders
    import botocore.session

    # The models every command parses (the endpoints, the partitions, STS and S3), parsed once.
    # Only a speed-up: if it fails, commands parse them themselves.
    try:
        shared_search_path = os.environ["AWS_DATA_PATH"]  # as awscli/__init__ set it
        loader = botocore.loaders.create_loader(shared_search_path)
        loader.list_available_services("service-2")
        for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
            loader.load_data(name)
        for service in ("sts", "s3"):
            for kind in ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2"):
                if service in loader.list_available_services(kind):
                    loader.load_service_model(service, kind)
        shared_loader = loader
    except Exception as e:  # noqa: BLE001
        sys.stderr.write(f"aws-cli-forkserver: models not preloaded ({type(e).__name__}: {e}); commands load their own\n")
        shared_loader = None
    create_loader = botocore.session.create_loader

    def create_or_share_loader(search_path_string: str | None = None) -> object:
        if (
            shared_loader is not None
            and search_path_string == shared_search_path
            and not os.path.exists(os.path.expanduser(os.path.join("~", ".aws", "models")))
        ):
            return shared_loader
        return create_loader(search_path_string)

    botocore.session.create_loader = create_or_share_loader

    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        server.bind(sock_path)
    finally:
        os.umask(old)
    server.listen(64)
    # Children are reaped as they end: none stays a zombie, none is waited for one by one.
    signal.signal(signal.SIGCHLD, lambda *_: reap())
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if exit_with_parent:
        import threading
        import time

        parent = os.getppid()

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, daemon=True).start()
    with open(ready_file, "w") as f:
        f.write(str(os.getpid()))
    try:
        while True:
            try:
                conn, _ = server.accept()
            except InterruptedError:
                continue
            pid = os.fork()
            if pid == 0:
                server.close()
                run_command(conn)  # never returns
            conn.close()
    finally:
        server.close()
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass


def stop(*_: object) -> None:
    raise SystemExit(0)


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def run_command(conn: socket.socket) -> None:
    status = 1
    try:
        for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
        if len(data) < 4 or len(fds) != 3:
            raise RuntimeError("a request without its length or its three streams")
        (length,) = struct.unpack("!I", data[:4])
        data = data[4:]
        while len(data) < length:
            more = conn.recv(length - len(data))
            if not more:
                raise RuntimeError("a request cut short")
            data += more
        request = json.loads(data)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        # Fresh stream objects on the caller's descriptors, as a new interpreter would make them.
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        reroot_home(os.path.expanduser("~"))
        import importlib

        import awscli
        import awscli.clidriver

        # argv[0] as `python -m awscli` sets it (usage messages name it).
        sys.argv = [os.path.join(os.path.dirname(awscli.__file__), "__main__.py"), *request["argv"]]

        # Besides paths under HOME (re-rooted above), the one import-time effect of the environment
        # (checked for awscli and botocore at the pinned versions): awscli/__init__ puts its data
        # directory after the caller's AWS_DATA_PATH. Run it again, now that the environment is in place.
        importlib.reload(awscli)
        if SELF_CHECK:
            left = strings_under(SERVER_HOME)
            if left:
                sys.stderr.write(f"aws-cli-forkserver self-check: still under the server's HOME: {left[:10]}\n")
                status = 70
                return

        status = awscli.clidriver.main()
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - the command's own failure, reported as the CLI would
        sys.stderr.write(f"aws: {type(e).__name__}: {e}\n")
        status = 255
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a closed pipe: the status still goes back
            pass
        try:
            conn.sendall(struct.pack("!i", int(status or 0)))
        finally:
            os._exit(int(status or 0) & 0xFF)


def _reroot(value: object, home: str) -> object:
    if isinstance(value, str) and value.startswith(SERVER_HOME):
        return home + value[len(SERVER_HOME) :]
    if isinstance(value, list):
        if any(isinstance(v, str) and v.startswith(SERVER_HOME) for v in value):
            value[:] = [_reroot(v, home) for v in value]
    elif isinstance(value, tuple) and any(isinstance(v, str) and v.startswith(SERVER_HOME) for v in value):
        return tuple(_reroot(v, home) for v in value)
    return value


def _reroot_function(f: object, home: str) -> None:
    defaults = getattr(f, "__defaults__", None)
    if defaults:
        f.__defaults__ = _reroot(defaults, home)  # type: ignore[attr-defined]
    kwdefaults = getattr(f, "__kwdefaults__", None)
    if kwdefaults:
        for k, v in kwdefaults.items():
            kwdefaults[k] = _reroot(v, home)


def reroot_home(home: str) -> None:
    """Rewrites what the imports derived from the server's HOME as if they had run under `home`."""
    import types

    me = sys.modules[__name__]
    for module in list(sys.modules.values()):
        if module is me:
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            if isinstance(value, type):
                if getattr(value, "__module__", None) != module.__name__:
                    continue
                for attr, v in list(vars(value).items()):
                    target = v.__func__ if isinstance(v, (staticmethod, classmethod)) else v
                    if isinstance(target, types.FunctionType):
                        _reroot_function(target, home)
                    elif isinstance(v, (str, list, tuple)):
                        new = _reroot(v, home)
                        if new is not v:
                            try:
                                setattr(value, attr, new)
                            except (AttributeError, TypeError):
                                pass  # an immutable type: --self-check reports what remains
            elif isinstance(value, types.FunctionType):
                _reroot_function(value, home)
            elif isinstance(value, (str, list, tuple)):
                new = _reroot(value, home)
                if new is not value:
                    namespace[name] = new
    if shared_loader is not None:
        paths = getattr(shared_loader, "_search_paths", None)
        if isinstance(paths, list):
            _reroot(paths, home)


def strings_under(prefix: str) -> list[str]:
    """Every string reachable from a tracked container that starts with `prefix` (--self-check)."""
    import gc

    found: list[str] = []
    for obj in gc.get_objects():
        if obj is os.environ or obj is getattr(os.environ, "_data", None):
            continue
        values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
        try:
            for v in values:
                if isinstance(v, str) and v.startswith(prefix) and v is not SERVER_HOME:
                    found.append(v)
        except Exception:  # noqa: BLE001,S112 - a container changing while it is read
            continue
    return found


def client(sock_path: str, python: str, argv: list[str]) -> None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(sock_path)
    except OSError:
        conn.close()
        os.execv(python, [python, "-m", "awscli", *argv])
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    payload = struct.pack("!I", len(request)) + request
    sent = socket.send_fds(conn, [payload], [0, 1, 2])
    if sent < len(payload):
        conn.sendall(payload[sent:])
    raw = b""
    while len(raw) < 4:
        chunk = conn.recv(4 - len(raw))
        if not chunk:
            sys.stderr.write("aws: the AWS CLI fork server ended the command without a status\n")
            sys.exit(255)
        raw += chunk
    sys.exit(struct.unpack("!i", raw)[0] & 0xFF)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["serve"] and len(args) >= 5 and args[1] == "--socket" and args[3] == "--ready-file":
        flags = set(args[5:])
        if not flags <= {"--exit-with-parent", "--self-check"}:
            sys.stderr.write(__doc__ or "")
            sys.exit(2)
        serve(args[2], args[4], "--exit-with-parent" in flags, "--self-check" in flags)
    elif args[:1] == ["client"] and len(args) >= 6 and args[1] == "--socket" and args[3] == "--python" and args[5] == "--":
        client(args[2], args[4], args[6:])
    else:
        sys.stderr.write(__doc__ or "")
        sys.exit(2)


if __name__ == "__main__":
    main()
