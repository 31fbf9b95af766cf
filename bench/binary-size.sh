#!/usr/bin/env bash
# Prints the stripped size of the static board agent per target, with the release profile
# (opt-level "z") beside the opt-level "s" baseline built in the same run.
#   bash bench/binary-size.sh [TARGET…]   (default: aarch64-unknown-linux-musl)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-musl)

printf '%-32s %14s %14s %8s\n' "target" "opt-level z" "opt-level s" "z/s"
for target in "${targets[@]}"; do
  z=$(cross/build-agent.sh "$target" 2>/dev/null | tail -n 1)
  # The baseline in its own target dir, so the release build's cache is not disturbed.
  s_dir=target/bench-opt-s
  CARGO_PROFILE_RELEASE_OPT_LEVEL=s cross/build-agent.sh "$target" --target-dir "$s_dir" >/dev/null 2>&1
  s="$s_dir/$target/release/bramble-agent"
  z_bytes=$(stat -c %s "$z")
  s_bytes=$(stat -c %s "$s")
  printf '%-32s %14d %14d %8s\n' "$target" "$z_bytes" "$s_bytes" \
    "$(awk -v z="$z_bytes" -v s="$s_bytes" 'BEGIN { printf "%.3f", z / s }')"
done
echo "goal for the agent (agent issue): at most 8 MiB stripped"
