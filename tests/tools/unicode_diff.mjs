#!/usr/bin/env node
// Differential sweep over Unicode: for every code point in planes 0-3 and 14 (surrogates
// excepted), encodes a line that puts it next to letters, digits and spaces, with tokd and
// with npm tiktoken, and lists the code points whose tokens differ. This is how the
// README's "Unicode version" difference was measured.
// Usage: node tests/tools/unicode_diff.mjs build/tokd build/ref [ENCODING...]
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const [tokd, ref, ...encs] = process.argv.slice(2);
const require = createRequire(resolve(ref, "node_modules", "x.js"));
const { get_encoding } = require("tiktoken");
const encodings = encs.length ? encs : ["cl100k_base", "o200k_base"];
const planes = [[0x0, 0xffff], [0x10000, 0x3ffff], [0xe0000, 0xeffff]];
const line = (c) => { const s = String.fromCodePoint(c); return `x${s}X${s}1${s} ${s}${s}\n`; };
const CHUNK = 1024;

for (const name of encodings) {
  const enc = get_encoding(name);
  const tokdIds = (text) => execFileSync(tokd, ["encode", "--encoding", name], { input: text })
    .toString().trim().split(/\s+/).filter(Boolean).map(Number);
  const same = (text) => {
    const a = tokdIds(text), b = Array.from(enc.encode_ordinary(text));
    return a.length === b.length && a.every((v, i) => v === b[i]);
  };
  const bad = [];
  for (const [lo, hi] of planes) {
    for (let start = lo; start <= hi; start += CHUNK) {
      const cps = [];
      for (let c = start; c < Math.min(start + CHUNK, hi + 1); c++) if (c < 0xd800 || c > 0xdfff) cps.push(c);
      if (same(cps.map(line).join(""))) continue;
      // narrow down: halves until single code points
      const stack = [cps];
      while (stack.length) {
        const part = stack.pop();
        if (same(part.map(line).join(""))) continue;
        if (part.length === 1) { bad.push(part[0]); continue; }
        stack.push(part.slice(0, part.length >> 1), part.slice(part.length >> 1));
      }
    }
  }
  bad.sort((a, b) => a - b);
  const ranges = [];
  for (const c of bad) {
    const last = ranges[ranges.length - 1];
    if (last && last[1] === c - 1) last[1] = c; else ranges.push([c, c]);
  }
  const hex = (c) => "U+" + c.toString(16).toUpperCase().padStart(4, "0");
  console.log(`${name}: ${bad.length} code points differ` + (ranges.length ? ":" : ""));
  for (const [a, b] of ranges) console.log(`  ${hex(a)}${a === b ? "" : ".." + hex(b)}`);
  enc.free();
}
