// The tiktoken half of bench_tokenizer: times npm tiktoken (OpenAI's Rust core compiled to
// WASM) on the same corpus and work as the C++ half, single-threaded, and prints one JSON
// line {mode: MB/s, ...}.
//
// usage: node bench_tiktoken.mjs <node_modules/tiktoken> <kimi tokenizer dir> <corpus.jsonl> <repeat> <trials>
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const { KIMI_PAT } = await import(path.join(here, "../../frontend/tokenizer/testdata/kimi_pattern.mjs"));

const [pkgDir, tokDir, corpusPath, repeatArg, trialsArg] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(pkgDir), "package.json"));
const { Tiktoken } = require("./tiktoken.cjs");
const cl100k = require("./encoders/cl100k_base.json");

// The same 256 special names the C++ side loads.
const numBase = fs.readFileSync(path.join(tokDir, "tiktoken.model"), "utf8").split("\n").filter(Boolean).length;
const config = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8"));
const specials = {};
for (let id = numBase; id < numBase + 256; ++id) {
  const named = config.added_tokens_decoder[String(id)];
  specials[named ? named.content : `<|reserved_token_${id}|>`] = id;
}
const enc = new Tiktoken(cl100k.bpe_ranks, specials, KIMI_PAT);

const docs = fs.readFileSync(corpusPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const repeat = Number(repeatArg);
const trials = Number(trialsArg);
const big = docs.join("\n").repeat(repeat);
const bytesDocs = docs.reduce((n, d) => n + Buffer.byteLength(d, "utf8"), 0) * repeat;
const bytesBig = Buffer.byteLength(big, "utf8");

function best(fn, bytes) {
  let bestSec = Infinity;
  let tokens = 0;
  for (let t = 0; t < trials; ++t) {
    // Process CPU time (like the C++ side); it includes node's helper threads, which are
    // idle here apart from GC.
    const start = process.cpuUsage();
    tokens = fn();
    const used = process.cpuUsage(start);
    bestSec = Math.min(bestSec, (used.user + used.system) / 1e6);
  }
  return { mbps: bytes / 1e6 / bestSec, tokens };
}
const perDoc = (encode) => () => {
  let n = 0;
  for (let r = 0; r < repeat; ++r) for (const d of docs) n += encode(d).length;
  return n;
};
best(perDoc((d) => enc.encode_ordinary(d)), bytesDocs);  // warm-up
const result = {
  ordinary_docs: best(perDoc((d) => enc.encode_ordinary(d)), bytesDocs),
  ordinary_one_text: best(() => enc.encode_ordinary(big).length, bytesBig),
  kimi_docs: best(perDoc((d) => enc.encode(d, "all")), bytesDocs),
};
enc.free();
console.log(JSON.stringify(result));
