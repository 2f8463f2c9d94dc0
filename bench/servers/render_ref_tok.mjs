// The tokenizer half of bench/servers/render_ref.py: Hugging Face's tokenizers (npm, the same
// Rust core as Python's `tokenizers`), one JSON string per input line -> one JSON id list.
// usage: node bench/servers/render_ref_tok.mjs REF_DIR TOKENIZER_JSON
import path from "node:path";
import readline from "node:readline";
import { createRequire } from "node:module";

const [refDir, file] = process.argv.slice(2);
const require = createRequire(path.resolve(refDir, "package.json"));
const { Tokenizer } = require("tokenizers");
const tk = Tokenizer.fromFile(file);
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  const enc = await tk.encode(JSON.parse(line), null, { addSpecialTokens: false });
  process.stdout.write(JSON.stringify(Array.from(enc.getIds())) + "\n");
}
