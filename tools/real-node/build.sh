#!/usr/bin/env bash
# Everything the embedded target's real node runs (IRSA_KUBE_NODE=kubelet), built or fetched into
# the cache, keyed by version: nothing is installed on the machine, no registry and no Docker.
#   kubelet, containerd, containerd-shim-runc-v2, ctr  tools/build-go-components.sh (Go module proxy)
#   runc, the CNI plugins, umoci                       Debian packages at the versions in
#                                                      versions.env (apt-get download, dpkg -x)
#   the pause image                                    tools/real-node/pause.c, static (gcc)
#   the app image                                      python3 from Debian packages (dpkg -x of the
#                                                      dependency closure apt computes, no maintainer
#                                                      scripts) and the pinned AWS CLI from PyPI,
#                                                      byte-compiled
# Images are OCI image layouts made with umoci and packed as tar files, which the target imports
# into its containerd at each start (ctr images import).
# Idempotent: when everything is there it only prints the JSON below, in milliseconds. Prints ONLY
# that JSON on stdout (paths and image names, read by support/targets/embedded/real-node.ts);
# progress goes to stderr, build output to $IRSA_CACHE/build-logs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=$(cd "$here/.." && pwd)
# shellcheck source=../versions.env
. "$tools/versions.env"
cache=${IRSA_CACHE:-$HOME/.cache/irsa-conformance}
bin=$cache/bin

log() { printf '[real-node] %s\n' "$*" >&2; }
die() { printf 'irsa: %s\nhint: %s\n' "$1" "$2" >&2; exit 2; }
# apt prints where it fetches from; no source address goes into a log or a terminal of ours.
no_sources() { sed -E 's#[a-z]+://[^ ]+#<source>#g'; }

# The images change when their recipe does (this file, pause.c) or the pinned CLI does.
recipe=$(cat "$here/build.sh" "$here/pause.c" | sha256sum | cut -c1-12)
kubelet_dir=$bin/kubelet-$KUBERNETES_VERSION
containerd_dir=$bin/containerd-$CONTAINERD_VERSION
runc_dir=$bin/runc-$RUNC_DEBIAN_VERSION
cni_dir=$bin/cni-plugins-$CNI_PLUGINS_DEBIAN_VERSION
umoci_dir=$bin/umoci-$UMOCI_DEBIAN_VERSION
images=$cache/images
pause_ref=localhost/irsa-conformance/pause:$recipe
pause_tar=$images/pause-$recipe.tar
app_ref=localhost/irsa-conformance/aws-cli:$AWSCLI_VERSION-$recipe
app_tar=$images/aws-cli-$AWSCLI_VERSION-$recipe.tar

print_paths() {
  printf '{"kubelet":"%s","containerd":"%s","shim":"%s","ctr":"%s","runc":"%s","cniBinDir":"%s",' \
    "$kubelet_dir/kubelet" "$containerd_dir/containerd" "$containerd_dir/containerd-shim-runc-v2" \
    "$containerd_dir/ctr" "$runc_dir/runc" "$cni_dir"
  printf '"pauseImage":{"ref":"%s","tar":"%s"},"appImage":{"ref":"%s","tar":"%s"}}\n' \
    "$pause_ref" "$pause_tar" "$app_ref" "$app_tar"
}

complete() {
  [ -x "$kubelet_dir/kubelet" ] && [ -x "$containerd_dir/containerd" ] \
    && [ -x "$containerd_dir/containerd-shim-runc-v2" ] && [ -x "$containerd_dir/ctr" ] \
    && [ -x "$runc_dir/runc" ] && [ -x "$cni_dir/loopback" ] && [ -f "$pause_tar" ] && [ -f "$app_tar" ]
}

if complete; then print_paths; exit 0; fi

[ "$(id -u)" = 0 ] || die "building the real node's images needs root (file ownership inside the images)" \
  "run as root, or use IRSA_KUBE_NODE=kwok"
for tool in apt-get dpkg-deb gcc sha256sum flock tar; do
  command -v "$tool" >/dev/null 2>&1 || die "no $tool on PATH: the real node is built from Debian packages and a C file" \
    "on Debian: apt-get install apt dpkg gcc libc6-dev coreutils util-linux tar, or use IRSA_KUBE_NODE=kwok"
done
mkdir -p "$cache/build-logs" "$images" "$bin"
# Two set-ups at once (two terminals, the test command's stages) must not build into the same place.
exec 9>"$cache/real-node.lock"
flock 9
if complete; then print_paths; exit 0; fi
started=$(date +%s)

bash "$tools/build-go-components.sh" kubelet
bash "$tools/build-go-components.sh" containerd

