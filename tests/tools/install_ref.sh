#!/bin/sh
# Installs the pinned reference tokenizers from npm into DIR/node_modules (idempotent).
#   tests/tools/install_ref.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
want="tiktoken@1.0.22 tiktoken-node@0.0.7 tokenizers@0.23.2"
if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then exit 0; fi
[ -f "$dir/package.json" ] || echo '{"name":"tokd-ref","private":true}' > "$dir/package.json"
# shellcheck disable=SC2086
npm install --prefix "$dir" --no-audit --no-fund --silent $want
echo "$want" > "$dir/.installed"
