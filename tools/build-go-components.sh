#!/usr/bin/env bash
# Builds the embedded target's Go components from the Go module proxy into a cache keyed by version:
#   $IRSA_CACHE/bin/<component>-<version>[-<overlay>]/<binary>
# kwok and the webhook are built from a copy of their module with build-time changes (KWOK_OVERLAY
# and POD_IDENTITY_WEBHOOK_OVERLAY in versions.env name the recipe): exact substitutions, plus
# files of tools/go-overlays/; nothing of upstream's source is kept in this repository, and a
# substitution that no longer matches fails the build.
# Idempotent: a component whose binaries exist is skipped in milliseconds.
# kubernetes and etcd cannot be `go install`ed (replace directives), so each is built as a
# dependency of a small wrapper module (irsa-facts §7). kwok and the webhook install directly.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${IRSA_CACHE:-$HOME/.cache/irsa-conformance}
bin=$cache/bin
work=$cache/go-work
mkdir -p "$bin" "$work"
only=${1:-all}

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf 'irsa: %s\nhint: %s\n' "$1" "$2" >&2; exit 2; }

# Go >= 1.26.3 builds every pinned component (the webhook's go.mod asks for it). Checked only when
# something has to be built: cached binaries need no Go. Every build function calls it right after
# finding its binaries missing, so in plan mode (PLAN=1, in a subshell) it ends the function there
# with status 3: "this one needs a build".
need_go() {
  if [ -n "${PLAN:-}" ]; then exit 3; fi
  command -v go >/dev/null 2>&1 \
    || die "no Go toolchain on PATH: the embedded target's components are built from Go modules" \
           "install Go 1.26.3 or newer, or point IRSA_KUBE_BIN_DIR, IRSA_ETCD_BIN, IRSA_KWOK_BIN and IRSA_WEBHOOK_BIN at binaries you have"
  local gover; gover=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  if [ "$(printf '1.26.3\n%s\n' "$gover" | sort -V | head -n 1)" != "1.26.3" ]; then
    die "Go $gover is older than 1.26.3, which the pinned components need" "install Go 1.26.3 or newer (or set GOTOOLCHAIN to a newer release)"
  fi
}

# Runs a build step with its output in a log file, printing a progress line every 250 compiled
# packages; on failure, a one-line cause, the log's tail and a hint.
run_logged() {
  local what=$1; shift
  local logf=$cache/build-logs/$what.log
  mkdir -p "$cache/build-logs"
  local rc
  set +e
  ( "$@" ) 2>&1 | tee "$logf" | awk -v what="$what" '/^[a-z0-9.-]+\.[a-z]+\// || /^[a-z]+\// { n++; if (n % 250 == 0) { printf "[bootstrap] %s: %d packages compiled\n", what, n > "/dev/stderr"; fflush("/dev/stderr") } }'
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    tail -n 15 "$logf" >&2
    die "building $what failed (exit $rc); full log: $logf" "check the Go module proxy access and disk space, then run the command again (finished components are cached)"
  fi
}

have() { local d=$1; shift; for b in "$@"; do [ -x "$d/$b" ] || return 1; done; }

