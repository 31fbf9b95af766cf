#!/usr/bin/env bash
# Installs what building and testing Bramble needs on a Debian 12 machine, as root.
# Safe to run again: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/setup.sh installs Debian packages: run it as root" >&2
  exit 1
fi

TOOLS=${BRAMBLE_TOOLS:-/opt/bramble-tools}
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1
step() { printf '\n== %s\n' "$*"; }

step "Debian packages"
# Test images are built from busybox-static for amd64 and arm64, by umoci; skopeo writes them
# out as `docker save` archives.
updated=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update -qq
  updated=1
fi
packages=(ca-certificates curl gcc libc6-dev file git python3 python3-venv qemu-user-static busybox-static
  umoci skopeo jq patch runc crun iproute2 qemu-system-arm cpio mosquitto mosquitto-clients docker-registry)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$updated" = 1 ] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "all present: ${packages[*]}"
fi
# Mosquitto is for the tests, which start their own on free ports; Debian's service would hold
# port 1883, which the coordinator's embedded broker takes by default.
# The same for Debian's docker-registry (port 5000): the registry tests start their own.
for service in mosquitto docker-registry; do
  if command -v systemctl >/dev/null && systemctl is-enabled "$service" >/dev/null 2>&1; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
done

step "Rust toolchain (rust-toolchain.toml)"
if ! command -v rustup >/dev/null && [ -x "$HOME/.cargo/bin/rustup" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v rustup >/dev/null; then
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --default-toolchain none
  export PATH="$HOME/.cargo/bin:$PATH"
fi
channel=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain install "$channel" --profile minimal -c rustfmt -c clippy -t aarch64-unknown-linux-musl -t x86_64-unknown-linux-musl
rustc --version

step "32-bit ARM targets (armv7 for Pi 2/3/4 on a 32-bit OS, armv6 for Pi Zero/1)"
need_build_std=0
for target in armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf; do
  if ! rustup target add --toolchain "$channel" "$target" 2>/dev/null; then
    echo "$target: rustup cannot download its standard library here; building it from source instead"
    need_build_std=1
  fi
done
if [ "$need_build_std" = 1 ]; then
  # std from source needs nightly's rust-src.
  rustup toolchain install "$(cat cross/build-std-toolchain)" --profile minimal -c rust-src
fi

step "zig (the C cross compiler and linker of board builds) and cargo-zigbuild"
# ring (rustls' crypto, for HTTPS image pulls) compiles C and assembly for the board: zig, from
# PyPI, is that compiler for every target, and cargo-zigbuild drives it.
if [ ! -x "$TOOLS/venv/bin/python3" ]; then
  python3 -m venv "$TOOLS/venv"
fi
if ! "$TOOLS/venv/bin/python3" -m ziglang version >/dev/null 2>&1; then
  "$TOOLS/venv/bin/pip" install -q "ziglang==$ZIGLANG_VERSION"
fi
if ! cargo zigbuild --help >/dev/null 2>&1 || \
   ! cargo install --list | grep -q "^cargo-zigbuild v$CARGO_ZIGBUILD_VERSION:"; then
  cargo install --locked --quiet "cargo-zigbuild@$CARGO_ZIGBUILD_VERSION"
fi
echo "zig $("$TOOLS/venv/bin/python3" -m ziglang version) via $TOOLS/venv"

step "Ready"
echo "build: cargo build --workspace; boards: cross/build-agent.sh TARGET; tests: bash scripts/test.sh"
