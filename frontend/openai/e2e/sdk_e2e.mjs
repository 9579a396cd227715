// End-to-end: the official `openai` npm SDK (v6) on loopback, against either
//  - k2_openai_test_server (real tokenizer, chat template and parsers of
//    tests/data/models/demo-trained, a fake engine whose SCRIPT_* prompts script failures and
//    exact outputs), or
//  - with --real, `k2serve serve` of the trained demo model itself (engine, worker, model):
//    the scripted cases give way to ones that hold for the real model's greedy output.
// Responses and SSE frames are validated against OpenAI's openapi.json with ajv (after the
// `nullable` shim). Usage: node sdk_e2e.mjs SERVER_BIN TEST_DATA_DIR NPM_DIR [--real]
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';

import { resolve as resolvePath } from 'node:path';
const REAL = process.argv.includes('--real');
const [serverBin, dataDir, npmDir] = process.argv.slice(2).filter((a) => a !== '--real').map((p) => resolvePath(p));
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
// The real model's tool prompts need more room than the fake engine's cases.
const MAX_LEN = REAL ? 1024 : 512;
const common = ['--port', '0', '--api-key', API_KEY, '--served-model-name', 'demo', '--max-model-len', String(MAX_LEN)];
const server = REAL
  ? spawn(serverBin, ['serve', `${dataDir}/models/demo-trained`, ...common, '--kv-cache-memory', String(64 << 20),
                      '--enable-auto-tool-choice', '--tool-call-parser', 'kimi_k2', '--reasoning-parser', 'kimi_k2'],
          { stdio: ['ignore', 'pipe', 'pipe'] })
  : spawn(serverBin, ['--model', `${dataDir}/models/demo-trained`, ...common, '--step-us', '1000'],
          { stdio: ['ignore', 'pipe', 'pipe'] });
let serverLog = '';
// The test server prints LISTENING <port>; k2serve logs its URL.
const listening = /LISTENING (\d+)|on http:\/\/127\.0\.0\.1:(\d+)/;
const port = await new Promise((resolve, reject) => {
  let buf = '';
  const scan = (d) => {
    buf += d;
    serverLog += d;
    const m = buf.match(listening);
    if (m) resolve(Number(m[1] ?? m[2]));
  };
  server.stdout.on('data', scan);
  server.stderr.on('data', scan);
  server.on('exit', (code) => reject(new Error(`server exited ${code}: ${serverLog}`)));
  setTimeout(() => reject(new Error('server did not start')), 60000);
});
const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ apiKey: API_KEY, baseURL, maxRetries: 0, timeout: 30000 });
const noThinking = { chat_template_kwargs: { thinking: false } };

// --- cases -------------------------------------------------------------------------------
const cases = [];
// where: 'both', 'fake' (scripted outputs of the fake engine) or 'real' (the demo model).
const test = (name, fn, where = 'both') => {
  if (where === 'both' || (where === 'real') === REAL) cases.push({ name, fn });
};
// Exact token counts need the model not to stop early (vLLM's ignore_eos).
const full = { ignore_eos: true };

test('models list carries root and max_model_len', async () => {
  const page = await client.models.list();
  assert.equal(page.data[0].id, 'demo');
  assert.ok(page.data[0].root.endsWith('demo-trained'));
  assert.equal(page.data[0].max_model_len, MAX_LEN);
  validate('ListModelsResponse', { object: 'list', data: page.data });
});

test('chat non-streaming with usage', async () => {
  const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }],
                                                   max_tokens: 6, ...full, ...noThinking });
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
                                                        max_tokens: 5, ...full, stream: true,
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
  const r = await client.completions.create({ model: 'demo', prompt: 'Once upon a time', max_tokens: 4, ...full });
  validate('CreateCompletionResponse', r);
  assert.equal(r.usage.completion_tokens, 4);
  const ids = await client.completions.create({ model: 'demo', prompt: [1, 2, 3, 300], max_tokens: 3, ...full });
  assert.equal(ids.usage.prompt_tokens, 4);
  const stream = await client.completions.create({ model: 'demo', prompt: 'Once', max_tokens: 4, ...full, stream: true,
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
                                                   max_tokens: 3, ...full, n: 2, ...noThinking });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  assert.equal(r.usage.completion_tokens, 6);
  const c = await client.completions.create({ model: 'demo', prompt: ['a', 'b'], max_tokens: 2, ...full, n: 2 });
  assert.deepEqual(c.choices.map((x) => x.index), [0, 1, 2, 3]);
});

test('logprobs in chat and completions shape', async () => {
  const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }],
                                                   max_tokens: 4, ...full, logprobs: true, top_logprobs: 2, ...noThinking });
  validate('CreateChatCompletionResponse', r);
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 4);
  assert.equal(content[0].top_logprobs.length, 2);
  assert.ok(Array.isArray(content[0].bytes));
  const c = await client.completions.create({ model: 'demo', prompt: 'hello', max_tokens: 3, ...full, logprobs: 2 });
  validate('CreateCompletionResponse', c);
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 3);
  assert.equal(lp.token_logprobs.length, 3);
  assert.equal(lp.text_offset[0], 0);
  const ids = await client.completions.create({ model: 'demo', prompt: 'hello', max_tokens: 2, ...full, logprobs: 1,
                                                return_tokens_as_token_ids: true });
  assert.match(ids.choices[0].logprobs.tokens[0], /^token_id:\d+$/);
  const echo = await client.completions.create({ model: 'demo', prompt: 'hello', max_tokens: 2, ...full, echo: true, logprobs: 1 });
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
}, 'fake');

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
}, 'fake');

