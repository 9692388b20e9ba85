// The official OpenAI client against a hangar endpoint: a model list, a chat, a streamed chat.
// Usage: node openai_smoke.mjs BASE_URL MODEL   (BASE_URL like http://127.0.0.1:PORT/v1)
// Prints one JSON line with what it saw; exits non-zero on any failure.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.HANGAR_API_KEY || "none", maxRetries: 0 });

const models = await client.models.list();
const ids = models.data.map((m) => m.id);

const chat = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Say hello." }],
  max_tokens: 8,
  temperature: 0,
});

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Say hello." }],
  max_tokens: 8,
  temperature: 0,
  stream: true,
});
let streamed = "";
let chunks = 0;
let finish = null;
for await (const chunk of stream) {
  chunks++;
  streamed += chunk.choices[0]?.delta?.content ?? "";
  finish = chunk.choices[0]?.finish_reason ?? finish;
}

console.log(JSON.stringify({
  models: ids,
  chat: chat.choices[0].message.content,
  chat_finish: chat.choices[0].finish_reason,
  usage: chat.usage,
  streamed,
  chunks,
  stream_finish: finish,
}));
