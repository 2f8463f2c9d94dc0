#!/usr/bin/env node
// Converts a tokd vocabulary (manifest + .tiktoken) into a HuggingFace tokenizer.json:
// byte-level BPE whose merges are recovered from the ranks the usual way (a token's merge
// is the pair BPE reaches when only lower ranks may merge), Split pre-tokenizer with the
// encoding's regex, and ignore_merges so whole-word hits behave like tiktoken's.
// Usage: node bench/hf_from_tiktoken.mjs vocab/cl100k_base.manifest OUT.json
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const [manifestPath, outPath] = process.argv.slice(2);
const manifest = {};
const special = [];
for (const line of readFileSync(manifestPath, "utf8").split("\n")) {
  if (!line || line.startsWith("#")) continue;
  const sp = line.indexOf(" ");
  const key = line.slice(0, sp), val = line.slice(sp + 1);
  if (key === "special") {
    const last = val.lastIndexOf(" ");
    special.push([val.slice(0, last), Number(val.slice(last + 1))]);
  } else manifest[key] = val;
}
const ranks = new Map();
const tokens = [];
for (const line of readFileSync(join(dirname(manifestPath), manifest.ranks), "utf8").split("\n")) {
  if (!line) continue;
  const [b64, r] = line.split(" ");
  const bytes = Buffer.from(b64, "base64");
  ranks.set(bytes.toString("latin1"), Number(r));
  tokens.push([bytes, Number(r)]);
}

// GPT-2's reversible byte -> printable character map
const printable = [];
for (let b = 33; b <= 126; b++) printable.push(b);
for (let b = 161; b <= 172; b++) printable.push(b);
for (let b = 174; b <= 255; b++) printable.push(b);
const byteChar = new Array(256);
let extra = 0;
for (let b = 0; b < 256; b++)
  byteChar[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
const show = (bytes) => Array.from(bytes, (b) => byteChar[b]).join("");

function mergeParts(bytes, maxRank) {
  let parts = Array.from(bytes, (b) => Buffer.from([b]));
  for (;;) {
    let best = -1, bestRank = Infinity;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = ranks.get(Buffer.concat([parts[i], parts[i + 1]]).toString("latin1"));
      if (r !== undefined && r < maxRank && r < bestRank) (bestRank = r), (best = i);
    }
    if (best < 0) return parts;
    parts.splice(best, 2, Buffer.concat([parts[best], parts[best + 1]]));
  }
}

const vocab = {};
const merges = [];
for (const [bytes, r] of tokens) {
  vocab[show(bytes)] = r;
  if (bytes.length < 2) continue;
  const parts = mergeParts(bytes, r);
  if (parts.length === 2) merges.push(`${show(parts[0])} ${show(parts[1])}`);
}
const tokenizer = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: special.map(([content, id]) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  })),
  normalizer: null,
  pre_tokenizer: {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: manifest.pattern }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  },
  post_processor: null,
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: {
    type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
    end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, ignore_merges: true,
    vocab, merges,
  },
};
writeFileSync(outPath, JSON.stringify(tokenizer));
console.error(`${outPath}: ${tokens.length} tokens, ${merges.length} merges`);
