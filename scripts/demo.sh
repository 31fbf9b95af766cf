#!/usr/bin/env bash
# Bramble's demo at this stage: it reads real-world Kubernetes manifests, on this machine and
# with the static agent on an emulated ARM board, and names mistakes precisely.
# (The agent issue turns this into a live demo with running containers.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

cargo build -q --workspace

say "1. bramble validate -f examples/   (nginx, redis and a guestbook, as people write them)"
./target/debug/bramble validate -f examples/

say "2. the static agent a Pi would run, on an emulated Cortex-A53"
agent=$(cross/build-agent.sh aarch64-unknown-linux-musl 2>/dev/null | tail -n 1)
file -b "$agent"
qemu-aarch64-static -cpu cortex-a53 "$agent" validate examples/*.yaml | tail -n 1

say "3. a mistake, and how Bramble names it"
bad=$(mktemp --suffix=.yaml)
trap 'rm -f "$bad"' EXIT
sed -e 's/memory: 16Mi/memory: 12XB/' -e 's/containerPort: 8080/containerPort: "8080"/' examples/hello.yaml >"$bad"
./target/debug/bramble validate -f "$bad" || echo "(exit status $?: nothing would be applied)"
