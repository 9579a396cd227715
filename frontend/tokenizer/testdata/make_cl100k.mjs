// Builds a full-size Kimi-format tokenizer directory from the complete cl100k_base ranks
// shipped by npm `tiktoken`, and records tiktoken's own encodes (OpenAI's Rust core,
// compiled to WASM) of a corpus under Kimi's pre-tokenizer regex.
//
// usage: node make_cl100k.mjs <node_modules/tiktoken> <kimi tokenizer dir> <corpus.jsonl> <out dir>
//   The Kimi directory supplies the special-token names at their slot offsets.
// writes: <out>/tiktoken.model, tokenizer_config.json, generation_config.json,
//         expected.jsonl ({text, ids, ids_ordinary} per corpus line)
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

import { KIMI_PAT } from "./kimi_pattern.mjs";

const [pkgDir, kimiDir, corpusPath, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: node make_cl100k.mjs <tiktoken pkg dir> <kimi tokenizer dir> <corpus.jsonl> <out dir>");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(pkgDir), "package.json"));
const { Tiktoken } = require("./tiktoken.cjs");
const cl100k = require("./encoders/cl100k_base.json");

// npm's compact rank format: "<skip> <first rank> <base64> <base64> ..." per line.
const lines = [];
for (const line of cl100k.bpe_ranks.split("\n")) {
  const parts = line.split(" ");
  if (parts.length < 2) continue;
  const offset = Number(parts[1]);
  parts.slice(2).forEach((tok, i) => lines.push([offset + i, tok]));
}
lines.sort((a, b) => a[0] - b[0]);
lines.forEach(([rank], i) => {
  if (rank !== i) throw new Error(`cl100k ranks are not dense at ${i}`);
});
const numBase = lines.length;
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, "tiktoken.model"), lines.map(([r, t]) => `${t} ${r}\n`).join(""));

// Special names moved from the small directory's slots to cl100k's.
const smallSpecial = JSON.parse(fs.readFileSync(path.join(kimiDir, "special_tokens.json"), "utf8"));
const smallConfig = JSON.parse(fs.readFileSync(path.join(kimiDir, "tokenizer_config.json"), "utf8"));
const shift = numBase - smallSpecial.num_base_tokens;
const config = { ...smallConfig, added_tokens_decoder: {} };
for (const [id, v] of Object.entries(smallConfig.added_tokens_decoder)) {
  config.added_tokens_decoder[String(Number(id) + shift)] = v;
}
fs.writeFileSync(path.join(outDir, "tokenizer_config.json"), JSON.stringify(config, null, 1));
fs.writeFileSync(path.join(outDir, "generation_config.json"),
                 JSON.stringify({ eos_token_id: smallSpecial.im_end_token_id + shift }));
const specials = {};
for (const t of smallSpecial.tokens) specials[t.content] = t.id + shift;

const enc = new Tiktoken(cl100k.bpe_ranks, specials, KIMI_PAT);
const out = [];
for (const line of fs.readFileSync(corpusPath, "utf8").split("\n")) {
  if (!line) continue;
  const text = JSON.parse(line);
  out.push(JSON.stringify({
    text,
    ids: Array.from(enc.encode(text, "all")),
    ids_ordinary: Array.from(enc.encode_ordinary(text)),
  }));
}
enc.free();
fs.writeFileSync(path.join(outDir, "expected.jsonl"), out.join("\n") + "\n");
console.log(`wrote ${numBase} base tokens and ${out.length} reference encodes to ${outDir}`);
