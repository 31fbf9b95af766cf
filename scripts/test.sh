#!/usr/bin/env bash
# Runs every test Bramble has: formatting and lints, unit, table and fuzz tests, end-to-end
# tests of the real binaries, the static board binaries on emulated ARM CPUs, and the static
# aarch64 agent running pods on an emulated arm64 board with cgroup v2.
# Needs scripts/setup.sh to have run once.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all --check
step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "build (the end-to-end tests run these binaries)"
cargo build --workspace --locked
# The static agent boards get, for this machine's CPU (reaper built in): tests run it too.
bash cross/build-agent.sh "$(uname -m)-unknown-linux-musl" --locked
step "tests"
cargo test --workspace --locked
step "static board binaries under qemu"
bash cross/check-board-binaries.sh
step "an emulated arm64 board (qemu-system-aarch64, Debian's arm64 kernel, cgroup v2)"
bash tests/board/arm64-board.sh
step "all passed"
