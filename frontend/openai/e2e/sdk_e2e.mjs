// End-to-end: the official `openai` npm SDK (v6) against k2_openai_test_server (real
// tokenizer, chat template and parsers of tests/data/models/demo-trained, fake engine),
// on loopback. Responses and SSE frames are validated against OpenAI's openapi.json with
// ajv (after the `nullable` shim). Usage: node sdk_e2e.mjs SERVER_BIN TEST_DATA_DIR NPM_DIR
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';

import { resolve as resolvePath } from 'node:path';
const [serverBin, dataDir, npmDir] = process.argv.slice(2).map((p) => resolvePath(p));
const require = createRequire(npmDir + '/');
const { OpenAI } = require('openai');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');

// --- OpenAI schema validation ----------------------------------------------------------
function shimNullable(node) {
  if (Array.isArray(node)) return node.map(shimNullable);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = shimNullable(v);
  if (out.nullable === true) {
    delete out.nullable;
    if (typeof out.type === 'string') {
      out.type = [out.type, 'null'];
      if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
      return out;
    }
    return { anyOf: [out, { type: 'null' }] };
  }
  return out;
}
const spec = JSON.parse(readFileSync(`${dataDir}/openai/openapi.json`, 'utf8'));
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addFormat('unixtime', true);
ajv.addSchema({ $id: 'openai.json', components: shimNullable(spec.components) });
const validators = {};
function validate(schemaName, value) {
  validators[schemaName] ??= ajv.compile({ $ref: `openai.json#/components/schemas/${schemaName}` });
  const ok = validators[schemaName](value);
  assert.ok(ok, `${schemaName}: ${ajv.errorsText(validators[schemaName].errors)}\n${JSON.stringify(value).slice(0, 600)}`);
}

// --- server ------------------------------------------------------------------------------
const API_KEY = 'test-key';
const server = spawn(serverBin, ['--model', `${dataDir}/models/demo-trained`, '--port', '0', '--api-key', API_KEY,
                                 '--served-model-name', 'demo', '--max-model-len', '512', '--step-us', '1000'],
                     { stdio: ['ignore', 'pipe', 'pipe'] });
let serverLog = '';
server.stderr.on('data', (d) => { serverLog += d; });
const port = await new Promise((resolve, reject) => {
  let buf = '';
  server.stdout.on('data', (d) => {
    buf += d;
    const m = buf.match(/LISTENING (\d+)/);
    if (m) resolve(Number(m[1]));
  });
  server.on('exit', (code) => reject(new Error(`server exited ${code}: ${serverLog}`)));
  setTimeout(() => reject(new Error('server did not start')), 20000);
});
const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ apiKey: API_KEY, baseURL, maxRetries: 0, timeout: 30000 });
const noThinking = { chat_template_kwargs: { thinking: false } };

// --- cases -------------------------------------------------------------------------------
const cases = [];
const test = (name, fn) => cases.push({ name, fn });

test('models list carries root and max_model_len', async () => {
  const page = await client.models.list();
  assert.equal(page.data[0].id, 'demo');
  assert.ok(page.data[0].root.endsWith('demo-trained'));
  assert.equal(page.data[0].max_model_len, 512);
  validate('ListModelsResponse', { object: 'list', data: page.data });
});

test('chat non-streaming with usage', async () => {
  const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }],
                                                   max_tokens: 6, ...noThinking });
  validate('CreateChatCompletionResponse', r);
  assert.equal(r.object, 'chat.completion');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 6);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 6);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('chat streaming: role first, usage chunk with empty choices', async () => {
  const stream = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }],
                                                        max_tokens: 5, stream: true,
                                                        stream_options: { include_usage: true }, ...noThinking });
  const chunks = [];
  for await (const c of stream) { validate('CreateChatCompletionStreamResponse', c); chunks.push(c); }
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 5);
  assert.equal(chunks.at(-2).choices[0].finish_reason, 'length');
  assert.ok(chunks.every((c) => c.id === chunks[0].id));
});

test('completions non-streaming and streaming', async () => {
  const r = await client.completions.create({ model: 'demo', prompt: 'Once upon a time', max_tokens: 4 });
  validate('CreateCompletionResponse', r);
  assert.equal(r.usage.completion_tokens, 4);
  const ids = await client.completions.create({ model: 'demo', prompt: [1, 2, 3, 300], max_tokens: 3 });
  assert.equal(ids.usage.prompt_tokens, 4);
  const stream = await client.completions.create({ model: 'demo', prompt: 'Once', max_tokens: 4, stream: true,
                                                   stream_options: { include_usage: true } });
  let text = '', usage = null;
  for await (const c of stream) {
    if (c.choices.length) {
      // OpenAI has no completion chunk schema; the response schema fits the chunk that finishes.
      if (c.choices[0].finish_reason) validate('CreateCompletionResponse', { ...c, usage: undefined });
      text += c.choices[0].text;
    }
    else usage = c.usage;
  }
  assert.ok(text.length > 0);
  assert.equal(usage.completion_tokens, 4);
});

