#!/bin/sh
# docker/test.sh — builds the container image and checks it, without a Docker engine.
#
# Uses Debian's buildah (--isolation chroot, which shares the host's loopback). Base images
# cannot be pulled here, so a Debian 12 base is made once with debootstrap and tagged with
# the name the Dockerfile uses (docker.io/library/debian:12). Then: build the image, start
# tokd inside, check /health, /ready, an /encode, the self-probe and SIGTERM, and print the
# image size. Run as root: `make docker-test` (not part of `make test`: the first run
# downloads a Debian base system).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
image=localhost/tokd:test
base=docker.io/library/debian:12
store="--storage-driver vfs"
port=${TOKD_TEST_PORT:-18089}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

for tool in buildah debootstrap curl python3; do
  command -v $tool >/dev/null || { echo "docker/test.sh needs $tool: apt-get install -y buildah debootstrap curl python3" >&2; exit 2; }
done

# shellcheck disable=SC2086
if ! buildah $store inspect --type image "$base" >/dev/null 2>&1; then
  rootfs=/var/tmp/tokd-rootfs
  if [ ! -x "$rootfs/bin/sh" ]; then
    echo "== debootstrap bookworm (once)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  fi
  echo "== importing the base image as $base"
  ctr=$(buildah $store from scratch)
  mnt=$(buildah $store mount "$ctr")
  cp -a "$rootfs/." "$mnt/"
  buildah $store umount "$ctr" >/dev/null
  buildah $store commit -q "$ctr" "$base" >/dev/null
  buildah $store rm "$ctr" >/dev/null
fi

echo "== building $image"
# shellcheck disable=SC2086
buildah $store bud -q --format docker --isolation chroot --pull-never -f "$root/docker/Dockerfile" -t "$image" "$root" >/dev/null
size=$(
       buildah $store images --format '{{.Size}}' "$image" | head -1)
# what a registry pull transfers: the layers gzip-compressed, as a push writes them
oci=$(mktemp -d)
buildah $store push -q --compression-format gzip "$image" "oci:$oci/image" >/dev/null
pulled=$(python3 -c 'import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
man = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"].split(":")[1]))
print("%.1f MB" % (sum(l["size"] for l in man["layers"]) / 1e6))' "$oci/image")
rm -rf "$oci"
echo "image size: $size ($pulled compressed, what a pull transfers)"

ctr=$(buildah $store from "$image")
cleanup() { buildah $store rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
user=$(buildah $store inspect --format '{{.OCIv1.Config.User}}' "$ctr")
[ "$user" = "65532:65532" ] && ok "non-root user $user" || bad "user is '$user'"
hc=$(buildah $store inspect --type image --format '{{.Docker.Config.Healthcheck.Test}}' "$image")
case "$hc" in *"/usr/local/bin/tokd health"*) ok "HEALTHCHECK $hc" ;; *) bad "HEALTHCHECK is '$hc'" ;; esac

buildah $store run --isolation chroot --env TOKD_PORT=$port "$ctr" -- /usr/local/bin/tokd serve --host 127.0.0.1 --port "$port" > /tmp/tokd-docker.log 2>&1 &
runner=$!
i=0
until curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
curl -sf "http://127.0.0.1:$port/health" | grep -q '"ok"' && ok "/health" || bad "/health"
curl -sf "http://127.0.0.1:$port/ready" | grep -q '"ready"' && ok "/ready" || bad "/ready"
curl -sf "http://127.0.0.1:$port/encode" -H 'Content-Type: application/json' -d '{"text":"hello world"}' \
  | grep -q '"tokens":\[15339,1917\]' && ok "/encode" || bad "/encode"
# shellcheck disable=SC2086
buildah $store run --isolation chroot "$ctr" -- /usr/local/bin/tokd health --port "$port" && ok "self-probe" || bad "self-probe"

pid=$(pgrep -f "^/usr/local/bin/tokd serve --host 127.0.0.1 --port $port" | head -1 || true)
if [ -n "$pid" ]; then
  kill -TERM "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$pid" 2>/dev/null; then bad "still running 10 s after SIGTERM"; kill -KILL "$pid"
  else grep -q '"msg":"stopped"' /tmp/tokd-docker.log && ok "SIGTERM drains and stops" || bad "no stop log"; fi
else
  bad "tokd process not found"
fi
wait $runner 2>/dev/null || true
echo "docker: $pass passed, $fail failed (image size $size, $pulled compressed)"
[ "$fail" -eq 0 ]
