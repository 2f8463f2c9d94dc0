#!/usr/bin/env node
// Writes the generated part of the golden corpus (tests/data/corpus/gen_*.txt):
// adversarial and random texts from a fixed seed, so reruns give identical files.
// Usage: node tests/tools/gen_corpus.mjs tests/data/corpus
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
let seed = 0x2545f491;
const rand = () => {
  // xorshift32: deterministic across Node versions
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
};
const pick = (a) => a[Math.floor(rand() * a.length)];
const cp = (lo, hi) => String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
const write = (name, text) => writeFileSync(join(dir, `gen_${name}.txt`), text);

write("contractions", [
  "I'm you're HE'LL we'VE it'S they'D Don't CAN'T won't y'all 'tis ''s 's't 're",
  "O'Brien's cat's toy isn't hers; it's THEIRS'. Rock 'n' roll. 'quoted' \"double\"",
  "it’s (curly apostrophe) vs it's; L'ÉTÉ l'été Ł'S ΑΒ'S Ω's",
].join("\n") + "\n");

write("digits", [
  "1 12 123 1234 12345 123456 1234567 3.14159 1,000,000 -42 +7 1e10 0x1F 0b1010",
  "٣٤٥ ²³ ½ ¼ Ⅻ ⅻ ① ⑳ 𝟙𝟚𝟛 ১২৩ 一二三 ٠١٢٣٤٥٦٧٨٩ 2024-12-31T23:59:59Z",
  "v1.2.3-rc.4+build.5 IPv4 192.168.0.1 port:8080 50% 3/4 $9.99 €5 ¥1000",
].join("\n") + "\n");

const spaces = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029",
  "\u000b", "\u000c", "\u0085", "\u2003", "\u200b", "\ufeff", " \n ", "\n\n\n", "\t\t"];
let ws = "";
for (let i = 0; i < 400; i++) ws += pick(spaces) + pick(["a", "B", "1", ".", "é", "中", "", "", "x y"]);
write("whitespace", ws);

// Long runs: the inputs that make naive merge loops quadratic.
write("run_a", "a".repeat(20000));
write("run_space", " ".repeat(10000) + "x" + " ".repeat(5000));
write("run_newline", "\n".repeat(4000) + "end\r\n".repeat(100));
write("run_underscore", "_".repeat(10000) + "=".repeat(3000) + "-".repeat(3000));
write("run_digits", "1".repeat(5000) + " " + "9876543210".repeat(300));
write("run_emoji", "🎉".repeat(1000) + "é".repeat(2000) + "中".repeat(2000));
write("run_mixed", "ab".repeat(4000) + " " + "abc".repeat(3000) + " " + "xyz\u0301".repeat(1000));
const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
let longB64 = "";
for (let i = 0; i < 12000; i++) longB64 += pick(b64.split(""));
write("run_base64", longB64 + "==\n");

// Random strings over character classes the patterns treat differently.
const ranges = [
  [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x3ff],
  [0x400, 0x4ff], [0x590, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff],
  [0x2000, 0x206f], [0x2070, 0x209f], [0x20a0, 0x20cf], [0x2100, 0x27bf], [0x3000, 0x30ff],
  [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xff00, 0xffef], [0x1d400, 0x1d7ff], [0x1f300, 0x1faff],
  [0x20000, 0x2a6df], [0x9, 0xd], [0xe000, 0xe0ff],
];
for (let f = 0; f < 12; f++) {
  let s = "";
  const n = 200 + Math.floor(rand() * 800);
  for (let i = 0; i < n; i++) {
    const r = pick(ranges);
    s += cp(r[0], r[1]);
  }
  write(`random_${String(f).padStart(2, "0")}`, s);
}

write("special", [
  "Hello<|endoftext|>world <|endoftext|> <|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
  "<|endofprompt|> < |endoftext| > <|endoftext <|endoftext|><|endoftext|>x",
  "<|im_start|>user<|im_end|> <|unknown|>",
].join("\n") + "\n");
