#!/usr/bin/env node
// The chart the README shows, from the text `node bench/core.mjs` prints (make bench saves
// it to build/bench-core.txt): MB/s per file, a group per encoding or model and file, a bar
// per tool. Plain SVG, no plotting dependency.
// Usage: node bench/chart.mjs build/bench-core.txt bench/core.svg
import { readFileSync, writeFileSync } from "node:fs";

const [input, output] = process.argv.slice(2);
const tools = [["tokd", "#2f5fd0", "tokd"], ["quicktok", "#8a6d3b", "quicktok"],
  ["native", "#d9822b", "tiktoken (native)"], ["wasm", "#e8b86d", "tiktoken (WASM)"], ["hf", "#7a9a5b", "HF tokenizers"]];
const groups = new Map();
for (const line of readFileSync(input, "utf8").split("\n")) {
  const f = line.trim().split(/\s+/);
  if (f.length < 4 || !/\.txt$/.test(f[1]) || /^run_/.test(f[1])) continue;
  if (!["cl100k_base", "o200k_base", "llama3", "llama3_1", "qwen3"].includes(f[0])) continue;
  const enc = f[0] === "llama3_1" ? "llama3" : f[0];
  const key = `${enc} ${f[1].replace(/\.txt$/, "")}`;
  const g = groups.get(key) || {};
  for (let i = 2; i + 1 < f.length; i++) {
    const v = Number(f[i + 1]);
    if (tools.some(([t]) => t === f[i]) && Number.isFinite(v)) g[f[i]] = Math.max(g[f[i]] ?? 0, v);
  }
  groups.set(key, g);
}
const entries = [...groups.entries()];
const max = Math.max(1, ...entries.flatMap(([, g]) => tools.map(([t]) => g[t] ?? 0)));
const rowH = 13, gap = 9, left = 170, width = 900, plotW = width - left - 50;
let y = 40;
const parts = [];
for (const [name, g] of entries) {
  const present = tools.filter(([t]) => g[t] != null);
  parts.push(`<text x="${left - 8}" y="${y + (present.length * rowH) / 2 + 4}" text-anchor="end">${name}</text>`);
  for (const [t, color] of present) {
    const w = Math.max(1, (g[t] / max) * plotW);
    parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 3}" fill="${color}"/>`);
    parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + rowH - 4}" class="v">${g[t].toFixed(1)}</text>`);
    y += rowH;
  }
  y += gap;
}
const legend = tools.map(([, c, label], i) => `<rect x="${left + i * 140}" y="12" width="12" height="12" fill="${c}"/>` +
  `<text x="${left + i * 140 + 16}" y="22">${label}</text>`).join("");
writeFileSync(output, `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 16}" font-family="sans-serif" font-size="12">` +
  `<style>.v{font-size:10px;fill:#444}</style><rect width="100%" height="100%" fill="#fff"/>${legend}${parts.join("")}` +
  `<text x="${left}" y="${y + 8}" class="v">MB/s, one core, in process (make bench); higher is better</text></svg>\n`);
console.log(`chart: ${output} (${entries.length} groups)`);