# One Debian package at its pinned version, unpacked; `files` (paths inside the package) are copied
# flat into `out`.
debian_package() {
  local name=$1 version=$2 out=$3; shift 3
  local work; work=$(mktemp -d "$cache/build-tmp.XXXXXX")
  if ! (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$name=$version" 2>&1 | no_sources >&2); then
    rm -rf "$work"
    die "apt-get could not download the Debian package $name=$version" \
      "run apt-get update; if apt-cache policy $name offers another version, pin it in tools/versions.env"
  fi
  dpkg-deb -x "$work"/*.deb "$work/x"
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local f; for f in "$@"; do cp -a "$work/x/$f" "$out.tmp/"; done
  rm -rf "$work" "$out"; mv "$out.tmp" "$out"
}

[ -x "$runc_dir/runc" ] || { log "unpacking runc $RUNC_DEBIAN_VERSION (Debian)"; debian_package runc "$RUNC_DEBIAN_VERSION" "$runc_dir" usr/sbin/runc; }
[ -x "$cni_dir/loopback" ] || {
  log "unpacking the CNI plugins $CNI_PLUGINS_DEBIAN_VERSION (Debian)"
  debian_package containernetworking-plugins "$CNI_PLUGINS_DEBIAN_VERSION" "$cni_dir" usr/lib/cni/loopback usr/lib/cni/host-local usr/lib/cni/bridge
}
[ -x "$umoci_dir/umoci" ] || { log "unpacking umoci $UMOCI_DEBIAN_VERSION (Debian)"; debian_package umoci "$UMOCI_DEBIAN_VERSION" "$umoci_dir" usr/bin/umoci; }
umoci=$umoci_dir/umoci

# An OCI image layout with `rootfs` as its one layer, packed as a tar that ctr imports; the layout's
# tag is the part of `ref` after the colon (ctr images import --base-name <ref without it>).
pack_image() {
  local rootfs=$1 ref=$2 tar=$3; shift 3
  local layout; layout=$(mktemp -d "$cache/build-tmp.XXXXXX")
  local image=$layout/oci:${ref##*:}
  {
    "$umoci" init --layout "$layout/oci"
    "$umoci" new --image "$image"
    "$umoci" insert --image "$image" --history.created_by "irsa-conformance tools/real-node/build.sh" "$rootfs" /
    "$umoci" config --image "$image" --author irsa-conformance "$@"
    "$umoci" gc --layout "$layout/oci"
  } >>"$cache/build-logs/real-node-images.log" 2>&1 \
    || die "umoci could not pack $ref; log: $cache/build-logs/real-node-images.log" "delete $images and rerun"
  tar -C "$layout/oci" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$layout"
}

if [ ! -f "$pause_tar" ]; then
  log "building the pause image $pause_ref"
  work=$(mktemp -d "$cache/build-tmp.XXXXXX")
  mkdir -p "$work/rootfs"
  gcc -static -Os -s -Wall -Wextra -o "$work/rootfs/pause" "$here/pause.c" 2>>"$cache/build-logs/real-node-images.log" \
    || die "gcc could not build a static pause from tools/real-node/pause.c" "on Debian: apt-get install gcc libc6-dev"
  pack_image "$work/rootfs" "$pause_ref" "$pause_tar" --config.entrypoint /pause
  rm -rf "$work"
fi

if [ ! -f "$app_tar" ]; then
  log "building the app image $app_ref (Debian's python3 and awscli $AWSCLI_VERSION from PyPI)"
  work=$(mktemp -d "$cache/build-tmp.XXXXXX")
  rootfs=$work/rootfs
  mkdir -p "$work/debs/partial" "$rootfs"
  # The packages' dependency closure as apt computes it for an empty system (status /dev/null):
  # downloaded only, nothing installed.
  apt-get install --download-only -y -qq --no-install-recommends \
    -o Debug::NoLocking=1 -o Dir::State::status=/dev/null -o Dir::Cache::archives="$work/debs" \
    -o APT::Sandbox::User=root python3 dash coreutils grep base-passwd 2>&1 | no_sources >>"$cache/build-logs/real-node-images.log" \
    || die "apt-get could not download python3 and its dependencies" "run apt-get update and check the machine's apt sources"
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$rootfs"; done
  venv=$(bash "$tools/python-env.sh")
  # Wheels for the image's CPython 3.11 (bookworm), whatever the machine's Python is.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-compile \
    --target "$rootfs/usr/lib/python3/dist-packages" --only-binary=:all: --implementation cp \
    --python-version 3.11 --abi cp311 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    "awscli==$AWSCLI_VERSION" 2>&1 | no_sources >>"$cache/build-logs/real-node-images.log" \
    || die "pip could not install awscli==$AWSCLI_VERSION into the app image" "check access to the Python package index (pip config), then rerun"
  # pip's console script names the machine's interpreter; the image gets its own. Documentation goes.
  rm -rf "$rootfs/usr/lib/python3/dist-packages/bin" "$rootfs"/usr/share/{doc,man,info,locale,lintian}
  printf '#!/bin/sh\nexec /usr/bin/python3 -m awscli "$@"\n' >"$rootfs/usr/bin/aws"
  chmod 755 "$rootfs/usr/bin/aws"
  cp "$rootfs/usr/share/base-passwd/passwd.master" "$rootfs/etc/passwd"
  cp "$rootfs/usr/share/base-passwd/group.master" "$rootfs/etc/group"
  mkdir -p "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
  # Byte-compiled once here, by the image's own interpreter (chroot: no mounts needed), hash-checked
  # so that the layer's timestamps do not matter: a container's first `aws` would otherwise compile
  # botocore for seconds, and as a non-root user could not even keep the result.
  chroot "$rootfs" /usr/bin/python3 -m compileall -q --invalidation-mode unchecked-hash \
    /usr/lib/python3.11 /usr/lib/python3/dist-packages >>"$cache/build-logs/real-node-images.log" 2>&1 \
    || die "byte-compiling the app image's Python failed; log: $cache/build-logs/real-node-images.log" "delete $images and rerun"
  pack_image "$rootfs" "$app_ref" "$app_tar" --config.cmd /bin/sh \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.workingdir /
  rm -rf "$work"
fi

complete || die "the real node's set-up finished but something is missing in $bin or $images" "delete what is there and rerun"
# Images of earlier recipes are not used any more.
for old in "$images"/*.tar; do
  [ "$old" = "$pause_tar" ] || [ "$old" = "$app_tar" ] || rm -f "$old"
done
log "ready in $(( $(date +%s) - started ))s"
print_paths
