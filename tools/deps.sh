#!/bin/sh
# Installs the Debian 12 packages tokd needs, or says which command would.
# Usage: tools/deps.sh build|test|bench
# Called by the Makefile; quiet when everything is present.
set -eu
build="gcc make pkg-config libc6-dev libpcre2-dev libmicrohttpd-dev libcjson-dev check"
test="$build curl python3"
bench="$test wrk nodejs npm time"
case "${1:-build}" in
  build) want=$build ;;
  test) want=$test ;;
  bench) want=$bench ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
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
