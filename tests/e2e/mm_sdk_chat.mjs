// One round of chats through the official openai npm SDK (v6), for mm_sdk_test.py.
// stdin: {"base_url", "model", "cases": [{"label", "messages", "extra"}]}; the cases run
// concurrently (the server sees them in flight together); stdout: one JSON array of
// {"label", "ids", "prompt_tokens"} or {"label", "error"}. Usage: node mm_sdk_chat.mjs NPM_DIR
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';

const require = createRequire(resolvePath(process.argv[2]) + '/');
const { OpenAI } = require('openai');
const spec = JSON.parse(readFileSync(0, 'utf8'));
const client = new OpenAI({ baseURL: spec.base_url, apiKey: 'unused', maxRetries: 0, timeout: 300_000 });

async function chat(c) {
  try {
    // vLLM's extra parameters (return_tokens_as_token_ids, cache_salt) go in the body as the
    // SDK's users send them.
    const r = await client.chat.completions.create({
      model: spec.model, messages: c.messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 1,
      ...c.extra,
    });
    const ids = r.choices[0].logprobs.content.map((t) => Number(t.token.split(':')[1]));
    return { label: c.label, ids, prompt_tokens: r.usage.prompt_tokens, object: r.object };
  } catch (e) {
    return { label: c.label, error: String(e) };
  }
}

console.log(JSON.stringify(await Promise.all(spec.cases.map(chat))));
