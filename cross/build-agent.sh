#!/usr/bin/env bash
# Builds the fully static bramble-agent for one board target; prints the binary's path last.
#
#   cross/build-agent.sh aarch64-unknown-linux-musl        # Pi 3/4/5, Zero 2 (64-bit OS)
#   cross/build-agent.sh armv7-unknown-linux-musleabihf    # Pi 2/3/4 (32-bit OS)
#   cross/build-agent.sh arm-unknown-linux-musleabihf      # Pi Zero/1 (ARMv6)
#
# Where rustup has the target's standard library, this is a plain `cargo build` linked by
# rust-lld (.cargo/config.toml). Where it does not (armv7/armv6 musl cannot be downloaded on
# some machines), std is built from source (-Zbuild-std, needs rust-src) by the nightly named
# in cross/build-std-toolchain and linked by zig through cargo-zigbuild; both routes give a
# fully static binary.
set -euo pipefail
target=${1:?usage: cross/build-agent.sh TARGET [cargo args…]}
shift
cd "$(dirname "$0")/.."

if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  cargo build --release --target "$target" -p bramble-agent "$@" >&2
else
  flags_var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
  # zig links its own musl; rust's self-contained crt objects would clash. zig also warns
  # about the target's missing rustlib directory, which build-std does not need.
  export "$flags_var"="-C link-self-contained=no -A linker_messages"
  # zig from the venv scripts/setup.sh made, if there is one; else zig or ziglang on PATH.
  venv_python="${BRAMBLE_TOOLS:-/opt/bramble-tools}/venv/bin/python3"
  if [ -x "$venv_python" ]; then
    export CARGO_ZIGBUILD_PYTHON_PATH="$venv_python"
  fi
  cargo "+$(cat cross/build-std-toolchain)" zigbuild -Zbuild-std=std,panic_abort --release --target "$target" \
    -p bramble-agent "$@" >&2
fi
echo "target/$target/release/bramble-agent"
