#!/usr/bin/env bash
# Issue "Immutable images from registries, health-checked rolling updates, and rollback", Must
# show 2, in one run on a real cluster on this machine (a coordinator, three agents each in its
# own network namespace, Debian's docker-registry seeded by skopeo and umoci): the time of a
# rolling update of 6 replicas over 3 boards, and the bytes each board pulls for an image that
# shares its base layer with the one it runs, beside the whole image's size.
#
# Usage: bench/rollout.sh [RUNS]   (default 3), as root, after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cargo build --workspace --quiet
cargo run --quiet -p bramble-tests --bin rollout-bench -- "${1:-3}"
