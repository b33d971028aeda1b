#!/usr/bin/env bash
# The three images, the tool's, the terraform tool's and the gateway's: builds them with
# scripts/build-image (no Docker daemon) and checks them with tools that did not write them
# (Debian's skopeo and umoci). For each image (the test names carry it: tool_image_...,
# terraform_image_..., gateway_image_...):
#
#   <image>_config_runs_the_binary_as_nobody     User 65534:65534, Entrypoint [/<binary>], no Cmd,
#                                                amd64/linux, one layer (terraform: two, the first
#                                                the tool image's own)
#   <image>_holds_only_the_binary_and_its_files  the unpacked root is exactly the binary, the CA
#                                                bundle, passwd, group and /tmp (and the gateway's
#                                                catalog; terraform and the provider mirror): no
#                                                shell, no package manager, nothing setuid
#   <image>_binary_is_static                     no ELF interpreter (PT_INTERP), no needed library
#                                                (terraform: nor terraform, nor any provider)
#   <image>_is_small                             the compressed layer under its bound
#   <image>_build_is_reproducible                packing the same files again gives the same
#                                                manifest digest
#
# and each image's root, mounted read-only, run as uid 65534 with only a tmpfs at /tmp (the task's
# scratch mount):
#
#   tool_image_runs_read_only_as_nobody          with no network: switchboard-tool answers an echo
#                                                invocation
#   terraform_image_plans_read_only_as_nobody    with no network, the image's files read-only and
#                                                the example tenant acme's folder bound in:
#                                                terraform_plan plans projects/storefront offline
#                                                with the image's terraform and mirror (init from
#                                                the mirror, the expected resource counts)
#   gateway_image_checks_its_catalog             `switchboard check` passes on the baked catalog
#   gateway_image_serves_read_only_as_nobody     the command infra/modules/gateway gives the task
#                                                (serve --catalog /etc/switchboard/catalog.yaml),
#                                                with a bindings document in SWITCHBOARD_BINDINGS:
#                                                /healthz answers, /mcp without a token is 401
#                                                naming the resource metadata, and a token of this
#                                                suite's issuer (RS256, JWKS fetched by URL) lists
#                                                the catalog's tool
#
# and, over everything the project ships:
#
#   test_programs_are_in_nothing_that_ships     the marker string of the test programs
#                                                (test-tools/) is in both probes and in no blob
#                                                of any image nor in the Lambda package
#
# Installs skopeo and umoci when run as root (Debian); scripts/build-image installs what it needs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
started=$(date +%s)
work=${SWITCHBOARD_WORK:-$root/.work}/image
bundle_ca=/etc/ssl/certs/ca-certificates.crt

say() { printf '\n--- image: %s\n' "$*"; }
fail() {
  echo "FAIL $1: $2" >&2
  exit 1
}
ok() { echo "ok $1"; }

need=()
for tool in skopeo umoci readelf curl openssl; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail setup "missing: ${need[*]} (apt-get install skopeo umoci binutils curl openssl)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo umoci binutils curl openssl >/dev/null
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

rm -rf "$work"
mkdir -p "$work"

# The gateway's catalog, baked into its image: one Lambda tool (a gateway on Fargate has no
# sandbox, so no local tool) and this suite's issuer, whose JWKS a loopback server serves.
jwks_port=$(free_port)
gateway_port=$(free_port)
issuer=https://issuer.image-check.invalid
cat >"$work/gateway-catalog.yaml" <<EOF
version: 1
gateway:
  auth:
    issuer: $issuer
    jwks: { url: "http://127.0.0.1:$jwks_port/jwks.json" }
    algorithms: [RS256]
tools:
  - name: echo
    description: Returns the message it is given.
    input_schema:
      type: object
      properties: { message: { type: string, maxLength: 64 } }
      required: [message]
      additionalProperties: false
    backend: lambda
    lambda: { package: bootstrap.zip, architecture: x86_64 }
    timeout_seconds: 10
    memory_mb: 128
    ephemeral_storage_mb: 512
    allow: { groups: [dev] }
