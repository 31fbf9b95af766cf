#!/usr/bin/env bash
# Time from losing a board to all of its replicas Running elsewhere, on a real cluster on this
# machine: `bramble coordinator` (embedded broker), three `bramble-agent` processes each in its
# own network namespace, real containers, 6 replicas. Two losses (power cut: kill -9 of the
# agent and its containers; cut link: the board's veth down) under two settings: the defaults
# (--node-grace 10s, health every 5 s) and --node-grace 2s (health every 500 ms). Goals: <= 15 s
# and <= 5 s. The published defaults of Kubernetes, Swarm and Nomad are printed beside them.
#
# Usage: bench/board-loss.sh [RUNS]   (default 3), as root, after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cargo build --workspace --quiet
cargo run --quiet -p bramble-tests --bin board-loss -- "${1:-3}"
