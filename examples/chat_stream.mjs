// A streaming chat with the official `openai` npm SDK: prints the reasoning and the answer
// as the tokens arrive.
//
//   npm install openai@6        (once, in this folder)
//   node chat_stream.mjs [BASE_URL] [QUESTION]
//
// BASE_URL defaults to $OPENAI_BASE_URL, then http://127.0.0.1:8000/v1.
import OpenAI from 'openai';

const baseURL = process.argv[2] || process.env.OPENAI_BASE_URL || 'http://127.0.0.1:8000/v1';
const question = process.argv[3] || 'Who are you?';
const client = new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY || 'EMPTY' });

const model = (await client.models.list()).data[0].id;
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: 'user', content: question }],
  temperature: 0,
  max_tokens: 160,
  stream: true,
});
let reasoning = '';
let answer = '';
for await (const chunk of stream) {
  const delta = chunk.choices[0]?.delta ?? {};
  // Reasoning arrives before the answer, in `reasoning_content` (or `reasoning`, by config).
  const thought = delta.reasoning_content ?? delta.reasoning;
  if (thought) reasoning += thought;
  if (delta.content) {
    if (answer === '') process.stdout.write(`reasoning: ${reasoning}\nanswer: `);
    answer += delta.content;
    process.stdout.write(delta.content);
  }
}
process.stdout.write('\n');
