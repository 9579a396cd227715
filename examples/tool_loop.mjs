// The two-turn tool loop with the official `openai` npm SDK: the model asks for one of the
// three arithmetic tools, this client runs it, sends the result back, and prints the
// model's final answer.
//
//   npm install openai@6        (once, in this folder)
//   node tool_loop.mjs [BASE_URL] [QUESTION]
//
// BASE_URL defaults to $OPENAI_BASE_URL, then http://127.0.0.1:8000/v1.
import OpenAI from 'openai';

const baseURL = process.argv[2] || process.env.OPENAI_BASE_URL || 'http://127.0.0.1:8000/v1';
const question = process.argv[3] || 'Tell me 139 times 51.';
const client = new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY || 'EMPTY' });

const tool = (name, description) => ({
  type: 'function',
  function: {
    name,
    description,
    parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] },
  },
});
const tools = [tool('add', 'Add two numbers.'), tool('subtract', 'Subtract b from a.'),
               tool('multiply', 'Multiply two numbers.')];
const implementations = { add: (a, b) => a + b, subtract: (a, b) => a - b, multiply: (a, b) => a * b };

const model = (await client.models.list()).data[0].id;
const messages = [{ role: 'user', content: question }];

const first = await client.chat.completions.create({ model, messages, tools, temperature: 0, max_tokens: 160 });
const calls = first.choices[0].message.tool_calls ?? [];
if (calls.length === 0) {
  console.error(`the model answered without a tool call: ${first.choices[0].message.content}`);
  process.exit(1);
}
// Send the assistant turn back as the model wrote it (its reasoning is not needed again).
messages.push({ role: 'assistant', content: null, tool_calls: calls });
for (const call of calls) {
  const { a, b } = JSON.parse(call.function.arguments);
  const result = implementations[call.function.name](a, b);
  console.log(`tool call: ${call.function.name}(${a}, ${b}) = ${result}`);
  messages.push({ role: 'tool', tool_call_id: call.id, content: String(result) });
}

const second = await client.chat.completions.create({ model, messages, tools, temperature: 0, max_tokens: 160 });
console.log(`answer: ${second.choices[0].message.content}`);
