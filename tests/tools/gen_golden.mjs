#!/usr/bin/env node
// Writes tests/data/golden/<encoding>/<file>.ids with the reference tokenizer, npm
// `tiktoken` (the WASM build of OpenAI's Rust core). Run through tests/tools/gen_golden.sh,
// which installs the pinned version first.
//
// For every corpus file and encoding:
//   <file>.ids      encode_ordinary(text)             (special-token text is ordinary)
//   <file>.all.ids  encode(text, allowed_special="all") (only for files with "special")
// Format: ids separated by single spaces, then a newline, exactly what `tokd encode` prints.
import { readFileSync, writeFileSync, mkdirSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createRequire } from "node:module";

const [modules, dataDir] = process.argv.slice(2);
const require = createRequire(resolve(modules, "x.js"));
const { get_encoding } = require("tiktoken");
const encodings = ["r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base"];
const corpus = join(dataDir, "corpus");
const files = readdirSync(corpus).filter((f) => f.endsWith(".txt")).sort();

for (const name of encodings) {
  const enc = get_encoding(name);
  const out = join(dataDir, "golden", name);
  mkdirSync(out, { recursive: true });
  for (const f of files) {
    const text = readFileSync(join(corpus, f), "utf8");
    writeFileSync(join(out, `${f}.ids`), Array.from(enc.encode_ordinary(text)).join(" ") + "\n");
    if (f.includes("special"))
      writeFileSync(join(out, `${f}.all.ids`), Array.from(enc.encode(text, "all")).join(" ") + "\n");
  }
  enc.free();
  console.log(`${name}: ${files.length} files`);
}

// Cross-check: the native binding (npm tiktoken-node, an older build of the same Rust core)
// must agree on every ordinary file for the encodings it has (it lacks o200k_base).
const tiktokenNode = require("tiktoken-node");
let checked = 0;
for (const name of ["r50k_base", "p50k_base", "p50k_edit", "cl100k_base"]) {
  const enc = tiktokenNode.getEncoding(name);
  for (const f of files.filter((f) => !f.includes("special"))) {
    const got = enc.encode(readFileSync(join(corpus, f), "utf8")).join(" ") + "\n";
    if (got !== readFileSync(join(dataDir, "golden", name, `${f}.ids`), "utf8")) {
      console.error(`tiktoken-node disagrees with tiktoken on ${name} ${f}`);
      process.exit(1);
    }
    checked++;
  }
}
console.log(`tiktoken-node agrees on all ${checked} ordinary files`);
