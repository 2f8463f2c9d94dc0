#!/bin/sh
# Installs the Debian 12 packages tokd needs, or says which command would.
# Usage: tools/deps.sh build|test|models|ui|chat|bench|bench-http|docker
# Called by the Makefile; quiet when everything is present.
set -eu
build="gcc make pkg-config libc6-dev libpcre2-dev libmicrohttpd-dev libcjson-dev libutf8proc-dev check"
test="$build curl python3 python3-yaml python3-dev python3-venv python3-pytest"
bench="$test wrk python3-regex manpages-ja manpages-ja-dev manpages-zh manpages-ru manpages-ru-dev"
bench_http="$bench python3-fastapi python3-uvicorn python3-regex python3-httptools
  librust-hyper-dev librust-tokio-dev librust-fancy-regex-dev librust-serde-json-dev
  librust-rustc-hash-dev librust-base64-dev"
docker="buildah debootstrap curl python3"
ui="$test chromium"
chat="$test python3-jinja2"
case "${1:-build}" in
  build) want=$build ;;
  docker) want=$docker ;;
  test) want=$test ;;
  models) want=$test ;;
  ui) want=$ui ;;
  chat) want=$chat ;;
  bench) want=$bench ;;
  bench-http) want=$bench_http ;;
  *) echo "usage: $0 build|test|models|ui|chat|bench|bench-http|docker" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# tools that may come from outside Debian (nodesource, rustup): a command on PATH is enough
tools=""
case "$1" in models|bench|ui) tools="node:nodejs npm:npm" ;; bench-http) tools="node:nodejs npm:npm cargo:cargo" ;; esac
for t in $tools; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing="$missing ${t#*:}"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "tokd: installing missing Debian packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "tokd: missing Debian packages:$missing" >&2
  echo "      install them with: sudo apt-get install -y$missing" >&2
  exit 1
fi
