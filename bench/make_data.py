#!/usr/bin/env python3
"""Assembles the benchmark corpus in bench/data/ from text that ships with Debian 12.

  prose_en.txt   English prose: the licence texts in /usr/share/common-licenses
  code.txt       source code: modules of Python's standard library (/usr/lib/python3.11)
  cjk.txt        Chinese: translated messages in /usr/share/locale/{zh_CN,ja,zh_TW} (the zh_CN
                 ones fill its 256 KB before the others come)
  ja.txt         Japanese: translated messages in /usr/share/locale/ja
  russian.txt    Russian: translated messages in /usr/share/locale/ru
  run_*.txt      long runs without a break (the superlinear case), two sizes each

The files are committed, so benchmarks do not depend on what a machine has installed;
this script only documents (and can redo) where they came from.
"""
import glob
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
LIMIT = 256 * 1024


def write(name, text):
    data = text.encode("utf-8")[:LIMIT]
    data = data.decode("utf-8", "ignore").encode("utf-8")  # do not end mid-character
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


lic = "/usr/share/common-licenses/"
write("prose_en.txt", "\n\n".join(open(lic + n, encoding="utf-8").read()
                                  for n in ["GPL-3", "GFDL-1.3", "Apache-2.0", "MPL-2.0",
                                            "LGPL-2.1", "Artistic", "CC0-1.0", "GPL-2"]))

py = "/usr/lib/python3.11/"
write("code.txt", "\n".join(open(py + n, encoding="utf-8").read()
                            for n in ["argparse.py", "textwrap.py", "json/decoder.py",
                                      "json/encoder.py", "heapq.py", "bisect.py", "shlex.py",
                                      "string.py", "tokenize.py", "dataclasses.py"]))


def mo_strings(path):
    data = open(path, "rb").read()
    magic, _, n, _, trans = struct.unpack("<IIIII", data[:20])
    if magic != 0x950412DE:
        return []
    res = []
    for i in range(n):
        length, off = struct.unpack("<II", data[trans + 8 * i: trans + 8 * i + 8])
        s = data[off: off + length].decode("utf-8", "ignore")
        if s and not s.startswith("Project-Id-Version"):
            res.append(s.replace("\x00", "\n"))
    return res


cjk = []
for lang in ["zh_CN", "ja", "zh_TW"]:
    for mo in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        cjk.extend(mo_strings(mo))
write("cjk.txt", "\n".join(cjk))

ja = []
for mo in sorted(glob.glob("/usr/share/locale/ja/LC_MESSAGES/*.mo")):
    ja.extend(mo_strings(mo))
write("ja.txt", "\n".join(ja))

ru = []
for mo in sorted(glob.glob("/usr/share/locale/ru/LC_MESSAGES/*.mo")):
    ru.extend(mo_strings(mo))
write("russian.txt", "\n".join(ru))

for n, label in [(100000, "100k"), (200000, "200k")]:
    write(f"run_a_{label}.txt", "a" * n)
    write(f"run_space_{label}.txt", " " * n)
