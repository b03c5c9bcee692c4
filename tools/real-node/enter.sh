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
set -eu
cgroup=$1 mode=$2 arg=$3
shift 3
[ "${1:-}" = -- ] && shift
echo $$ >"$cgroup/cgroup.procs"
case $mode in
  new)
    exec unshare --mount --propagation private -- /bin/sh "$0" "$cgroup" setup "$arg" -- "$@"
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
