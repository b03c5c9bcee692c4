#!/usr/bin/env bash
# The Python virtualenv that runs the embedded target's AWS emulator (moto, through
# tools/moto/launcher.py, served by cheroot) and the AWS CLI, pinned in tools/versions.env
# (MOTO_VERSION, AWSCLI_VERSION, CHEROOT_VERSION and cheroot's two dependencies).
# Prints ONLY the venv's path on stdout; progress goes to stderr. Idempotent: a complete venv carries a
# stamp and is reused in well under a second.
#   - When the machine's Python already has exactly the pinned moto[server] and awscli, the venv is
#     made with --system-site-packages and borrows them (pip checks that with --no-index); only what
#     the machine lacks of the server (cheroot) is installed from PyPI, into the venv.
#   - Otherwise it is a clean venv, installed by package name from PyPI.
# IRSA_PYTHON picks the interpreter (default: python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${IRSA_CACHE:-$HOME/.cache/irsa-conformance}
python=${IRSA_PYTHON:-python3}

log() { printf '[python-env] %s\n' "$*" >&2; }
die() { printf 'irsa: %s\nhint: %s\n' "$1" "$2" >&2; exit 2; }

command -v "$python" >/dev/null 2>&1 \
  || die "no Python interpreter '$python' on PATH (the AWS emulator, moto, is a Python program)" \
         "install Python 3.9 or newer (Debian: apt-get install python3 python3-venv), or set IRSA_PYTHON"
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
  || die "'$python' does not run" "install Python 3.9 or newer, or set IRSA_PYTHON to a working interpreter"

venv=$cache/venv-moto$MOTO_VERSION-awscli$AWSCLI_VERSION-cheroot$CHEROOT_VERSION-py$pyver
stamp=$venv/.irsa-complete

# The stamp lists paths whose existence the venv depends on: its own python and, for a venv that
# borrows the machine's site-packages, the borrowed packages' metadata directories (their names carry
# the version, so an upgrade of the machine's moto invalidates the venv). Checking them is a few stats.
stamp_valid() {
  [ -f "$stamp" ] || return 1
  local path
  while IFS= read -r path; do
    [ -e "$path" ] || return 1
  done < "$stamp"
}

if stamp_valid; then echo "$venv"; exit 0; fi

"$python" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$python ($pyver) has no working 'venv' module (ensurepip is missing)" \
         "on Debian/Ubuntu: apt-get install python3-venv (or python$pyver-venv)"

mkdir -p "$cache"
# Two bootstraps at once (two terminals, CI steps) must not build into the same directory.
exec 9>"$venv.lock"
flock 9
if stamp_valid; then echo "$venv"; exit 0; fi

started=$(date +%s)
requirements=("moto[server]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION")
server_requirements=("cheroot==$CHEROOT_VERSION" "jaraco.functools==$JARACO_FUNCTOOLS_VERSION" "more-itertools==$MORE_ITERTOOLS_VERSION")
pip_options=(--disable-pip-version-check --no-input)

rm -rf "$venv"
stamp_paths=("$venv/bin/python")
if "$python" -m venv --system-site-packages "$venv" >&2 \
  && "$venv/bin/python" -m pip install "${pip_options[@]}" --quiet --no-index "${requirements[@]}" >/dev/null 2>&1; then
  log "reusing the machine's moto $MOTO_VERSION and awscli $AWSCLI_VERSION ($python $pyver) in $venv"
  "$venv/bin/python" -m pip install "${pip_options[@]}" --quiet "${server_requirements[@]}" >&2 \
    || { rm -rf "$venv"; die "pip could not install ${server_requirements[*]}" "check access to the Python package index (pip config), then rerun"; }
  # Where the borrowed distributions' metadata directories are (their names carry the versions).
  while IFS= read -r p; do stamp_paths+=("$p"); done < <("$venv/bin/python" - <<'EOF'
import importlib.metadata as md
for name in ("moto", "awscli", "botocore", "flask", "werkzeug", "cheroot"):
    path = getattr(md.distribution(name), "_path", None)
    if path:
        print(path)
EOF
)
  # The machine's console scripts are not in the venv's bin/; callers expect $venv/bin/aws either way.
  printf '#!/bin/sh\nexec "%s/bin/python" -m awscli "$@"\n' "$venv" > "$venv/bin/aws"
  chmod +x "$venv/bin/aws"
  stamp_paths+=("$venv/bin/aws")
else
  requirements+=("${server_requirements[@]}")
  log "creating $venv and installing ${requirements[*]} from PyPI (cold: about a minute)"
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2 || die "could not create a virtualenv in $venv" "see the output above; on Debian: apt-get install python3-venv"
  "$venv/bin/python" -m pip install "${pip_options[@]}" --progress-bar off "${requirements[@]}" >&2 \
    || { rm -rf "$venv"; die "pip could not install ${requirements[*]}" "check access to the Python package index (pip config), then rerun"; }
fi

{ "$venv/bin/python" -c 'import moto.server, flask_cors, cheroot.wsgi' && "$venv/bin/aws" --version; } >/dev/null 2>&1 \
  || { rm -rf "$venv"; die "the virtualenv in $venv cannot import moto's server or awscli" "delete it and rerun; if it persists, check pip's output above"; }
printf '%s\n' "${stamp_paths[@]}" > "$stamp.tmp"
mv "$stamp.tmp" "$stamp"
log "ready in $(( $(date +%s) - started ))s"
echo "$venv"
