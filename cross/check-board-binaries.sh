#!/usr/bin/env bash
# Builds the static agent for every board target and proves each one on an emulated CPU of
# that board's kind: statically linked, answers --version, validates examples/*.yaml, and its
# reaper (built into it) reaps a child, keeps its output and records its end.
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

# What the native CLI reports, which every board binary must match; the version every binary
# must print; a bad manifest every binary must refuse; a scratch directory for the reapers.
native=$(./target/debug/bramble validate -f examples/ | tail -n 1)
expected_version="bramble-agent $(cargo pkgid -p bramble-agent | sed 's/.*[@#]//')"
bad=$(mktemp --suffix=.yaml)
scratch=$(mktemp -d)
trap 'rm -rf "$bad" "$bad.out" "$scratch"' EXIT
sed 's/memory: 16Mi/memory: 12XB/' examples/hello.yaml >"$bad"

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
  [ "$version" = "$expected_version" ] \
    || fail "$target: unexpected version output: $version"
  report=$("$qemu" -cpu "$cpu" "$bin" validate examples/*.yaml) \
    || fail "$target: validate failed on $cpu: $report"
  summary=$(tail -n 1 <<<"$report")
  [ "$summary" = "$native" ] || fail "$target: '$summary' differs from the native CLI's '$native'"
  # And it must refuse a bad manifest with the same message as the native CLI.
  if "$qemu" -cpu "$cpu" "$bin" validate "$bad" >"$bad.out"; then fail "$target: accepted a bad manifest"; fi
  grep -q 'resources.limits.memory: invalid quantity "12XB"' "$bad.out" || fail "$target: $(cat "$bad.out")"
  # The reaper the agent carries, as the shim runs it: parent of a process (exec keeps the
  # shell's child), its output on an inherited pipe.
  reaper="target/$target/release/bramble-reaper"
  rm -rf "${scratch:?}"/*
  bash -c 'exec 4< <(printf "hello from %s\n" "$3"); sh -c "sleep 0.5; exit 3" &
           exec "$1" -cpu "$2" "$3" --id c1 --pid $! --output-fd 4 --log "$4/c1.log" \
             --log-max-bytes 4096 --exit-file "$4/exit.json" --oom-file "$4/memory.events"' \
    _ "$qemu" "$cpu" "$reaper" "$scratch" || fail "$target: the reaper failed"
  [ "$(cat "$scratch/exit.json")" = '{"exit_code":3,"signal":null,"oom_killed":false}' ] \
    || fail "$target: reaper recorded $(cat "$scratch/exit.json")"
  grep -qx "hello from $reaper" "$scratch/c1.log" || fail "$target: reaper log: $(cat "$scratch/c1.log")"
  printf '%-32s %-14s %8d bytes (reaper %d)  %s  %s\n' "$target" "$cpu" "$(stat -c %s "$bin")" \
    "$(stat -c %s "$reaper")" "static" "$summary"
done