test('n=2 gives two choices', async () => {
  const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }],
                                                   max_tokens: 3, n: 2, ...noThinking });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  assert.equal(r.usage.completion_tokens, 6);
  const c = await client.completions.create({ model: 'demo', prompt: ['a', 'b'], max_tokens: 2, n: 2 });
  assert.deepEqual(c.choices.map((x) => x.index), [0, 1, 2, 3]);
});

test('logprobs in chat and completions shape', async () => {
  const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }],
                                                   max_tokens: 4, logprobs: true, top_logprobs: 2, ...noThinking });
  validate('CreateChatCompletionResponse', r);
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 4);
  assert.equal(content[0].top_logprobs.length, 2);
  assert.ok(Array.isArray(content[0].bytes));
  const c = await client.completions.create({ model: 'demo', prompt: 'hello', max_tokens: 3, logprobs: 2 });
  validate('CreateCompletionResponse', c);
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 3);
  assert.equal(lp.token_logprobs.length, 3);
  assert.equal(lp.text_offset[0], 0);
  const ids = await client.completions.create({ model: 'demo', prompt: 'hello', max_tokens: 2, logprobs: 1,
                                                return_tokens_as_token_ids: true });
  assert.match(ids.choices[0].logprobs.tokens[0], /^token_id:\d+$/);
  const echo = await client.completions.create({ model: 'demo', prompt: 'hello', max_tokens: 2, echo: true, logprobs: 1 });
  assert.ok(echo.choices[0].text.startsWith('hello'));
  assert.equal(echo.choices[0].logprobs.token_logprobs[0], null);
});

test('prompt_logprobs in vLLM shape (choice for completions, response for chat)', async () => {
  const prompt = [300, 301, 302, 303];
  const c = await client.completions.create({ model: 'demo', prompt, max_tokens: 2, prompt_logprobs: 2 });
  validate('CreateCompletionResponse', c);
  const plp = c.choices[0].prompt_logprobs;
  assert.equal(plp.length, prompt.length);
  assert.equal(plp[0], null);
  for (let i = 1; i < plp.length; ++i) {
    const entry = plp[i][String(prompt[i])];
    assert.ok(entry, `position ${i} has its prompt token`);
    assert.equal(typeof entry.logprob, 'number');
    assert.ok(Number.isInteger(entry.rank));
    assert.equal(typeof entry.decoded_token, 'string');
    assert.ok(Object.keys(plp[i]).length >= 2 && Object.keys(plp[i]).length <= 3);
  }
  const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }],
                                                   max_tokens: 2, prompt_logprobs: 1, ...noThinking });
  validate('CreateChatCompletionResponse', r);
  assert.equal(r.prompt_logprobs[0], null);
  assert.ok(r.prompt_logprobs.length > 1);
  await assert.rejects(client.completions.create({ model: 'demo', prompt, stream: true, prompt_logprobs: 1 }),
                       (e) => e.status === 400);
});

test('stop strings: truncated, never partly streamed', async () => {
  const msg = [{ role: 'user', content: 'SCRIPT_TEXT' }];
  const r = await client.chat.completions.create({ model: 'demo', messages: msg, stop: ['STOP'], ...noThinking });
  assert.equal(r.choices[0].message.content, 'Hello world. ');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].stop_reason, 'STOP');
  const inc = await client.chat.completions.create({ model: 'demo', messages: msg, stop: ['STOP'],
                                                     include_stop_str_in_output: true, ...noThinking });
  assert.equal(inc.choices[0].message.content, 'Hello world. STOP');
  const stream = await client.chat.completions.create({ model: 'demo', messages: msg, stop: ['STOP'], stream: true,
                                                        ...noThinking });
  let text = '';
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? '';
    assert.ok(!/S$|ST$|STO$/.test(text), `partial stop string streamed: ${JSON.stringify(text)}`);
  }
  assert.equal(text, 'Hello world. ');
  const plain = await client.chat.completions.create({ model: 'demo', messages: msg, ...noThinking });
  assert.equal(plain.choices[0].message.content, 'Hello world. STOP here. The end.');
  assert.equal(plain.choices[0].finish_reason, 'stop');
});

test('seed is passed through and reproduces', async () => {
  const ask = (seed) => client.completions.create({ model: 'demo', prompt: 'seeded', max_tokens: 8, temperature: 1,
                                                    seed });
  const [a, b, c] = await Promise.all([ask(1234), ask(1234), ask(99)]);
  assert.equal(a.choices[0].text, b.choices[0].text);
  assert.notEqual(a.choices[0].text, c.choices[0].text);
});

const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city',
                                               parameters: { type: 'object', properties: { city: { type: 'string' } },
                                                             required: ['city'] } } }];
