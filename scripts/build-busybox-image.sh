#!/usr/bin/env bash
# Builds a multi-arch busybox image as an OCI image layout, from Debian's busybox-static:
#   scripts/build-busybox-image.sh OUT_DIR
#   scripts/build-busybox-image.sh --cached   # builds once into target/test-fixtures (the name
#                                             # changes with this script), prints the path
# Each platform (linux/amd64, linux/arm64) is built by umoci; both are then joined under one
# image index, named as containerd names exports: ref.name "latest" and
# io.containerd.image.name "docker.io/library/busybox:latest". Needs scripts/setup.sh (umoci,
# jq, and dpkg's arm64 architecture for busybox-static:arm64).
set -euo pipefail
out=${1:?usage: scripts/build-busybox-image.sh OUT_DIR|--cached}
if [ "$out" = --cached ]; then
  fixtures="$(cd "$(dirname "$0")/.." && pwd)/target/test-fixtures"
  cached="$fixtures/busybox-oci-$(sha256sum "$0" | cut -c1-16)"
  if [ ! -f "$cached/index.json" ]; then
    mkdir -p "$fixtures"
    staging="$fixtures/building-$$"
    rm -rf "$staging"
    "$0" "$staging" >/dev/null
    # Published by one rename; a run side by side may have published it first.
    mv -T "$staging" "$cached" 2>/dev/null || rm -rf "$staging"
  fi
  echo "$cached"
  exit 0
fi
[ ! -e "$out" ] || { echo "$out exists already" >&2; exit 1; }
work=$(mktemp -d)
chmod 755 "$work"   # apt-get download drops privileges to _apt, which must write here
if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
trap 'rm -rf "$work"' EXIT

umoci init --layout "$work/oci"
for arch in amd64 arm64; do
  (cd "$work" && apt-get download -qq "busybox-static:$arch")
  dpkg-deb -x "$work"/busybox-static_*_"$arch".deb "$work/deb-$arch"
  umoci new --image "$work/oci:$arch"
  umoci config --image "$work/oci:$arch" --architecture "$arch" --os linux \
    --config.env PATH=/bin --config.cmd sh --config.workingdir /
  umoci unpack --image "$work/oci:$arch" "$work/bundle-$arch" >/dev/null
  rootfs="$work/bundle-$arch/rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/www" "$rootfs/tmp" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
  cp "$work/deb-$arch/bin/busybox" "$rootfs/bin/busybox"
  for applet in sh ash httpd echo cat sleep ls wget ps kill true false env mkdir rm nc dd head id; do
    ln -s busybox "$rootfs/bin/$applet"
  done
  echo "hello from bramble" >"$rootfs/www/index.html"
  echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
  umoci repack --image "$work/oci:$arch" "$work/bundle-$arch"
done

# Join both platforms' manifests under one image index.
layout="$work/oci"
platform_entry() {
  jq --arg tag "$1" --arg arch "$1" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $tag)
     | del(.annotations) | .platform = {architecture: $arch, os: "linux"}' "$layout/index.json"
}
jq -n --argjson amd64 "$(platform_entry amd64)" --argjson arm64 "$(platform_entry arm64)" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$amd64, $arm64]}' \
  >"$work/image-index.json"
digest=$(sha256sum "$work/image-index.json" | cut -d' ' -f1)
size=$(stat -c %s "$work/image-index.json")
cp "$work/image-index.json" "$layout/blobs/sha256/$digest"
jq -n --arg digest "sha256:$digest" --argjson size "$size" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $digest, size: $size,
      annotations: {"org.opencontainers.image.ref.name": "latest",
                    "io.containerd.image.name": "docker.io/library/busybox:latest"}}]}' \
  >"$layout/index.json"
umoci gc --layout "$layout"
mkdir -p "$(dirname "$out")"
cp -r "$layout" "$out"
echo "$out: busybox for linux/amd64 and linux/arm64 (index sha256:$digest)"