# The module's directory in the module cache (downloaded if need be).
module_dir() { go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p'; }

# Builds packages of a module that has no replace directives from its own (read-only) directory in
# the module cache. `go install mod@version` is avoided on purpose: it also asks the proxy for the
# module's version list (deprecation check), which the proxy refuses for some modules.
build_in_module_dir() {
  local modv=$1 out=$2; shift 2
  local dir; dir=$(module_dir "$modv")
  [ -n "$dir" ] || { log "cannot download $modv from the Go module proxy"; return 1; }
  build_in_dir "$dir" "$out" "$@"
}

# Builds packages of the module in <dir> into <out>/ (replaced only once the build succeeded).
build_in_dir() {
  local dir=$1 out=$2; shift 2
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  run_logged "$(basename "$out")" bash -c 'cd "$1" && shift && go build -v -trimpath -o "$@"' _ "$dir" "$out.tmp/" "$@"
  rm -rf "$out"; mv "$out.tmp" "$out"
}

# Writes the wrapper module that builds k8s.io/kubernetes commands (irsa-facts §7): it requires
# k8s.io/kubernetes at the pinned version and replaces every staging module with its release.
kubernetes_wrapper_module() {
  local w=$1 v=$KUBERNETES_VERSION
  rm -rf "$w"; mkdir -p "$w"
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  local staging_version=v0.${v#v1.}
  {
    echo "module irsa-conformance.local/kubernetes-build"
    echo
    sed -n 's/^go \(.*\)/go \1/p' "$gomod"
    grep '^godebug' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$gomod"
    echo ")"
  } > "$w/go.mod"
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION out=$bin/kubernetes-$KUBERNETES_VERSION
  have "$out" kube-apiserver kube-controller-manager kube-scheduler && return 0
  need_go
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $v (cold, with empty Go caches: about 6 min on 2 cores)"
  local w=$work/kubernetes-$v
  kubernetes_wrapper_module "$w"
  run_logged "kubernetes-$v-modules" bash -c 'cd "$1" && go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$2" "k8s.io/kubernetes/cmd/kube-controller-manager@$2" "k8s.io/kubernetes/cmd/kube-scheduler@$2"' _ "$w" "$v"
  mkdir -p "$out.tmp"
  run_logged "kubernetes-$v" bash -c 'cd "$1" && go build -v -trimpath -o "$2/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler' _ "$w" "$out.tmp"
  rm -rf "$out"; mv "$out.tmp" "$out"
}

# The real node's kubelet (IRSA_KUBE_NODE=kubelet only), in its own wrapper module and cache
# directory so that the control plane's stay valid. Its version is stamped, so that the Node
# reports the pinned release (the control plane's binaries report v0.0.0-master).
build_kubelet() {
  local v=$KUBERNETES_VERSION out=$bin/kubelet-$KUBERNETES_VERSION
  have "$out" kubelet && return 0
  need_go
  log "building kubelet $v (cold: about 6 min on 2 cores, less when the control plane was built before)"
  local w=$work/kubelet-$v
  kubernetes_wrapper_module "$w"
  run_logged "kubelet-$v-modules" bash -c 'cd "$1" && go get -tool "k8s.io/kubernetes/cmd/kubelet@$2"' _ "$w" "$v"
  local minor=${v#v1.}; minor=${minor%%.*}
  local ldflags="-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  mkdir -p "$out.tmp"
  run_logged "kubelet-$v" bash -c 'cd "$1" && go build -v -trimpath -ldflags "$3" -o "$2/" k8s.io/kubernetes/cmd/kubelet' _ "$w" "$out.tmp" "$ldflags"
  rm -rf "$out"; mv "$out.tmp" "$out"
}

# containerd 2.x, its runc shim and ctr (IRSA_KUBE_NODE=kubelet only). Static, without the cgo
# snapshotters (btrfs) the node does not use; the shim without gRPC, as upstream's Makefile builds it.
build_containerd() {
  local v=$CONTAINERD_VERSION out=$bin/containerd-$CONTAINERD_VERSION
  have "$out" containerd containerd-shim-runc-v2 ctr && return 0
  need_go
  log "building containerd $v, containerd-shim-runc-v2 and ctr"
  local ldflags="-X github.com/containerd/containerd/v2/version.Version=$v"
  CGO_ENABLED=0 build_in_module_dir "github.com/containerd/containerd/v2@$v" "$out" \
    -tags "urfave_cli_no_docs no_btrfs osusergo netgo static_build" -ldflags "$ldflags" ./cmd/containerd ./cmd/ctr
  local dir; dir=$(module_dir "github.com/containerd/containerd/v2@$v")
  run_logged "containerd-shim-runc-v2-$v" bash -c 'cd "$1" && CGO_ENABLED=0 go build -v -trimpath -tags "urfave_cli_no_docs osusergo netgo static_build no_grpc" -ldflags "$3" -o "$2/containerd-shim-runc-v2" ./cmd/containerd-shim-runc-v2' _ "$dir" "$out" "$ldflags"
}

build_etcd() {
  local v=$ETCD_VERSION out=$bin/etcd-$ETCD_VERSION
  have "$out" etcd && return 0
  need_go
  log "building etcd $v"
  local w=$work/etcd-$v
  rm -rf "$w"; mkdir -p "$w"
  printf 'module irsa-conformance.local/etcd-build\n\ngo 1.26.0\n' > "$w/go.mod"
  run_logged "etcd-$v-modules" bash -c 'cd "$1" && go get -tool "go.etcd.io/etcd/server/v3@$2"' _ "$w" "$v"
  mkdir -p "$out.tmp"
  run_logged "etcd-$v" bash -c 'cd "$1" && go build -v -trimpath -o "$2/etcd" go.etcd.io/etcd/server/v3' _ "$w" "$out.tmp"
  rm -rf "$out"; mv "$out.tmp" "$out"
}

# Makes <dir> a copy of <module dir> (the module cache's, read-only) with build-time changes: each
# substitution "<file>" "<from>" "<to>" must match exactly once (the pinned version is what the
# recipe was written for), each "+<file>" "<ours>" adds a file of ours. The copy lives in the
# cache; nothing of upstream's source is kept in this repository. (`go build -overlay` cannot
# replace files of the module cache, hence the copy.)
patched_copy() {
  local mod=$1 dir=$2; shift 2
  rm -rf "$dir"; mkdir -p "$(dirname "$dir")"
  cp -R "$mod" "$dir"; chmod -R u+w "$dir"
  python3 - "$dir" "$@" <<'PY' || die "the build-time change of $mod no longer applies (a substitution did not match exactly once)" "the pinned version changed: adapt the recipe in tools/build-go-components.sh"
import shutil, sys
root, args = sys.argv[1], sys.argv[2:]
while args:
    if args[0].startswith('+'):
        shutil.copyfile(args[1], f"{root}/{args[0][1:]}")
        args = args[2:]
        continue
    rel, old, new, args = args[0], args[1], args[2], args[3:]
    path = f"{root}/{rel}"
    text = open(path).read()
    if text.count(old) != 1:
        sys.exit(f"{rel}: {old!r} occurs {text.count(old)} times, not once")
    open(path, 'w').write(text.replace(old, new))
PY
}

# kwok's kubelet endpoint (exec, logs) serves only clients with a certificate of the environment's
# CA (tools/go-overlays/kwok): its TLS server requires one, plain HTTP on the port is refused.
build_kwok() {
  local v=$KWOK_VERSION out=$bin/kwok-$KWOK_VERSION-$KWOK_OVERLAY
  have "$out" kwok && return 0
  need_go
  log "building kwok $v with the $KWOK_OVERLAY overlay (the node and pod runtime; kwokctl was evaluated and is not used, see support/targets/embedded/index.ts)"
  local src=$work/kwok-$v-$KWOK_OVERLAY
  patched_copy "$(module_dir "sigs.k8s.io/kwok@$v")" "$src" \
    pkg/kwok/server/server.go $'\t\t\terr = svc.ServeTLS(tlsListener, certFile, privateKeyFile)' \
      $'\t\t\tsvc.TLSConfig = irsaClientAuth()\n\t\t\terr = svc.ServeTLS(tlsListener, certFile, privateKeyFile)' \
    pkg/kwok/server/server.go $'\t\terr = svc.Serve(unmatchedListener)' \
      $'\t\tsvc.Handler = irsaPlainRefused()\n\t\terr = svc.Serve(unmatchedListener)' \
    +pkg/kwok/server/irsa_client_auth.go "$here/go-overlays/kwok/irsa_client_auth.go"
  build_in_dir "$src" "$out" ./cmd/kwok
}

# v0.6.17 listens on ":<port>" (every interface) with no flag to change it: its two listen
# addresses become 127.0.0.1:<port>, nothing else changes.
build_webhook() {
  local v=$POD_IDENTITY_WEBHOOK_VERSION out=$bin/pod-identity-webhook-$POD_IDENTITY_WEBHOOK_VERSION-$POD_IDENTITY_WEBHOOK_OVERLAY
  have "$out" amazon-eks-pod-identity-webhook && return 0
  need_go
  log "building amazon-eks-pod-identity-webhook $v with the $POD_IDENTITY_WEBHOOK_OVERLAY overlay"
  local src=$work/pod-identity-webhook-$v-$POD_IDENTITY_WEBHOOK_OVERLAY
  patched_copy "$(module_dir "github.com/aws/amazon-eks-pod-identity-webhook@$v")" "$src" \
    main.go 'addr := fmt.Sprintf(":%d", *port)' 'addr := fmt.Sprintf("127.0.0.1:%d", *port)' \
    main.go 'metricsAddr := fmt.Sprintf(":%d", *metricsPort)' 'metricsAddr := fmt.Sprintf("127.0.0.1:%d", *metricsPort)'
  build_in_dir "$src" "$out" -o "$out.tmp/amazon-eks-pod-identity-webhook" .
}

# Seconds a cold build of each component takes on 2 cores with empty Go caches, built in the order
# of `all` (each after the ones before it, sharing their module and build caches): the expected
# times of the progress lines. The shares were measured in one cold build (2026-12, on a machine
# shared at load 10-15: 27 min of wall time for 13.4 min of CPU), scaled to the 6.5 minutes all
# four take on an idle 2-core machine (README).
declare -A COLD_SECONDS=([webhook]=75 [kwok]=60 [etcd]=50 [kubernetes]=205)

seconds() { local s=$1; if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi; }

# True when the component's binaries are not in the cache (its build function, in plan mode).
needs_build() { local rc=0; ( PLAN=1; "build_$1" ) || rc=$?; [ "$rc" -eq 3 ]; }

# Builds what is missing of the components, with one line when the set-up starts (what it builds
# and the expected total), the component's own line when each starts, and one when each ends.
build_missing() {
  local todo=() c total=0 i=0 started=$SECONDS t0
  for c in "$@"; do needs_build "$c" && todo+=("$c"); done
  [ ${#todo[@]} -gt 0 ] || return 0
  for c in "${todo[@]}"; do total=$((total + ${COLD_SECONDS[$c]:-60})); done
  log "first set-up of the embedded target: building ${todo[*]} from the Go module proxy into $bin (expected about $(seconds "$total") on 2 cores with empty Go caches; built once, then cached)"
  for c in "${todo[@]}"; do
    i=$((i + 1)); t0=$SECONDS
    "build_$c"
    log "$c built in $(seconds $((SECONDS - t0))) ($i of ${#todo[@]}, $(seconds $((SECONDS - started))) so far)"
  done
  log "the embedded target's components are built: $(seconds $((SECONDS - started))) in all"
}

# A user who points at binaries they have (e.g. envtest's kube-apiserver and etcd) skips those builds.
case $only in
  all)
    components=()
    [ -n "${IRSA_WEBHOOK_BIN:-}" ] || components+=(webhook)
    [ -n "${IRSA_KWOK_BIN:-}" ] || components+=(kwok)
    [ -n "${IRSA_ETCD_BIN:-}" ] || components+=(etcd)
    [ -n "${IRSA_KUBE_BIN_DIR:-}" ] || components+=(kubernetes)
    build_missing "${components[@]}"
    ;;
  # kubelet and containerd are the real node's (tools/real-node/build.sh): never part of `all`.
  kubernetes|etcd|kwok|webhook|kubelet|containerd) "build_$only" ;;
  *) echo "usage: $0 [all|kubernetes|etcd|kwok|webhook|kubelet|containerd]" >&2; exit 2 ;;
esac