EOF

say "building the images (scripts/build-image tool terraform gateway)"
GATEWAY_CATALOG=$work/gateway-catalog.yaml scripts/build-image tool terraform gateway
kit=$(scripts/terraform-kit)

# check_image NAME BINARY LAYOUT MAX_LAYER_BYTES LAYERS EXTRA_FILES: the checks every image
# passes; leaves the unpacked root in $work/NAME/rootfs.
check_image() {
  local name=$1 bin=$2 layout_name=$3 max=$4 want_layers=$5 extra=$6
  local layout=$root/target/image/$layout_name
  local ref="oci:$layout:$bin"
  local digest
  digest=$(cat "$root/target/image/$layout_name.digest")
  say "checking the $name image, $digest"
  local config inspect
  config=$(skopeo inspect --config "$ref")
  inspect=$(skopeo inspect "$ref")
  [ "$(jq -r .Digest <<<"$inspect")" = "$digest" ] ||
    fail "${name}_image_build_digest" "skopeo reads $(jq -r .Digest <<<"$inspect"), the script printed $digest"
  local user entry cmd platform layers
  user=$(jq -r .config.User <<<"$config")
  entry=$(jq -c .config.Entrypoint <<<"$config")
  cmd=$(jq -c '.config.Cmd // null' <<<"$config")
  platform=$(jq -r '"\(.os)/\(.architecture)"' <<<"$config")
  layers=$(jq '.Layers | length' <<<"$inspect")
  local t=${name}_image_config_runs_the_binary_as_nobody
  [ "$user" = "65534:65534" ] || fail "$t" "User is $user"
  [ "$entry" = "[\"/$bin\"]" ] || fail "$t" "Entrypoint is $entry"
  [ "$cmd" = null ] || fail "$t" "Cmd is $cmd"
  [ "$platform" = linux/amd64 ] || fail "$t" "platform is $platform"
  [ "$layers" = "$want_layers" ] || fail "$t" "$layers layers (expected $want_layers)"
  ok "$t"

  (cd "$work" && umoci unpack --rootless --image "$layout:$bin" "$name" >/dev/null)
  local rootfs=$work/$name/rootfs listing expected
  listing=$(cd "$rootfs" && find . -mindepth 1 | sort | tr '\n' ' ')
  expected=$(printf '%s\n' ./etc ./etc/group ./etc/passwd ./etc/ssl ./etc/ssl/certs \
    ./etc/ssl/certs/ca-certificates.crt "./$bin" ./tmp $extra | sort | tr '\n' ' ')
  t=${name}_image_holds_only_the_binary_and_its_files
  [ "$listing" = "$expected" ] || fail "$t" "the root holds: $listing (expected: $expected)"
  for sh in bin/sh bin/bash usr/bin/sh bin/busybox usr/bin/apt usr/bin/dpkg sbin/apk usr/bin/bwrap; do
    [ ! -e "$rootfs/$sh" ] || fail "$t" "/$sh is in the image"
  done
  local setuid
  setuid=$(find "$rootfs" -perm /6000 -type f)
  [ -z "$setuid" ] || fail "$t" "setuid or setgid files: $setuid"
  ok "$t"

  t=${name}_image_binary_is_static
  if readelf -l "$rootfs/$bin" | grep -q 'Requesting program interpreter'; then
    fail "$t" "$bin names an ELF interpreter"
  fi
  if readelf -d "$rootfs/$bin" | grep -q '(NEEDED)'; then
    fail "$t" "$bin needs shared libraries: $(readelf -d "$rootfs/$bin" | grep NEEDED)"
  fi
  ok "$t"

  local size
  size=$(skopeo inspect --raw "$ref" | jq '[.layers[].size] | add')
  [ "$size" -lt "$max" ] || fail "${name}_image_is_small" "the layers are $size bytes (bound: $max)"
  ok "${name}_image_is_small ($size bytes compressed, $(stat -c %s "$rootfs/$bin") bytes of binary; bound $max)"

  local add=() again
  [ "$name" != gateway ] || add=(--add "$rootfs/etc/switchboard/catalog.yaml=/etc/switchboard/catalog.yaml")
  [ "$name" != terraform ] || add=(--tree "$rootfs/opt/switchboard/terraform/terraform=/opt/switchboard/terraform/terraform"
    --tree "$rootfs/opt/switchboard/terraform/providers=/opt/switchboard/terraform/providers")
  again=$(python3 "$root/scripts/oci_image.py" --binary "$rootfs/$bin" --name "$bin" \
    --ca-bundle "$bundle_ca" --out "$work/$name-again" "${add[@]}")
  [ "$again" = "$digest" ] || fail "${name}_image_build_is_reproducible" "packed again: $again, first: $digest"
  ok "${name}_image_build_is_reproducible"
}

