#!/bin/sh
# The C example (examples/encode.c) built as a user would, through pkg-config against a
# staged `make install`, linked to the shared libtokd and run; and the library's contract:
# a versioned SONAME and only the public tok_ API exported.
#   tests/example_test.sh STAGE PREFIX "CC [FLAGS]"
set -eu
stage=$1 prefix=$2 cc=$3
lib=$stage$prefix/lib
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
flags=$(PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage pkg-config --cflags --libs tokd)
check "pkg-config gives the staged header and library" "echo '$flags' | grep -q -- '-I$stage$prefix/include/tokd' && echo '$flags' | grep -q -- '-ltokd'"
out=$(dirname "$stage")/example
# shellcheck disable=SC2086
$cc examples/encode.c $flags -o "$out"
check "linked to the shared library" "readelf -d '$out' | grep -q 'NEEDED.*libtokd.so.0'"
run=$(LD_LIBRARY_PATH=$lib "$out" "hello world")
check "hello world -> 15339 1917 (cl100k_base)" "echo '$run' | sed -n 1p | grep -qx '15339 1917'"
check "and back" "echo '$run' | sed -n 3p | grep -qx 'hello world'"
run=$(printf 'Привет, 世界! 🎉' | LD_LIBRARY_PATH=$lib "$out")
want=$(printf 'Привет, 世界! 🎉' | LD_LIBRARY_PATH=$lib "$stage$prefix/bin/tokd" count)
count=$(echo "$run" | sed -n 2p) back=$(echo "$run" | sed -n 3p)
check "stdin, non-ASCII: the count tokd count gives ($want), decoded back" '[ "$count" = "$want tokens" ] && [ "$back" = "Привет, 世界! 🎉" ]'
set +e
printf '\377bad' | LD_LIBRARY_PATH=$lib "$out" 2>"$out.err" >/dev/null
st=$?
set -e
check "invalid UTF-8: an error naming the byte, exit 1" "[ $st = 1 ] && grep -q 'byte 0' '$out.err'"
check "SONAME libtokd.so.0" "readelf -d '$lib/libtokd.so' | grep -q 'SONAME.*libtokd.so.0'"
check "exports the public API" "nm -D --defined-only '$lib/libtokd.so' | grep -q ' T tok_encode$'"
check "exports nothing internal" "! nm -D --defined-only '$lib/libtokd.so' | awk '{print \$3}' | grep -v '^_' | grep -qv '^tok_[a-z]'"
# the static library cannot hide its internal names, so they carry the prefix tok__ (names
# beginning with _ are the toolchain's: the sanitizers' __odr_asan.* and the like)
check "libtokd.a defines only tok_ names" "! nm -g --defined-only '$lib/libtokd.a' | awk 'NF == 3 {print \$3}' | grep -v '^_' | grep -qv '^tok_'"
check "tok_chat.h is installed beside tok.h" "test -f '$stage$prefix/include/tokd/tok_chat.h'"
check "static library and binary installed" "[ -f '$lib/libtokd.a' ] && [ -x '$stage$prefix/bin/tokd' ]"
echo "example: $pass passed, $fail failed"
[ "$fail" = 0 ]
