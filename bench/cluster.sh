#!/usr/bin/env bash
# The cluster's figures in one run (issue "A cluster of boards", Must show 2):
#   1. board loss -> all its replicas Running elsewhere, default grace and --node-grace 2s
#      (bench/board-loss.sh; goals <= 15 s and <= 5 s);
#   2. scheduler throughput, 10,000 pods on 1,000 simulated boards (goal < 100 ms);
#   3. the coordinator's CPU and RSS with 1,000 simulated boards sending health at 1 Hz
#      (bench/coordinator-load.sh; goals < 25 % of one core, < 150 MB).
#
# Usage: bench/cluster.sh [RUNS]   (board-loss runs per case, default 3), as root, after
# scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
printf '\n=== 1. board loss\n'
bash bench/board-loss.sh "${1:-3}"
printf '\n=== 2. scheduler throughput\n'
cargo bench --quiet -p bramble-coordinator --bench scheduler
printf '\n=== 3. coordinator load\n'
bash bench/coordinator-load.sh 1000 3000 30