check_image tool switchboard-tool switchboard-tool $((16 * 1024 * 1024)) 1 ""
# The terraform image: what scripts/terraform-kit found (terraform and the mirror's tree), under
# /opt/switchboard/terraform, on top of the tool image's layer.
terraform_files=$(
  printf '%s\n' ./opt ./opt/switchboard ./opt/switchboard/terraform ./opt/switchboard/terraform/terraform
  (cd -P "$kit/providers" && find -L . -mindepth 0) | sed 's|^\.|./opt/switchboard/terraform/providers|'
)
check_image terraform switchboard-tool switchboard-tool-terraform $((256 * 1024 * 1024)) 2 "$terraform_files"
t=terraform_image_config_runs_the_binary_as_nobody
tool_layer=$(skopeo inspect --raw "oci:$root/target/image/switchboard-tool:switchboard-tool" | jq -r '.layers[0].digest')
terraform_first=$(skopeo inspect --raw "oci:$root/target/image/switchboard-tool-terraform:switchboard-tool" | jq -r '.layers[0].digest')
[ "$tool_layer" = "$terraform_first" ] || fail "$t" "its first layer is $terraform_first, the tool image's $tool_layer"
ok "$t (first layer shared with the tool image)"
t=terraform_image_binary_is_static
while IFS= read -r -d '' exe; do
  ! readelf -l "$exe" | grep -q 'Requesting program interpreter' || fail "$t" "${exe#"$work"/} names an ELF interpreter"
  ! readelf -d "$exe" 2>/dev/null | grep -q '(NEEDED)' || fail "$t" "${exe#"$work"/} needs shared libraries"
done < <(find "$work/terraform/rootfs/opt" -type f -perm -u+x -print0)
ok "$t (terraform and the providers too)"
check_image gateway switchboard switchboard $((40 * 1024 * 1024)) 1 "./etc/switchboard ./etc/switchboard/catalog.yaml"

# What a task with readonlyRootFilesystem, user 65534 and a scratch mount at /tmp gets.
read_only_as_nobody=(--die-with-parent --new-session --unshare-user --unshare-pid --unshare-ipc
  --unshare-uts --unshare-cgroup-try --uid 65534 --gid 65534 --chdir /tmp --clearenv)

say "running the tool image"
invocation='{"invocationId":"image-check","tool":"echo","arguments":{"message":"from the image"},"deadlineUnixMs":4102444800000}'
answer=$(bwrap "${read_only_as_nobody[@]}" --unshare-net --ro-bind "$work/tool/rootfs" / \
  --tmpfs /tmp /switchboard-tool echo <<<"$invocation") ||
  fail tool_image_runs_read_only_as_nobody "switchboard-tool exited $?"
grep -q 'from the image' <<<"$answer" || fail tool_image_runs_read_only_as_nobody "it answered: $answer"
ok tool_image_runs_read_only_as_nobody

say "running the terraform image"
# The image's files, read-only, as a container runtime lays them out: each top-level entry bound
# into a fresh root (bwrap's own), which is then made read-only; /dev and /proc are the runtime's
# (terraform runs its provider as a child process). The tenant's folder is bound where the tool is
# told to look; there is no network at all.
t=terraform_image_plans_read_only_as_nobody
image_root=()
for entry in "$work/terraform/rootfs"/*; do
  image_root+=(--ro-bind "$entry" "/${entry##*/}")
