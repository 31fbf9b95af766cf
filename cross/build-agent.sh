#!/usr/bin/env bash
# Builds the fully static bramble-agent for one board target, with bramble-reaper built in;
# prints the binary's path last.
#
#   cross/build-agent.sh aarch64-unknown-linux-musl        # Pi 3/4/5, Zero 2 (64-bit OS)
#   cross/build-agent.sh armv7-unknown-linux-musleabihf    # Pi 2/3/4 (32-bit OS)
#   cross/build-agent.sh arm-unknown-linux-musleabihf      # Pi Zero/1 (ARMv6)
#
# zig, through cargo-zigbuild, compiles the C and assembly of ring (rustls' crypto, for HTTPS
# pulls) for the target and links. Where rustup has the target's standard library this is the
# stable toolchain; where it does not (armv7/armv6 musl cannot be downloaded on some
# machines), std is built from source (-Zbuild-std, needs rust-src) by the nightly named in
# cross/build-std-toolchain. Both routes give a fully static binary.
set -euo pipefail
target=${1:?usage: cross/build-agent.sh TARGET [cargo args…]}
shift
cd "$(dirname "$0")/.."

# libcontainer 0.7.0 does not compile for 32-bit ARM: a 64-bit constant meets a 32-bit field
# (`FsType(DEVPTS_SUPER_MAGIC)`, twice in src/tty.rs). Until upstream casts it, 32-bit builds
# use a copy of the registry source with cross/patches/libcontainer-0.7.0-arm32.patch applied.
# Cargo rewrites Cargo.lock for a path patch, so the committed lock file is put back after.
patch_args=()
case "$target" in
  arm*)
    cargo fetch --locked >&2
    registry_src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name libcontainer-0.7.0 | head -n 1)
    [ -n "$registry_src" ] || { echo "libcontainer-0.7.0 source not found after cargo fetch" >&2; exit 1; }
    patch_file=cross/patches/libcontainer-0.7.0-arm32.patch
    patched="target/patched-crates/libcontainer-0.7.0-$(sha256sum "$patch_file" | cut -c1-12)"
    if [ ! -f "$patched/.patched" ]; then
      rm -rf "$patched"
      mkdir -p "$(dirname "$patched")"
      cp -r "$registry_src" "$patched"
      patch -s -p1 -d "$patched" <"$patch_file"
      touch "$patched/.patched"
    fi
    cp Cargo.lock target/patched-crates/Cargo.lock.committed
    trap 'cp target/patched-crates/Cargo.lock.committed Cargo.lock' EXIT
    patch_args=(--config "patch.crates-io.libcontainer.path=\"$patched\"")
    ;;
esac

build() { # package, then extra cargo arguments
  local package=$1
  shift
  # Only the agent depends on libcontainer; the reaper would warn that the patch is unused.
  [ "$package" = bramble-agent ] || local patch_args=()
  # zig from the venv scripts/setup.sh made, if there is one; else zig or ziglang on PATH.
  local venv_python="${BRAMBLE_TOOLS:-/opt/bramble-tools}/venv/bin/python3"
  if [ -x "$venv_python" ]; then
    export CARGO_ZIGBUILD_PYTHON_PATH="$venv_python"
  fi
  local flags_var
  flags_var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
  # zig links its own musl; rust's self-contained crt objects would clash. zig also warns
  # about a target's missing rustlib directory, which build-std does not need.
  export "$flags_var"="-C link-self-contained=no -A linker_messages"
  if rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    if [ "$package" = bramble-reaper ]; then
      # No C in the no_std reaper: rust-lld links it (.cargo/config.toml), with rustup's
      # self-contained musl, as before zig was needed.
      unset "$flags_var"
      cargo build --release --target "$target" -p "$package" "$@" >&2
    else
      cargo zigbuild --release --target "$target" -p "$package" "${patch_args[@]}" "$@" >&2
    fi
  else
    cargo "+$(cat cross/build-std-toolchain)" zigbuild -Zbuild-std=std,panic_abort --release --target "$target" \
      -p "$package" "${patch_args[@]}" "$@" >&2
  fi
}

# The reaper each container's shim becomes, built into the agent: a board needs one file.
build bramble-reaper "$@"
BRAMBLE_REAPER_EMBED="$PWD/target/$target/release/bramble-reaper" build bramble-agent "$@"
echo "target/$target/release/bramble-agent"
