#!/bin/sh
# Regenerates the golden vectors under tests/data/golden with the reference tokenizer.
# Needs node and npm (the npm registry is the only network access it uses).
#   tests/tools/gen_golden.sh            # from the repository root
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ref=${TOKD_REF_DIR:-$root/build/ref}
"$here/install_ref.sh" "$ref"
node "$here/gen_corpus.mjs" "$root/tests/data/corpus"
node "$here/gen_golden.mjs" "$ref/node_modules" "$root/tests/data"
