#!/usr/bin/env node
// Regenerates vocab/*.tiktoken from the npm package `tiktoken` (encoders/*.json).
//
// Usage: node vocab/convert.mjs NODE_MODULES_DIR OUT_DIR
//
// The npm package stores ranks as "! OFFSET TOKEN_B64 TOKEN_B64 ..." (token i of a
// segment has rank OFFSET+i). Written out as "TOKEN_B64 RANK" lines in ascending rank
// order they are byte-identical to OpenAI's published .tiktoken files, which
// vocab/SHA256SUMS pins (`make vocab-check` verifies).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [modules, outDir] = process.argv.slice(2);
if (!modules || !outDir) {
  console.error("usage: node vocab/convert.mjs NODE_MODULES_DIR OUT_DIR");
  process.exit(2);
}

for (const name of ["r50k_base", "p50k_base", "cl100k_base", "o200k_base"]) {
  const enc = JSON.parse(readFileSync(join(modules, "tiktoken/encoders", `${name}.json`), "utf8"));
  const items = enc.bpe_ranks.split(/\s+/).filter((s) => s.length > 0);
  const ranked = [];
  for (let i = 0; i < items.length; ) {
    if (items[i] !== "!") throw new Error(`${name}: expected '!' at item ${i}`);
    let rank = Number.parseInt(items[i + 1], 10);
    i += 2;
    while (i < items.length && items[i] !== "!") ranked.push([items[i++], rank++]);
  }
  ranked.sort((a, b) => a[1] - b[1]);
  writeFileSync(join(outDir, `${name}.tiktoken`), ranked.map(([t, r]) => `${t} ${r}\n`).join(""));
  console.log(`${name}: ${ranked.length} ranks`);
}
