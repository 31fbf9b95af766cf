#!/usr/bin/env bash
# The coordinator's CPU and memory while it keeps 1,000 simulated boards: a load tool
# (tests/src/bin/coordinator-load.rs) connects 1,000 boards to the coordinator's embedded broker
# with the real wire protocol (join token, last will, desired/observed pods), each sending
# health at 1 Hz, applies 10 Deployments with 3,000 replicas in all, waits for them Running, then
# measures the coordinator process (release build, as boards run it) over a steady window.
# Goals: < 25 % of one core, < 150 MB RSS.
#
# Usage: bench/coordinator-load.sh [BOARDS] [PODS] [SECONDS]   (defaults 1000 3000 30)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --workspace --quiet
cargo build --release --quiet -p bramble-coordinator --bin bramble-coordinator
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
cargo run --quiet -p bramble-tests --bin coordinator-load -- \
  "$target_dir/release/bramble-coordinator" "${1:-1000}" "${2:-3000}" "${3:-30}"
