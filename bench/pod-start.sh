#!/usr/bin/env bash
# Pod start latency, idle memory and board binary size, in one run, as root.
#
# 1. Start latency: the median time from the agent deciding to start a new pod's container
#    (it has seen the pod) to the container's process running (the shim reports its pid),
#    as the agent logs it ("started, pid N, in X ms"); next to it, `runc run -d` and
#    `crun run -d` of the same OCI bundle (same config.json, same busybox root), timed around
#    the command. crun refuses this machine's hybrid cgroups, so it runs in a private mount
#    namespace with the empty cgroup2 mount removed. Goal: agent <= 1.3 x crun.
# 2. Idle memory of every bramble process with 10 pods running: the agent and each container's
#    shim, which once the container runs is bramble-reaper (built into the agent). Goal: RSS
#    summed <= 10 MB. PSS summed (shared pages split among their sharers: memory the group
#    really holds) and private memory summed are printed beside it.
# 3. Stripped size of the static aarch64 agent. Goal <= 8 MB.
#
# Usage: bench/pod-start.sh [RUNS]   (default 21)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-21}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for tool in runc crun umoci jq; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup.sh" >&2; exit 1; }
done

# The agent as boards run it: static musl, reaper built in (cross/build-agent.sh), for this
# machine's CPU.
target="$(uname -m)-unknown-linux-musl"
build_log=$(mktemp)
cross/build-agent.sh "$target" >"$build_log" 2>&1 || { tail -n 30 "$build_log" >&2; rm -f "$build_log"; exit 1; }
agent=$PWD/$(tail -n 1 "$build_log")
rm -f "$build_log"
# The run directory on tmpfs, as /run/bramble is on a board; state on disk.
work=$(mktemp -d /var/tmp/bramble-bench.XXXXXX)
run_dir=$(mktemp -d /run/bramble-bench.XXXXXX)
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null || true
  for f in "$run_dir"/containers/*/shim.json; do
    [ -e "$f" ] || continue
    kill -9 "$(jq .container_pid "$f")" "$(jq .shim_pid "$f")" 2>/dev/null || true
  done
  for id in $(runc list -q 2>/dev/null | grep "^bench-$$-" || true); do runc delete -f "$id" >/dev/null 2>&1 || true; done
  sleep 0.3
  grep -o -e " $work[^ ]*" -e " $run_dir[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for g in /sys/fs/cgroup/*/bramble/bench-$$-* /sys/fs/cgroup/*/bench-$$-*; do
    [ -d "$g" ] && { find "$g" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
  done
  rm -rf "$work" "$run_dir"
}
trap cleanup EXIT
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m}'; }

"$agent" image --state-dir "$work/state" import "$(scripts/build-busybox-image.sh --cached)" >/dev/null
mkdir -p "$work/manifests"
"$agent" run --state-dir "$work/state" --run-dir "$run_dir" --manifests "$work/manifests" 2>"$work/agent.log" &
agent_pid=$!
disown "$agent_pid"

pod() { # name
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:latest\n    command: [sleep, "100000"]\n' "$1"
}
wait_log() { # pattern
  for _ in $(seq 1 300); do grep -q "$1" "$work/agent.log" && return 0; sleep 0.05; done
  echo "agent did not log: $1" >&2; tail -n 20 "$work/agent.log" >&2; exit 1
}

# Agent: one new pod at a time; each stays (the last 10 are the RSS sample's pods).
for i in $(seq 1 "$runs"); do
  name="bench-$$-$i"
  pod "$name" >"$work/manifests/.$name.tmp"
  mv "$work/manifests/.$name.tmp" "$work/manifests/$name.yaml"
  wait_log "pod default/$name: container c: started"
  if [ "$i" -le $((runs - 10)) ]; then
    rm "$work/manifests/$name.yaml"
    wait_log "pod default/$name: removed"
  fi
done
agent_ms=$(grep -o 'container c: started, pid [0-9]*, in [0-9]* ms' "$work/agent.log" | awk '{print $(NF-1)}' | median)

# The same bundle for runc and crun: one of the agent's config.json, its root made a plain
# directory (the image's layer), its cgroup and id unique per run.
sample=$(ls -d "$run_dir"/containers/*/ | head -n 1)
layer=$(ls -d "$work"/state/images/layers/*/ | head -n 1)
mkdir -p "$work/bundle"
jq --arg root "${layer%/}" '.root = {path: $root, readonly: true} | del(.linux.cgroupsPath)' \
  "$sample/bundle/config.json" >"$work/bundle/config.json"

time_runtime() { # runtime prefix
  local rt=$1 prefix=$2 i id start end
  for i in $(seq 1 "$runs"); do
    id="bench-$$-$prefix-$i"
    jq --arg cg "/bench-$$-$prefix-$i" '.linux.cgroupsPath = $cg' "$work/bundle/config.json" >"$work/bundle/config.tmp"
    mv "$work/bundle/config.tmp" "$work/bundle/config.json"
    start=$(date +%s%N)
    "$rt" run -d --bundle "$work/bundle" "$id" </dev/null >/dev/null 2>"$work/$rt.err"
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
    "$rt" delete -f "$id" >/dev/null 2>&1
  done | awk '{print $1 / 1000}' | median
}
runc_ms=$(time_runtime runc r)
export -f time_runtime median
export work runs
crun_ms=$(unshare -m bash -c 'umount /sys/fs/cgroup/unified 2>/dev/null || true; time_runtime crun c')

# Idle RSS with the last 10 pods running, after they settle.
sleep 3
rss_kb=0 pss_kb=0 private_kb=0 processes=0 reapers=0
compgen -G "$run_dir/containers/*/shim.json" >/dev/null || { echo "no container runs: see $work/agent.log" >&2; tail -n 20 "$work/agent.log" >&2; exit 1; }
shim_pids=$(jq -s -r '.[].shim_pid' "$run_dir"/containers/*/shim.json)
for p in $shim_pids; do
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -q '^bramble-reaper ' && reapers=$((reapers + 1))
done
for p in "$agent_pid" $shim_pids; do
  read -r rss pss private < <(awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Private_(Clean|Dirty):/ {v+=$2} END {print r+0, p+0, v+0}' \
    "/proc/$p/smaps_rollup" 2>/dev/null || echo 0 0 0)
  rss_kb=$((rss_kb + rss)); pss_kb=$((pss_kb + pss)); private_kb=$((private_kb + private)); processes=$((processes + 1))
done
# Rss from smaps_rollup (page tables walked), not VmRSS, which the kernel syncs lazily.
agent_kb=$(awk '/^Rss:/ {print $2}' "/proc/$agent_pid/smaps_rollup")
running=$("$agent" status --state-dir "$work/state" --run-dir "$run_dir" -o json | jq '[.pods[] | select(.phase == "Running")] | length')

size=$(stat -c %s "$(cross/build-agent.sh aarch64-unknown-linux-musl 2>/dev/null | tail -n 1)")

printf '\n%s, static release build of the agent (%s), %s cpus\n' "$(uname -m)" "$target" "$(nproc)"
printf '\nstart latency, median of %s (ms)\n' "$runs"
printf '  %-32s %8s\n' "bramble-agent (pod seen -> running)" "$agent_ms" "runc run -d" "$runc_ms" "crun run -d" "$crun_ms"
awk -v a="$agent_ms" -v c="$crun_ms" 'BEGIN {printf "  agent / crun = %.2f (goal <= 1.3)\n", a / c}'
awk -v n="$running" -v p="$processes" -v r="$reapers" -v rss="$rss_kb" -v pss="$pss_kb" -v priv="$private_kb" -v a="$agent_kb" 'BEGIN {
  printf "\nidle memory with %d pods running: agent + %d shims, %d of them bramble-reaper\n", n, p - 1, r
  printf "  agent RSS %.1f MB, each reaper %.0f kB on average\n", a / 1024, (p > 1) ? (rss - a) / (p - 1) : 0
  printf "  RSS summed %.1f MB (goal <= 10 MB); PSS summed %.1f MB, private summed %.1f MB\n", rss / 1024, pss / 1024, priv / 1024 }'
awk -v s="$size" 'BEGIN {printf "\nstatic aarch64 agent, stripped: %d bytes (%.2f MB; goal <= 8 MB)\n", s, s / 1048576}'
