#!/usr/bin/env bash
# The tool image: builds it with scripts/build-image (no Docker daemon) and checks it with tools
# that did not write it (Debian's skopeo and umoci):
#
#   image_config_runs_the_binary_as_nobody       User 65534:65534, Entrypoint [/switchboard-tool],
#                                                no Cmd, amd64/linux, one layer
#   image_holds_only_the_binary_and_its_files    the unpacked root is exactly the binary, the CA
#                                                bundle, passwd, group and /tmp: no shell, no
#                                                package manager, nothing setuid
#   image_binary_is_static                       no ELF interpreter (PT_INTERP), no needed library
#   image_is_small                               the compressed layer under 16 MiB
#   image_build_is_reproducible                  packing the same binary again gives the same
#                                                manifest digest
#   image_runs_read_only_as_nobody               the unpacked root, mounted read-only, as uid 65534,
#                                                with only a tmpfs at /tmp (the task's scratch
#                                                mount) and no network: switchboard-tool answers
#                                                an echo invocation
#
# Installs skopeo and umoci when run as root (Debian); scripts/build-image installs what it needs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
started=$(date +%s)
work=${SWITCHBOARD_WORK:-$root/.work}/image
layout=$root/target/image/switchboard-tool
ref="oci:$layout:switchboard-tool"

say() { printf '\n--- image: %s\n' "$*"; }
fail() {
  echo "FAIL $1: $2" >&2
  exit 1
}
ok() { echo "ok $1"; }

need=()
for tool in skopeo umoci readelf; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail setup "missing: ${need[*]} (apt-get install skopeo umoci binutils)"
  pkgs=(skopeo umoci binutils)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

say "building the image (scripts/build-image tool)"
scripts/build-image tool
digest=$(cat "$root/target/image/switchboard-tool.digest")

rm -rf "$work"
mkdir -p "$work"

say "checking $digest"
config=$(skopeo inspect --config "$ref")
inspect=$(skopeo inspect "$ref")
[ "$(jq -r .Digest <<<"$inspect")" = "$digest" ] ||
  fail image_build_digest "skopeo reads $(jq -r .Digest <<<"$inspect"), the script printed $digest"
user=$(jq -r .config.User <<<"$config")
entry=$(jq -c .config.Entrypoint <<<"$config")
cmd=$(jq -c '.config.Cmd // null' <<<"$config")
platform=$(jq -r '"\(.os)/\(.architecture)"' <<<"$config")
layers=$(jq '.Layers | length' <<<"$inspect")
[ "$user" = "65534:65534" ] || fail image_config_runs_the_binary_as_nobody "User is $user"
[ "$entry" = '["/switchboard-tool"]' ] || fail image_config_runs_the_binary_as_nobody "Entrypoint is $entry"
[ "$cmd" = null ] || fail image_config_runs_the_binary_as_nobody "Cmd is $cmd"
[ "$platform" = linux/amd64 ] || fail image_config_runs_the_binary_as_nobody "platform is $platform"
[ "$layers" = 1 ] || fail image_config_runs_the_binary_as_nobody "$layers layers"
ok image_config_runs_the_binary_as_nobody

bundle=$work/bundle
(cd "$work" && umoci unpack --rootless --image "$layout:switchboard-tool" bundle >/dev/null)
rootfs=$bundle/rootfs
listing=$(cd "$rootfs" && find . -mindepth 1 | sort | tr '\n' ' ')
expected="./etc ./etc/group ./etc/passwd ./etc/ssl ./etc/ssl/certs ./etc/ssl/certs/ca-certificates.crt ./switchboard-tool ./tmp "
[ "$listing" = "$expected" ] || fail image_holds_only_the_binary_and_its_files "the root holds: $listing"
for sh in bin/sh bin/bash usr/bin/sh bin/busybox usr/bin/apt usr/bin/dpkg sbin/apk; do
  [ ! -e "$rootfs/$sh" ] || fail image_holds_only_the_binary_and_its_files "/$sh is in the image"
done
setuid=$(find "$rootfs" -perm /6000 -type f)
[ -z "$setuid" ] || fail image_holds_only_the_binary_and_its_files "setuid or setgid files: $setuid"
ok image_holds_only_the_binary_and_its_files

if readelf -l "$rootfs/switchboard-tool" | grep -q 'Requesting program interpreter'; then
  fail image_binary_is_static "switchboard-tool names an ELF interpreter"
fi
if readelf -d "$rootfs/switchboard-tool" | grep -q '(NEEDED)'; then
  fail image_binary_is_static "switchboard-tool needs shared libraries: $(readelf -d "$rootfs/switchboard-tool" | grep NEEDED)"
fi
ok image_binary_is_static

size=$(skopeo inspect --raw "$ref" | jq '[.layers[].size] | add')
[ "$size" -lt $((16 * 1024 * 1024)) ] || fail image_is_small "the layer is $size bytes"
ok "image_is_small ($size bytes compressed, $(stat -c %s "$rootfs/switchboard-tool") bytes of binary)"

again=$(python3 "$root/scripts/oci_image.py" --binary "$rootfs/switchboard-tool" --name switchboard-tool \
  --ca-bundle /etc/ssl/certs/ca-certificates.crt --out "$work/again")
[ "$again" = "$digest" ] || fail image_build_is_reproducible "packed again: $again, first: $digest"
ok image_build_is_reproducible

invocation='{"invocationId":"image-check","tool":"echo","arguments":{"message":"from the image"},"deadlineUnixMs":4102444800000}'
answer=$(bwrap --unshare-all --die-with-parent --new-session \
  --ro-bind "$rootfs" / --tmpfs /tmp \
  --uid 65534 --gid 65534 --chdir /tmp --clearenv \
  /switchboard-tool echo <<<"$invocation") ||
  fail image_runs_read_only_as_nobody "switchboard-tool exited $?"
grep -q 'from the image' <<<"$answer" || fail image_runs_read_only_as_nobody "it answered: $answer"
ok image_runs_read_only_as_nobody

say "passed in $(($(date +%s) - started))s"
