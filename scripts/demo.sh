#!/usr/bin/env bash
# Bramble's demo: a live board. It builds a busybox OCI image (amd64 + arm64 under one index),
# imports it, starts the agent on a manifests directory, applies examples/hello.yaml (busybox
# httpd on hostPort 8080), asks it for a page, kills its process and shows it restarted. Then
# the static agent a Pi would run, on an emulated Cortex-A53, and how mistakes are named.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "the demo runs containers: run it as root" >&2; exit 1; }

cargo build -q --workspace
agent=$PWD/target/debug/bramble-agent
board=$(mktemp -d /tmp/bramble-demo.XXXXXX)
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  for f in "$board"/run/containers/*/shim.json; do
    [ -e "$f" ] && kill -9 "$(jq .container_pid "$f")" "$(jq .shim_pid "$f")" 2>/dev/null || true
  done
  sleep 0.3
  grep -o " $board[^ ]*" /proc/self/mounts | xargs -r -n1 umount -l 2>/dev/null || true
  find /sys/fs/cgroup/*/bramble/hello-* -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$board"
}
trap cleanup EXIT
args=(--state-dir "$board/state" --run-dir "$board/run")
wait_for() { # jq condition on the hello pod, description
  for _ in $(seq 1 200); do
    "$agent" status "${args[@]}" -o json | jq -e ".pods[] | select(.name == \"hello\") | $1" >/dev/null && return 0
    sleep 0.1
  done
  echo "hello never became: $2" >&2; cat "$board/agent.log" >&2; exit 1
}

say "1. a busybox image for linux/amd64 and linux/arm64, imported (the board picks its platform)"
image=$(scripts/build-busybox-image.sh --cached)
echo "$image"
"$agent" image --state-dir "$board/state" import "$image"

say "2. the agent runs; examples/hello.yaml goes into its manifests directory"
mkdir -p "$board/manifests"
"$agent" run "${args[@]}" --manifests "$board/manifests" 2>"$board/agent.log" &
agent_pid=$!
cp examples/hello.yaml "$board/manifests/"
wait_for '.ready' "ready"
"$agent" status "${args[@]}"
echo "\$ curl http://localhost:8080/"
curl -sS http://localhost:8080/

say "3. its process is killed; the agent restarts it"
pid=$("$agent" status "${args[@]}" -o json | jq '.pods[] | select(.name == "hello") | .containers[0].state.running.pid')
echo "\$ kill -9 $pid"
kill -9 "$pid"
wait_for '.containers[0].restartCount == 1 and .ready' "restarted"
"$agent" status "${args[@]}"
curl -sS http://localhost:8080/
echo "\$ bramble-agent logs hello --tail 2"
"$agent" logs --state-dir "$board/state" hello --tail 2
echo "--- the agent's log"
cat "$board/agent.log"

say "4. the manifest is removed; the pod stops and is cleaned up"
rm "$board/manifests/hello.yaml"
for _ in $(seq 1 100); do grep -q "pod default/hello: removed" "$board/agent.log" && break; sleep 0.1; done
tail -n 3 "$board/agent.log"

say "5. bramble validate -f examples/   (nginx, redis and a guestbook, as people write them)"
./target/debug/bramble validate -f examples/

say "6. the static agent a Pi would run, on an emulated Cortex-A53"
board_agent=$(cross/build-agent.sh aarch64-unknown-linux-musl 2>/dev/null | tail -n 1)
file -b "$board_agent"
qemu-aarch64-static -cpu cortex-a53 "$board_agent" validate examples/*.yaml | tail -n 1

say "7. a mistake, and how Bramble names it"
bad="$board/hello-with-mistakes.yaml"
sed -e 's/memory: 16Mi/memory: 12XB/' -e 's/containerPort: 8080/containerPort: "8080"/' examples/hello.yaml >"$bad"
./target/debug/bramble validate -f "$bad" || echo "(exit status $?: nothing would be applied)"