test('reasoning returned as reasoning_content and reasoning', async () => {
  const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'SCRIPT_THINK' }] });
  const m = r.choices[0].message;
  assert.equal(m.reasoning_content, 'The user wants a greeting.');
  assert.equal(m.reasoning, 'The user wants a greeting.');
  assert.equal(m.content, 'Hello there!');
}, 'fake');

// --- the real demo model (--real) -------------------------------------------------------
const arithmetic = ['add', 'subtract', 'multiply'].map((name) => ({ type: 'function', function: {
  name, description: `${name} two numbers`,
  parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } } }));
const question = [{ role: 'user', content: 'Tell me 139 times 51.' }];

test('stop strings on the model\'s own output: truncated, never partly streamed', async () => {
  const ask = (extra) => client.completions.create({ model: 'demo', prompt: 'Once upon a time', max_tokens: 24,
                                                     temperature: 0, ...full, ...extra });
  const plain = (await ask({})).choices[0].text;
  const stop = plain.slice(10, 13);
  assert.ok(stop.trim().length > 0, `a usable stop string in ${JSON.stringify(plain)}`);
  const cut = plain.slice(0, plain.indexOf(stop));
  const r = await ask({ stop: [stop] });
  assert.equal(r.choices[0].text, cut);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].stop_reason, stop);
  const stream = await ask({ stop: [stop], stream: true });
  let text = '';
  for await (const c of stream) {
    text += c.choices[0]?.text ?? '';
    for (let k = 1; k < stop.length; ++k) assert.ok(!text.endsWith(stop.slice(0, k)) || cut.endsWith(stop.slice(0, k)),
                                                   `partial stop string streamed: ${JSON.stringify(text)}`);
  }
  assert.equal(text, cut);
}, 'real');

test('tools: the model calls multiply, then answers with the result', async () => {
  const r = await client.chat.completions.create({ model: 'demo', messages: question, tools: arithmetic,
                                                   temperature: 0, max_tokens: 160 });
  validate('CreateChatCompletionResponse', r);
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.tool_calls[0].function.name, 'multiply');
  assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { a: 139, b: 51 });
  assert.ok(m.reasoning_content.length > 0 && m.reasoning === m.reasoning_content);
  const runner = client.chat.completions.stream({ model: 'demo', messages: question, tools: arithmetic,
                                                  temperature: 0, max_tokens: 160 });
  for await (const c of runner) validate('CreateChatCompletionStreamResponse', c);
  const final = await runner.finalChatCompletion();
  assert.deepEqual(final.choices[0].message.tool_calls.map((t) => [t.id, t.function.name, t.function.arguments]),
                   m.tool_calls.map((t) => [t.id, t.function.name, t.function.arguments]));
  const answer = await client.chat.completions.create({ model: 'demo', tools: arithmetic, temperature: 0,
    max_tokens: 160, messages: [...question, { role: 'assistant', content: null, tool_calls: m.tool_calls },
                                { role: 'tool', tool_call_id: m.tool_calls[0].id, content: '7089' }] });
  assert.match(answer.choices[0].message.content, /7089/);
  assert.equal(answer.choices[0].finish_reason, 'stop');
}, 'real');

test('tool_choice required and named through the SDK', async () => {
  const named = await client.chat.completions.create({ model: 'demo', messages: question, tools: arithmetic,
    temperature: 0, max_tokens: 200, tool_choice: { type: 'function', function: { name: 'add' } } });
  validate('CreateChatCompletionResponse', named);
  assert.equal(named.choices[0].finish_reason, 'stop');
  assert.equal(named.choices[0].message.tool_calls[0].function.name, 'add');
  assert.equal(named.choices[0].message.tool_calls[0].id, 'functions.add:0');
  const required = await client.chat.completions.create({ model: 'demo', messages: question, tools: arithmetic,
    temperature: 0, max_tokens: 300, tool_choice: 'required', parallel_tool_calls: false });
  validate('CreateChatCompletionResponse', required);
  assert.equal(required.choices[0].finish_reason, 'tool_calls');
  const call = required.choices[0].message.tool_calls[0];
  assert.ok(['add', 'subtract', 'multiply'].includes(call.function.name));
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.a, 'number');
  assert.equal(typeof args.b, 'number');
}, 'real');

test('response_format json_schema through the SDK', async () => {
  const schema = { type: 'object', properties: { unit: { enum: ['apples', 'pears'] }, ok: { type: 'boolean' } },
                   required: ['unit', 'ok'] };
  const r = await client.chat.completions.create({ model: 'demo', messages: question, temperature: 0, max_tokens: 200,
    response_format: { type: 'json_schema', json_schema: { name: 'fruit', schema } } });
  validate('CreateChatCompletionResponse', r);
  const doc = JSON.parse(r.choices[0].message.content);
  assert.ok(['apples', 'pears'].includes(doc.unit) && typeof doc.ok === 'boolean', JSON.stringify(doc));
}, 'real');

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
  const tooLong = new RegExp(`maximum context length is ${MAX_LEN} tokens`);
  await expectStatus(client.completions.create({ model: 'demo', prompt: 'x', max_tokens: 100000 }), 400,
                     OpenAI.BadRequestError, tooLong);
  await expectStatus(client.completions.create({ model: 'demo', prompt: 'word '.repeat(2 * MAX_LEN) }), 400,
                     OpenAI.BadRequestError, tooLong);
  await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }], tools,
                                                      tool_choice: { type: 'function', function: { name: 'nope' } } }),
                     400, OpenAI.BadRequestError, /nope/);
  await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }], n: 1000 }),
                     400, OpenAI.BadRequestError);
  await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }],
                                                      logprobs: true, top_logprobs: 50 }), 400, OpenAI.BadRequestError);
  if (!REAL) {
    await expectStatus(client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'SCRIPT_FAIL' }] }),
                       500, OpenAI.InternalServerError);
  }
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
}, 'fake');

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
