#!/usr/bin/env bash
# The README's Python install, as a user runs it: a fresh venv and `pip install ./python`,
# offline (--no-index: PyPI is never asked), for Debian's python3 and for the python3 first
# on PATH when that is another build (pyenv here: no `wheel` package, which once failed with
# "invalid command 'bdist_wheel'"); then the installed module encodes.
# Usage: tests/python_install_test.sh [PYTHON...]
set -u
cd "$(dirname "$0")/.."
pythons=("$@")
if [ ${#pythons[@]} -eq 0 ]; then
  pythons=(/usr/bin/python3)
  other=$(command -v python3 || true)
  if [ -n "$other" ] && [ "$(readlink -f "$other")" != "$(readlink -f /usr/bin/python3)" ]; then
    # pyenv's shim resolves to the interpreter itself
    real=$("$other" -c 'import sys; print(sys.executable)' 2>/dev/null || true)
    [ -n "$real" ] && [ "$(readlink -f "$real")" != "$(readlink -f /usr/bin/python3)" ] && pythons+=("$real")
  fi
fi
passed=0 failed=0
for py in "${pythons[@]}"; do
  dir=$(mktemp -d)
  what="$py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"
  if "$py" -m venv "$dir/venv" >"$dir/log" 2>&1 &&
     "$dir/venv/bin/python" -m pip install --no-index -q ./python >>"$dir/log" 2>&1 &&
     (cd /tmp && "$dir/venv/bin/python" -c '
import tokd
enc = tokd.get_encoding("cl100k_base")
assert enc.encode("hello world") == [15339, 1917], enc.encode("hello world")
assert tokd.__file__.startswith("'"$dir"'"), tokd.__file__
') >>"$dir/log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: pip install ./python with $what"
    tail -20 "$dir/log"
  fi
  rm -rf "$dir"
done
echo "python-install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
