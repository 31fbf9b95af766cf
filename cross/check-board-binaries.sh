#!/usr/bin/env bash
# Builds the static agent for every board target and proves each one on an emulated CPU of
# that board's kind: statically linked, answers --version, validates examples/*.yaml.
# Prints one line of figures per target.
set -euo pipefail
cd "$(dirname "$0")/.."

# target, qemu user-mode emulator, CPU to emulate (the oldest board the target is for)
boards=(
  "aarch64-unknown-linux-musl qemu-aarch64-static cortex-a53"
  "armv7-unknown-linux-musleabihf qemu-arm-static cortex-a7"
  "arm-unknown-linux-musleabihf qemu-arm-static arm1176"
)

fail() { echo "FAIL: $*" >&2; exit 1; }

# What the native CLI reports, which every board binary must match.
native=$(./target/debug/bramble validate -f examples/ | tail -n 1)

for board in "${boards[@]}"; do
  read -r target qemu cpu <<<"$board"
  command -v "$qemu" >/dev/null || fail "$qemu is missing: run scripts/setup.sh"
  bin=$(cross/build-agent.sh "$target" | tail -n 1)
  [ -x "$bin" ] || fail "$target: no binary at $bin"
  kind=$(file -b "$bin")
  case "$kind" in
    *"statically linked"*) ;;
    *) fail "$target: not statically linked: $kind" ;;
  esac
  version=$("$qemu" -cpu "$cpu" "$bin" --version) || fail "$target: --version failed on $cpu"
  [ "$version" = "bramble-agent $(cargo pkgid -p bramble-agent | sed 's/.*[@#]//')" ] \
    || fail "$target: unexpected version output: $version"
  report=$("$qemu" -cpu "$cpu" "$bin" validate examples/*.yaml) \
    || fail "$target: validate failed on $cpu: $report"
  summary=$(tail -n 1 <<<"$report")
  [ "$summary" = "$native" ] || fail "$target: '$summary' differs from the native CLI's '$native'"
  # And it must refuse a bad manifest with the same message as the native CLI.
  bad=$(mktemp --suffix=.yaml)
  trap 'rm -f "$bad"' EXIT
  sed 's/memory: 16Mi/memory: 12XB/' examples/hello.yaml >"$bad"
  if "$qemu" -cpu "$cpu" "$bin" validate "$bad" >"$bad.out"; then fail "$target: accepted a bad manifest"; fi
  grep -q 'resources.limits.memory: invalid quantity "12XB"' "$bad.out" || fail "$target: $(cat "$bad.out")"
  rm -f "$bad" "$bad.out"
  printf '%-32s %-14s %8d bytes  %s  %s\n' "$target" "$cpu" "$(stat -c %s "$bin")" "static" "$summary"
done