test('tools: parallel tool calls, non-streaming and streaming', async () => {
  const messages = [{ role: 'user', content: 'SCRIPT_TOOL weather in Paris and Oslo?' }];
  const r = await client.chat.completions.create({ model: 'demo', messages, tools, ...noThinking });
  validate('CreateChatCompletionResponse', r);
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.content, 'Let me check.');
  assert.deepEqual(m.tool_calls.map((t) => t.id), ['functions.get_weather:0', 'functions.get_weather:1']);
  assert.deepEqual(JSON.parse(m.tool_calls[1].function.arguments), { city: 'Oslo' });
  const runner = client.chat.completions.stream({ model: 'demo', messages, tools, ...noThinking });
  for await (const c of runner) validate('CreateChatCompletionStreamResponse', c);
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(final.choices[0].message.tool_calls.length, 2);
  assert.equal(final.choices[0].message.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments), { city: 'Paris' });
  // A second turn replays the calls and their results through the chat template.
  const follow = await client.chat.completions.create({ model: 'demo', max_tokens: 3, tools, ...noThinking, messages: [
    ...messages, m, { role: 'tool', tool_call_id: 'functions.get_weather:0', content: '18C' },
    { role: 'tool', tool_call_id: 'functions.get_weather:1', content: '9C' }] });
  assert.equal(follow.choices[0].finish_reason, 'length');
});

test('reasoning returned as reasoning_content and reasoning', async () => {
  const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'SCRIPT_THINK' }] });
  const m = r.choices[0].message;
  assert.equal(m.reasoning_content, 'The user wants a greeting.');
  assert.equal(m.reasoning, 'The user wants a greeting.');
  assert.equal(m.content, 'Hello there!');
});

async function expectStatus(promise, status, errorClass, match) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof errorClass, `expected ${errorClass.name}, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, status);
    assert.equal(e.error?.code, status, 'error.code is the integer status (vLLM)');
    assert.equal(typeof e.error?.message, 'string');
    if (match) assert.match(e.error.message, match);
    return;
  }
  assert.fail(`expected HTTP ${status}`);
}

test('errors as the SDK sees them', async () => {
  const bad = new OpenAI({ apiKey: 'wrong', baseURL, maxRetries: 0 });
  await expectStatus(bad.models.list(), 401, OpenAI.AuthenticationError);
  await expectStatus(client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }),
                     404, OpenAI.NotFoundError, /does not exist/);
  await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }],
                                                      temperature: -1 }), 400, OpenAI.BadRequestError);
  await expectStatus(client.completions.create({ model: 'demo', prompt: 'x', max_tokens: 100000 }), 400,
                     OpenAI.BadRequestError, /maximum context length is 512 tokens/);
  await expectStatus(client.completions.create({ model: 'demo', prompt: 'word '.repeat(600) }), 400,
                     OpenAI.BadRequestError, /maximum context length is 512 tokens/);
  await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }], tools,
                                                      tool_choice: { type: 'function', function: { name: 'nope' } } }),
                     400, OpenAI.BadRequestError, /nope/);
  await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }], n: 1000 }),
                     400, OpenAI.BadRequestError);
  await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }],
                                                      logprobs: true, top_logprobs: 50 }), 400, OpenAI.BadRequestError);
  await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'SCRIPT_FAIL' }] }),
                     500, OpenAI.InternalServerError);
  const raw = await fetch(`${baseURL}/chat/completions`, { method: 'POST', body: '{not json',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' } });
  assert.equal(raw.status, 400);
  const body = await raw.json();
  assert.equal(body.error.code, 400);
  assert.ok('param' in body.error && 'type' in body.error);
});

test('mid-stream failure raises in the SDK iterator', async () => {
  const stream = await client.chat.completions.create({ model: 'demo', stream: true, ...noThinking,
                                                        messages: [{ role: 'user', content: 'SCRIPT_FAIL' }] });
  await assert.rejects(async () => { for await (const _ of stream) { /* drain */ } }, (e) => e instanceof OpenAI.APIError);
});

test('health, version and metrics', async () => {
  const root = `http://127.0.0.1:${port}`;
  assert.equal((await fetch(`${root}/health`)).status, 200);
  assert.equal(typeof (await (await fetch(`${root}/version`)).json()).version, 'string');
  const metrics = await (await fetch(`${root}/metrics`)).text();
  for (const name of ['vllm:num_requests_running', 'vllm:prompt_tokens_total', 'vllm:generation_tokens_total',
                      'vllm:time_to_first_token_seconds_bucket', 'vllm:e2e_request_latency_seconds_count',
                      'vllm:prefix_cache_hits_total', 'vllm:kv_cache_usage_perc']) {
    assert.ok(metrics.includes(name), `metrics lack ${name}`);
  }
});

let failed = 0;
for (const { name, fn } of cases) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${(e.stack || String(e)).split('\n').slice(0, 6).join('\n     ')}`);
  }
}
server.kill('SIGTERM');
const code = await new Promise((resolve) => server.on('exit', (c) => resolve(c)));
if (code !== 0) { failed++; console.log(`FAIL server exit code ${code} after SIGTERM`); }
console.log(`${cases.length - failed + (code === 0 ? 0 : 1)}/${cases.length} passed`);
if (failed) console.log(serverLog.split('\n').filter((l) => / [EW] |error|warn/.test(l)).slice(-20).join('\n'));
process.exit(failed ? 1 : 0);
