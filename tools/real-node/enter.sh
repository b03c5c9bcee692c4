#!/bin/sh
# Starts a process of the embedded target's real node inside its confinement; run by
# support/targets/embedded/real-node.ts, never by hand. The process keeps this script's pid
# (every step execs), so the harness supervises it directly.
#
#   enter.sh <memory cgroup dir> new <stand-ins dir> -- <command...>   (containerd: the first one)
#   enter.sh <memory cgroup dir> join <pid> -- <command...>            (kubelet)
#
# 1. Moves itself into <memory cgroup dir> (created by the harness under its own cgroup): what
#    the process and its children use is accounted there, and stopping the node kills exactly the
#    processes of that subtree (shims and containers included).
# 2. `new`: a private mount namespace for the node. containerd, its shims, runc and the kubelet
#    mount in it (overlay root filesystems, the kubelet's bind-mounted root directory, token
#    volumes): none of it is visible outside, and all of it goes when the node's last process
#    does. Fresh tmpfs over /run, /var/lib and /var/log take the paths these programs hard-code
#    whatever their settings say (containerd's /run/containerd shim sockets, the kubelet's
#    /var/lib/kubelet/device-plugins and /var/log/containers), so nothing lands on the machine.
#    Each file in <stand-ins dir> (named like vm.overcommit_memory) is bind-mounted read-only over
#    that /proc/sys entry: the kubelet, with protectKernelDefaults, reads the values it expects
#    instead of rewriting the machine's (containers get their own /proc and see the real ones).
#    `mount -n`: the mounts are not recorded in the machine's /run/mount/utab.
#    `join`: the namespace of <pid> (the node's containerd).
# 3. With IRSA_NODE_OWNER (the harness's pid; not for a warm environment, which outlives it), `new`
#    also leaves a watcher in the node's cgroups: stopping the node kills it with the rest, but if
#    the harness is killed first (SIGKILL: no exit handler runs), the watcher stops the node in its
#    stead: kills every process of the node's cgroups, removes them in every hierarchy (and the
#    empty ones above, IRSA_NODE_CGROUPS_ABOVE) and the environment's work directory
#    (IRSA_NODE_WORK_DIR). Only the node's own processes: the harness's other components are not
#    its to stop.
set -eu
cgroup=$1 mode=$2 arg=$3
shift 3
[ "${1:-}" = -- ] && shift
echo $$ >"$cgroup/cgroup.procs"
case $mode in
  new)
    if [ -n "${IRSA_NODE_OWNER:-}" ]; then
      /bin/sh "$0" "$cgroup" watch "$IRSA_NODE_OWNER" </dev/null >/dev/null 2>&1 &
    fi
    exec unshare --mount --propagation private -- /bin/sh "$0" "$cgroup" setup "$arg" -- "$@"
    ;;
  watch)
    # Returns when the harness has exited (coreutils polls its pid once a second).
    tail --pid="$arg" -f /dev/null
    node=$(dirname "$cgroup")
    # Out of the node's cgroups (into the harness's): what it kills next is only the node's.
    echo $$ >"$(dirname "$node")/cgroup.procs"
    while :; do
      pids=$(cat $(find "$node" -name cgroup.procs) 2>/dev/null || true)
      [ -n "$pids" ] || break
      kill -9 $pids 2>/dev/null || true
      sleep 0.05
    done
    relative=${node#/sys/fs/cgroup/memory}
    for hierarchy in /sys/fs/cgroup/*/; do
      [ -d "$hierarchy$relative" ] && find "$hierarchy$relative" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    # The directories above the node's that it created where the harness sits higher up (deepest first).
    for dir in ${IRSA_NODE_CGROUPS_ABOVE:-}; do rmdir "$dir" 2>/dev/null || true; done
    [ -z "${IRSA_NODE_WORK_DIR:-}" ] || rm -rf "$IRSA_NODE_WORK_DIR"
    ;;
  setup)
    for dir in /run /var/lib /var/log; do
      mount -n -t tmpfs -o mode=0755,nosuid,nodev irsa-node "$dir"
    done
    for standin in "$arg"/*; do
      [ -f "$standin" ] || continue
      target=/proc/sys/$(basename "$standin" | tr . /)
      mount -n --bind "$standin" "$target"
      mount -n -o remount,bind,ro "$target"
    done
    exec "$@"
    ;;
  join)
    exec nsenter --target "$arg" --mount -- "$@"
    ;;
  *)
    echo "enter.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
