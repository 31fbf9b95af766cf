#!/usr/bin/env bash
# Bramble's demo: a one-machine cluster. It builds a busybox OCI image (amd64 + arm64 under one
# index) and imports it, starts `bramble coordinator --with-agent` (the coordinator, its
# embedded MQTT broker and this machine's agent as its one board), applies examples/hello.yaml
# (busybox httpd on hostPort 8080) with `bramble apply`, asks it for a page, kills its process
# and shows it restarted, deletes it. Then the static agent a Pi would run, on an emulated
# Cortex-A53, and how mistakes are named.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "the demo runs containers: run it as root" >&2; exit 1; }

cargo build -q --workspace
bin=$PWD/target/debug
agent=$bin/bramble-agent
board=$(mktemp -d /tmp/bramble-demo.XXXXXX)
coordinator_pid=
cleanup() {
  [ -n "$coordinator_pid" ] && kill "$coordinator_pid" 2>/dev/null || true
  sleep 0.3
  for f in "$board"/run/containers/*/shim.json; do
    [ -e "$f" ] && kill -9 "$(jq .container_pid "$f")" "$(jq .shim_pid "$f")" 2>/dev/null || true
  done
  sleep 0.3
  grep -o " $board[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  find /sys/fs/cgroup/*/bramble/hello-* /sys/fs/cgroup/bramble/hello-* -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$board"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
mqtt_port=$(free_port)
args=(--state-dir "$board/state" --run-dir "$board/run")
bramble() { "$bin/bramble" "$@"; }
export BRAMBLE_SERVER=http://127.0.0.1:$api_port BRAMBLE_CONFIG=/nonexistent
wait_for() { # jq condition on the hello pod as the coordinator reports it, description
  for _ in $(seq 1 200); do
    bramble get pods hello -o json 2>/dev/null | jq -e "$1" >/dev/null && return 0
    sleep 0.1
  done
  echo "hello never became: $2" >&2; cat "$board/coordinator.log" >&2; exit 1
}

say "1. a busybox image for linux/amd64 and linux/arm64, imported (the board picks its platform)"
image=$(scripts/build-busybox-image.sh --cached)
echo "$image"
"$agent" image --state-dir "$board/state" import "$image"

say "2. bramble coordinator --with-agent: a coordinator, its MQTT broker, and this machine as a board"
mkdir -p "$board/manifests"
# --pin-images=false: the demo's busybox is built here, not Docker Hub's, so its tag is not
# resolved to a registry's digest.
echo "\$ bramble coordinator --with-agent --listen 127.0.0.1:$api_port --mqtt-listen 127.0.0.1:$mqtt_port --pin-images=false ..."
"$bin/bramble" coordinator --data-dir "$board/coordinator" \
  --listen "127.0.0.1:$api_port" --mqtt-listen "127.0.0.1:$mqtt_port" --pin-images=false \
  --with-agent --agent-arg=--state-dir="$board/state" --agent-arg=--run-dir="$board/run" \
  --agent-arg=--manifests="$board/manifests" --agent-arg=--health-interval-ms=1000 \
  2>"$board/coordinator.log" &
coordinator_pid=$!
for _ in $(seq 1 100); do [ -s "$board/coordinator/api-token" ] && break; sleep 0.1; done
BRAMBLE_TOKEN=$(cat "$board/coordinator/api-token")
export BRAMBLE_TOKEN
for _ in $(seq 1 100); do bramble get nodes 2>/dev/null | grep -q " Ready " && break; sleep 0.2; done
echo "\$ bramble get nodes"
bramble get nodes

say "3. bramble apply -f examples/hello.yaml"
bramble apply -f examples/hello.yaml
wait_for '.status.conditions[0].status == "True"' "ready"
echo "\$ bramble get pods -o wide"
bramble get pods -o wide
echo "\$ curl http://localhost:8080/"
curl -sS http://localhost:8080/

say "4. its process is killed; the board restarts it"
pid=$("$agent" status "${args[@]}" -o json | jq '.pods[] | select(.name == "hello") | .containers[0].state.running.pid')
echo "\$ kill -9 $pid"
kill -9 "$pid"
wait_for '.status.restartCount == 1 and .status.conditions[0].status == "True"' "restarted"
bramble get pods
curl -sS http://localhost:8080/
echo "\$ bramble-agent logs hello --tail 2"
"$agent" logs --state-dir "$board/state" hello --tail 2

say "5. bramble delete -f examples/hello.yaml: the pod stops and is cleaned up"
bramble delete -f examples/hello.yaml
for _ in $(seq 1 100); do grep -q "pod default/hello: removed" "$board/coordinator.log" && break; sleep 0.1; done
for _ in $(seq 1 100); do [ -z "$(ls "$board/run/containers" 2>/dev/null)" ] && break; sleep 0.1; done
echo "--- the coordinator's and the agent's log"
cat "$board/coordinator.log"

say "6. bramble validate -f examples/   (nginx, redis and a guestbook, as people write them)"
./target/debug/bramble validate -f examples/

say "7. the static agent a Pi would run, on an emulated Cortex-A53"
board_agent=$(cross/build-agent.sh aarch64-unknown-linux-musl 2>/dev/null | tail -n 1)
file -b "$board_agent"
qemu-aarch64-static -cpu cortex-a53 "$board_agent" validate examples/*.yaml | tail -n 1

say "8. a mistake, and how Bramble names it"
bad="$board/hello-with-mistakes.yaml"
sed -e 's/memory: 16Mi/memory: 12XB/' -e 's/containerPort: 8080/containerPort: "8080"/' examples/hello.yaml >"$bad"
./target/debug/bramble validate -f "$bad" || echo "(exit status $?: nothing would be applied)"
