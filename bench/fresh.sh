#!/usr/bin/env bash
# Fresh text, one-shot, one core: what a service meets. For each held-out text (a 2 MiB
# slice from the middle of build/held-out/*.txt, never used for tuning) and encoding:
# tokd as a user runs it — the wall time of one `tokd count --threads 1 < FILE` process,
# minus the start-up (`tokd count` of an empty text), median of 3 — beside quicktok's own
# figure, the fastest of 5 passes in process after a warm-up pass (its bench_file), run
# alternately on the same machine. Prints MB/s and tokd / quicktok.
# Usage: bench/fresh.sh build/tokd QUICKTOK_BENCH QUICKTOK_DATA [encodings...]
set -eu
tokd=$1 qt=$2 qt_data=$3
shift 3
encodings=${*:-cl100k_base o200k_base}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import sys
for name in ["en", "code", "ja", "zh", "ru"]:
    b = open(f"build/held-out/{name}.txt", "rb").read()
    start = 3 << 20
    while b[start] & 0xC0 == 0x80:
        start += 1
    end = start + (2 << 20)
    while end < len(b) and b[end] & 0xC0 == 0x80:
        end += 1
    open(f"{sys.argv[1]}/{name}.txt", "wb").write(b[start:end])
PY
wall() {  # seconds of one process: tokd count of stdin from $2
  python3 -c "
import subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], stdin=open('$2', 'rb'), stdout=subprocess.DEVNULL, check=True)
print(time.perf_counter() - t)" "$tokd" count -e "$1" --threads 1
}
median3() { sort -n | sed -n 2p; }
echo "| encoding | text | tokd one-shot MB/s | quicktok best MB/s | tokd / quicktok |"
echo "|---|---|---:|---:|---:|"
for enc in $encodings; do
  for f in en code ja zh ru; do
    start=$(for i in 1 2 3; do wall "$enc" /dev/null; done | median3)
    t=$(for i in 1 2 3; do wall "$enc" "$dir/$f.txt"; done | median3)
    q=$("$qt" "$dir/$f.txt" "$enc" "$qt_data" | grep -o '[0-9.]* MB/s' | cut -d' ' -f1)
    python3 -c "
mb = $(stat -c %s "$dir/$f.txt") / 1e6
tokd = mb / max($t - $start, 1e-6)
print(f'| $enc | $f | {tokd:.1f} | {$q:.1f} | {tokd / $q:.2f}x |')"
  done
done
