// Node's http server around the native tiktoken binding (npm tiktoken-node), cl100k_base.
// POST /encode {"text": "..."} -> {"tokens": [...], "count": N}. One worker per core
// (node:cluster), since one Node process uses one core for JavaScript.
// Usage: node node_tiktoken.js PORT REF_NODE_MODULES WORKERS
const cluster = require("node:cluster");
const http = require("node:http");
const path = require("node:path");
const [port, modules, workers] = process.argv.slice(2);

if (cluster.isPrimary) {
  for (let i = 0; i < Number(workers); i++) cluster.fork();
} else {
  const { getEncoding } = require(path.resolve(modules, "tiktoken-node"));
  const enc = getEncoding("cl100k_base");
  http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let text;
      try {
        text = JSON.parse(Buffer.concat(chunks).toString("utf8")).text;
      } catch {
        res.writeHead(400).end("bad json");
        return;
      }
      const tokens = enc.encode(text);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ count: tokens.length, tokens }));
    });
  }).listen(Number(port), "127.0.0.1");
}
