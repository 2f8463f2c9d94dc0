#!/usr/bin/env python3
"""Assembles the held-out benchmark texts: 8 MiB each of Japanese, Chinese, Russian,
English and source code, from text that ships with Debian 12 and that tokd was never tuned
on (the bench/data files come from licence texts, Python modules and translated messages;
these do not):

  ja.txt     Japanese: the manual pages of manpages-ja and manpages-ja-dev
  zh.txt     Chinese: the manual pages of manpages-zh (zh_CN, then zh_TW)
  ru.txt     Russian: the manual pages of manpages-ru and manpages-ru-dev
  en.txt     English: the English manual pages of every installed package (man1-man8)
  code.txt   source code: the C headers in /usr/include

Manual pages are roff source: requests and escapes are stripped, so what is left is their
prose (translated pages keep some English: option names, commands, untranslated parts;
the script prints the share of non-ASCII characters). Files are taken in sorted order and
cut at 8 MiB at a character boundary, so a machine with the same packages gets the same
bytes. The packages are installed by `tools/deps.sh bench` (make bench does).

Usage: bench/held_out.py OUT_DIR
"""
import glob
import gzip
import os
import re
import sys

SIZE = 8 << 20

ESCAPES = [(re.compile(r"\\f(\[[^]]*\]|\(..|.)"), ""), (re.compile(r"\\s[+-]?\d"), ""),
           (re.compile(r"\\\((em|en)"), "\u2014"), (re.compile(r"\\\(aq"), "'"),
           (re.compile(r"\\\((lq|rq|dq)"), '"'), (re.compile(r"\\\(.."), ""),
           (re.compile(r"\\\*\(..|\\\*\[[^]]*\]|\\\*."), ""), (re.compile(r"\\[-&|^%]"), lambda m: "-" if m.group(0) == "\\-" else ""),
           (re.compile(r"\\e"), lambda m: "\\"), (re.compile(r'\\"'), "")]
KEEP = {"SH", "SS", "B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "TP", "IP", "Nm", "Nd", "Sh", "Ss", "Fl", "Ar"}


def roff_text(src):
    out = []
    for line in src.splitlines():
        if line.startswith((".", "'")):
            parts = line[1:].split(None, 1)
            if not parts or parts[0] not in KEEP or len(parts) < 2:
                continue
            line = parts[1].replace('"', "")
        for pat, rep in ESCAPES:
            line = pat.sub(rep, line)
        out.append(line)
    return "\n".join(out) + "\n"


def man_pages(*dirs):
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "man*", "*.gz"))):
            try:
                yield roff_text(gzip.open(path).read().decode("utf-8", "replace"))
            except (OSError, EOFError):
                continue


def headers():
    for path in sorted(glob.glob("/usr/include/**/*.h", recursive=True)):
        try:
            yield open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError):
            continue


def write(out_dir, name, texts):
    data, size = [], 0
    for t in texts:
        b = t.encode("utf-8")
        data.append(b)
        size += len(b)
        if size >= SIZE:
            break
    blob = b"".join(data)
    if len(blob) < SIZE:
        sys.exit(f"held_out: only {len(blob)} bytes for {name} (is tools/deps.sh bench installed?)")
    text = blob[:SIZE].decode("utf-8", "ignore")  # do not end mid-character
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
        f.write(text)
    non_ascii = sum(1 for c in text if ord(c) > 127) / max(len(text), 1)
    print(f"held_out: {name}: {len(text.encode())} bytes, {non_ascii:.0%} of characters non-ASCII")


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    m = "/usr/share/man"
    write(out_dir, "ja.txt", man_pages(f"{m}/ja"))
    write(out_dir, "zh.txt", man_pages(f"{m}/zh_CN", f"{m}/zh_TW"))
    write(out_dir, "ru.txt", man_pages(f"{m}/ru"))
    write(out_dir, "en.txt", man_pages(m))
    write(out_dir, "code.txt", headers())


if __name__ == "__main__":
    main()
