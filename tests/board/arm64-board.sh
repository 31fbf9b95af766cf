#!/usr/bin/env bash
# Boots an emulated arm64 board with pure cgroup v2, as Raspberry Pi OS has it, and runs the
# static aarch64 bramble-agent (the binary users flash) on it:
#
#   qemu-system-aarch64 -M virt -cpu cortex-a72 -m 1024 -smp 2 (TCG), Debian's arm64 kernel,
#   and an initramfs made here: busybox-static:arm64, overlay.ko, the agent, a busybox image
#   and tests/board/{init,pods.yaml}.
#
# Everything comes from Debian's packages (apt-get download through dpkg's arm64 architecture,
# unpacked with dpkg-deb -x into a temp dir, never into /) and this repository.
#
# The board imports the image, runs the pods of tests/board/pods.yaml, kills one container by
# hand, waits until it is restarted and the OOM pod is reported OOMKilled and restarted, prints
# its cgroup files, RSS figures and the agent's JSON status, and powers off. This script checks
# all of it and prints a summary; it fails (non-zero) naming what did not hold.
#
# Usage: tests/board/arm64-board.sh   (as root; needs scripts/setup.sh; scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

console=
# On failure, the board's console is kept in target/arm64-board-console.log and its end shown.
fail() {
  if [ -n "$console" ] && [ -f "$console.txt" ]; then
    mkdir -p target
    cp "$console.txt" target/arm64-board-console.log
    echo "--- board console (last 60 lines; all of it in target/arm64-board-console.log) ---" >&2
    tail -n 60 "$console.txt" >&2
  fi
  echo "FAIL: $*" >&2
  exit 1
}
for tool in qemu-system-aarch64 cpio jq dpkg-deb apt-get gzip; do
  command -v "$tool" >/dev/null || fail "missing $tool: run scripts/setup.sh"
done
dpkg --print-foreign-architectures | grep -qx arm64 || fail "dpkg has no arm64 architecture: run scripts/setup.sh"

work=$(mktemp -d /var/tmp/bramble-arm64-board.XXXXXX)
chmod 755 "$work"   # apt-get download runs as _apt, which must reach debs/
mkdir "$work/debs"
# apt-get download writes as _apt where that user exists.
if id _apt >/dev/null 2>&1; then chown _apt "$work/debs"; fi
qemu_pid=
cleanup() {
  # timeout(1) runs qemu in a process group of its own, led by timeout: end them both.
  [ -n "$qemu_pid" ] && kill -9 -- "-$qemu_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building the static aarch64 agent" >&2
cross/build-agent.sh aarch64-unknown-linux-musl >"$work/build.log" 2>&1 \
  || { tail -n 30 "$work/build.log" >&2; fail "building the aarch64 agent failed"; }
agent=$(tail -n 1 "$work/build.log")
[ -x "$agent" ] || fail "no agent binary at $agent"

# The kernel linux-image-arm64 points to today, and busybox-static, both for arm64.
kernel_package() { apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'; }
kernel_package=$(kernel_package)
[ -n "$kernel_package" ] || fail "apt-cache does not know linux-image-arm64:arm64 (apt-get update?)"
echo "downloading $kernel_package and busybox-static:arm64" >&2
download() { (cd "$work/debs" && apt-get download -qq "$kernel_package" "busybox-static:arm64"); }
if ! download; then
  # Package lists older than the mirror's pool: refresh them once.
  apt-get update -qq
  kernel_package=$(kernel_package)
  download || fail "apt-get download $kernel_package busybox-static:arm64 failed"
fi
dpkg-deb -x "$work/debs/${kernel_package%:arm64}"_*_arm64.deb "$work/kernel"
dpkg-deb -x "$work"/debs/busybox-static_*_arm64.deb "$work/busybox"
vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-*)
overlay=$(find "$work/kernel/lib/modules" -name 'overlay.ko*' | head -n 1)
[ -n "$overlay" ] || fail "no overlay module in $kernel_package"
case "$overlay" in
  *.ko) ;;
  *.ko.xz) command -v xz >/dev/null || fail "overlay.ko is xz-compressed: install xz-utils"
    xz -d "$overlay"; overlay=${overlay%.xz} ;;
  *.ko.zst) command -v zstd >/dev/null || fail "overlay.ko is zstd-compressed: install zstd"
    zstd -q -d --rm "$overlay"; overlay=${overlay%.zst} ;;
  *) fail "unknown module compression: $overlay" ;;
esac

# The initramfs: the board's whole root.
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,etc,manifests,lib/modules,var/lib/bramble}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
for applet in sh mount umount mkdir cat echo sed awk grep cut tr sleep kill poweroff hostname insmod ls cp switch_root; do
  ln -s busybox "$root/bin/$applet"