done
invocation='{"invocationId":"image-check-plan","tool":"terraform_plan","arguments":{"project":"storefront"},"deadlineUnixMs":4102444800000}'
answer=$(bwrap "${read_only_as_nobody[@]}" --unshare-net "${image_root[@]}" --tmpfs /tmp \
  --dev /dev --proc /proc --ro-bind "$root/examples/tenants/acme" /tmp/tenant --remount-ro / \
  --setenv SWITCHBOARD_TENANT_DIR /tmp/tenant --setenv SWITCHBOARD_TENANT acme \
  /switchboard-tool terraform_plan <<<"$invocation" 2>"$work/terraform-run.log") ||
  fail "$t" "switchboard-tool exited $?: $(tail -5 "$work/terraform-run.log")"
structured=$(jq -c '.structuredContent // .structured_content' <<<"$answer")
[ "$(jq -r '.isError // false' <<<"$answer")" = false ] || fail "$t" "the plan failed: $answer"
[ "$(jq -r .offline <<<"$structured")" = true ] || fail "$t" "not offline: $structured"
# The example project's resources (tests/lambda/e2e/test_terraform_plan.py plans the same).
changes=$(jq -cS .changes <<<"$structured")
[ "$changes" = '{"create":10,"delete":0,"replace":0,"update":0}' ] || fail "$t" "changes: $changes"
creates=$(jq -c '.byType | to_entries | map({(.key): .value.create}) | add' <<<"$structured")
expected='{"aws_iam_policy":1,"aws_s3_bucket":2,"aws_s3_bucket_lifecycle_configuration":1,"aws_s3_bucket_public_access_block":1,"aws_s3_bucket_server_side_encryption_configuration":2,"aws_security_group":1,"aws_sqs_queue":1,"aws_vpc":1}'
[ "$(jq -cS . <<<"$creates")" = "$expected" ] || fail "$t" "creates $creates"
ok "$t (10 to create)"

say "running the gateway image"
# The image has no /proc or /dev to mount on (a container runtime makes them; bwrap cannot on a
# read-only root), and the gateway needs neither.
gw=(bwrap "${read_only_as_nobody[@]}" --ro-bind "$work/gateway/rootfs" / --tmpfs /tmp)
out=$("${gw[@]}" /switchboard check /etc/switchboard/catalog.yaml 2>&1) ||
  fail gateway_image_checks_its_catalog "switchboard check exited $?: $out"
ok gateway_image_checks_its_catalog

# This suite's issuer: an RSA key, its JWKS served on loopback, a token signed with it.
keys=$work/issuer
mkdir -p "$keys/www"
openssl genrsa -out "$keys/key.pem" 2048 2>/dev/null
modulus=$(openssl rsa -in "$keys/key.pem" -noout -modulus | cut -d= -f2)
python3 - "$modulus" >"$keys/www/jwks.json" <<'PY'
import base64, json, sys
n = int(sys.argv[1], 16).to_bytes((len(sys.argv[1]) + 1) // 2, "big")
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
print(json.dumps({"keys": [{"kty": "RSA", "kid": "image-check", "alg": "RS256", "use": "sig",
                            "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}]}))
PY
python3 -m http.server --bind 127.0.0.1 --directory "$keys/www" "$jwks_port" >"$work/jwks.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$jwks_port/jwks.json" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$jwks_port/jwks.json" >/dev/null ||
  fail gateway_image_serves_read_only_as_nobody "the suite's JWKS server did not start: $(cat "$work/jwks.log")"
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"image-check"}' | b64url)
claims=$(printf '{"iss":"%s","aud":"http://127.0.0.1:%s/mcp","sub":"image-check","groups":["dev"],"iat":%s,"exp":%s}' \
  "$issuer" "$gateway_port" "$now" $((now + 600)) | b64url)
signature=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -sign "$keys/key.pem" -binary | b64url)
token=$header.$claims.$signature

bindings='{"version":1,"region":"eu-west-1","account_id":"123456789012","gateway_role_arn":null,
  "invocation_bucket":null,"local_tools":[],"tools":{"echo":{"backend":"lambda",
  "function_arn":"arn:aws:lambda:eu-west-1:123456789012:function:switchboard-echo",
  "subnets":[],"security_groups":[],"session_tags":["tool","tenant","principal","invocation"]}}}'
t=gateway_image_serves_read_only_as_nobody
"${gw[@]}" --setenv SWITCHBOARD_BINDINGS "$bindings" --setenv RUST_LOG info \
  /switchboard serve --catalog /etc/switchboard/catalog.yaml --listen "127.0.0.1:$gateway_port" \
  >"$work/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$gateway_port/healthz" >/dev/null && break
  kill -0 "${pids[-1]}" 2>/dev/null || fail "$t" "the gateway exited: $(tail -5 "$work/gateway.log")"
  sleep 0.1
done
curl -sf "http://127.0.0.1:$gateway_port/healthz" >/dev/null || fail "$t" "/healthz does not answer"

mcp() {
  curl -s -D "$work/headers" -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$gateway_port/mcp" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/list' "$@" \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
         "io.modelcontextprotocol/protocolVersion":"2026-07-28",
         "io.modelcontextprotocol/clientInfo":{"name":"image-check","version":"1"},
         "io.modelcontextprotocol/clientCapabilities":{}}}}'
}
status=$(mcp)
[ "$status" = 401 ] || fail "$t" "/mcp without a token answered $status"
grep -qi '^www-authenticate: Bearer resource_metadata=' "$work/headers" ||
  fail "$t" "the 401 names no resource metadata: $(cat "$work/headers")"
status=$(mcp -H "Authorization: Bearer $token")
[ "$status" = 200 ] || fail "$t" "tools/list answered $status: $(cat "$work/body"); log: $(tail -20 "$work/gateway.log"); jwks: $(cat "$work/jwks.log")"
if grep -q '^data: ' "$work/body"; then
  answer=$(sed -n 's/^data: //p' "$work/body")
else
  answer=$(cat "$work/body")
fi
tools=$(jq -r '.result.tools[].name' <<<"$answer")
[ "$tools" = echo ] || fail "$t" "tools/list named: $tools ($(cat "$work/body"))"
ok "$t"

# The test programs (test-tools/: the escape probe and the Lambda probe) carry a marker string;
# it must be in them (else this check proves nothing) and in no layer of any image, nor in the
# Lambda package.
say "test programs in nothing that ships"
t=test_programs_are_in_nothing_that_ships
marker="switchboard-test-tools: a test program; it must never ship"
[ -x "$root/target/release/switchboard-escape-probe" ] && [ -x "$root/target/release/switchboard-lambda-probe" ] ||
  scripts/build >/dev/null
for probe in switchboard-escape-probe switchboard-lambda-probe; do
  grep -qaF "$marker" "$root/target/release/$probe" || fail "$t" "$probe lacks the marker: this check would prove nothing"
done
searched=0
for layout in "$root"/target/image/*/; do
  for blob in "$layout"blobs/sha256/*; do
    if gzip -t "$blob" 2>/dev/null; then
      ! gzip -dc "$blob" | grep -qaF "$marker" || fail "$t" "a layer of ${layout#"$root"/} holds a test program ($blob)"
    else
      ! grep -qaF "$marker" "$blob" || fail "$t" "${layout#"$root"/} holds a test program ($blob)"
    fi
    searched=$((searched + 1))
  done
done
package=$root/$(scripts/package-lambda --no-build)
python3 - "$package" "$marker" <<'PY' || fail "$t" "the Lambda package $package holds a test program"
import sys, zipfile
package, marker = sys.argv[1], sys.argv[2].encode()
with zipfile.ZipFile(package) as z:
    sys.exit(1 if any(marker in z.read(name) for name in z.namelist()) else 0)
PY
ok "$t ($searched blobs of $(ls -d "$root"/target/image/*/ | wc -l) images and the Lambda package searched)"

say "passed in $(($(date +%s) - started))s"