done
cp tests/board/init "$root/init"
cp "$agent" "$root/bramble-agent"
cp "$overlay" "$root/lib/modules/overlay.ko"
cp tests/board/pods.yaml "$root/manifests/pods.yaml"
cp -r "$(scripts/build-busybox-image.sh --cached)" "$root/image"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz"

echo "booting: $(basename "$vmlinuz"), initramfs $(($(stat -c %s "$work/initramfs.gz") / 1024)) KiB" >&2
console="$work/console.log"
start=$(date +%s%N)
# The board gives up by itself after 5 minutes per step; this only catches a hung machine.
timeout 1800 qemu-system-aarch64 -M virt -cpu cortex-a72 -m 1024 -smp 2 -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$work/initramfs.gz" -append "console=ttyAMA0 panic=-1 quiet" \
  </dev/null >"$console" 2>&1 &
qemu_pid=$!
status=0
wait "$qemu_pid" || status=$?
qemu_pid=
end=$(date +%s%N)
seconds=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')
tr -d '\r' <"$console" >"$console.txt"
grep -E '^BOARD(:|-REAPER|-AGENT) ' "$console.txt" >&2 || true

[ "$status" = 0 ] || fail "qemu ended with status $status after $seconds s"
if grep -q '^BOARD: TIMEOUT' "$console.txt"; then
  fail "the board gave up: $(grep '^BOARD: TIMEOUT' "$console.txt")"
fi

# What the board printed.
cgroup() { sed -n "s/^BOARD-CGROUP $1=//p" "$console.txt"; }
[ "$(cgroup cpu.max)" = "25000 100000" ] || fail "limits: cpu.max is '$(cgroup cpu.max)', want '25000 100000' (250m)"
[ "$(cgroup memory.max)" = "33554432" ] || fail "limits: memory.max is '$(cgroup memory.max)', want 33554432 (32Mi)"
[ "$(cgroup pids.max)" = "1024" ] || fail "limits: pids.max is '$(cgroup pids.max)', want 1024 (the pod default)"
# The kernel writes to the same console (an OOM kill's report may land inside the status): its
# lines, "[    5.874455] …", are not the agent's.
sed -n '/^BOARD-STATUS-BEGIN$/,/^BOARD-STATUS-END$/p' "$console.txt" | sed '1d;$d' \
  | grep -Ev '^\[ *[0-9]+\.[0-9]+\] ' >"$work/status.json"
jq -e . "$work/status.json" >/dev/null || fail "the board's status is not JSON"
pod() { jq -c --arg name "$1" '.pods[] | select(.name == $name) | .containers[0]' "$work/status.json"; }

killed=$(sed -n 's/^BOARD-KILLED //p' "$console.txt")
victim=$(pod victim)
[ -n "$victim" ] || fail "no victim pod in the status"
jq -e --argjson killed "$killed" \
  '.restartCount >= 1 and .lastState.exitCode == 137 and .state.running.pid != $killed' \
  <<<"$victim" >/dev/null || fail "victim: not restarted after kill -9 of $killed: $victim"

hungry=$(pod hungry)
[ -n "$hungry" ] || fail "no hungry pod in the status"
jq -e '.restartCount >= 1 and ([.state.terminated.reason, .lastState.reason] | index("OOMKilled"))' \
  <<<"$hungry" >/dev/null || fail "hungry: not reported OOMKilled and restarted: $hungry"
jq -e '.state.running.pid' <<<"$(pod limits)" >/dev/null || fail "limits: not running: $(pod limits)"

read -r agent_kb reapers reapers_kb < <(sed -n 's/^BOARD-RSS agent_kb=\([0-9]*\) reapers=\([0-9]*\) reapers_kb=\([0-9]*\)$/\1 \2 \3/p' "$console.txt") || true
[ -n "${agent_kb:-}" ] || fail "the board printed no RSS figures"

arch=$(jq -r .node.arch "$work/status.json")
printf '\narm64 board (qemu %s, %s, cortex-a72 x2, 1 GiB, cgroup v2): boot to poweroff %s s\n' \
  "$(qemu-system-aarch64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')" "${kernel_package%:arm64}" "$seconds"
printf '  agent node arch %s; limits pod: cpu.max %s, memory.max %s, pids.max %s\n' \
  "$arch" "$(cgroup cpu.max)" "$(cgroup memory.max)" "$(cgroup pids.max)"
printf '  victim restarted after kill -9 (restartCount %s); hungry OOMKilled, restartCount %s\n' \
  "$(jq .restartCount <<<"$victim")" "$(jq .restartCount <<<"$hungry")"
printf '  RSS inside the board: agent %d kB, %d reapers %d kB together\n' "$agent_kb" "$reapers" "$reapers_kb"
echo "arm64 board: all checks passed"
