// Smoke test of the local model server (run by localstack/model-smoke.sh, which starts the server
// and passes its base URL as MODEL_URL): a streamed chat completion with a usage chunk, a
// non-streamed one, the model list, and a 400 for a bad body. Prints the figures it measured
// (load excluded: see the server's log), and a closing "N passed, N failed" line.
import { readFileSync } from "node:fs";

const base = (process.env.MODEL_URL || "http://127.0.0.1:8088/v1").replace(/\/+$/, "");
const pidFile = process.env.MODEL_PID_FILE || "localstack/run/model.pid";
const results = [];

async function check(name, fn) {
  const started = Date.now();
  try {
    const note = await fn();
    results.push(true);
    console.log(`ok   ${name} (${Date.now() - started} ms)${note ? ": " + note : ""}`);
  } catch (err) {
    results.push(false);
    console.log(`FAIL ${name}: ${err?.message || err}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const post = (body) =>
  fetch(`${base}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });

const messages = [
  { role: "system", content: "You are a helpful assistant who writes short, plain answers." },
  { role: "user", content: "Write one sentence about why documents need reviews." },
];

await check("GET /models lists smollm2", async () => {
  const r = await fetch(`${base}/models`);
  assert(r.status === 200, `status ${r.status}`);
  const body = await r.json();
  assert(body.data?.some((m) => m.id === "smollm2"), `no smollm2 in ${JSON.stringify(body)}`);
});

await check("streamed chat completion: text chunks, finish_reason, usage, [DONE]", async () => {
  const started = Date.now();
  const r = await post({ model: "smollm2", messages, max_tokens: 48, temperature: 0.2, stream: true, stream_options: { include_usage: true } });
  if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
  assert((r.headers.get("content-type") || "").startsWith("text/event-stream"), `content-type ${r.headers.get("content-type")}`);
  const decoder = new TextDecoder();
  let buffer = "";
  let text = "";
  let firstTokenMs = null;
  let contentChunks = 0;
  let finish = null;
  let usage = null;
  let done = false;
  for await (const bytes of r.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      assert(event.startsWith("data: "), `not an SSE data line: ${JSON.stringify(event)}`);
      const data = event.slice(6);
      assert(!done, "data after [DONE]");
      if (data === "[DONE]") {
        done = true;
        continue;
      }
      const chunk = JSON.parse(data);
      assert(chunk.object === "chat.completion.chunk", `object ${chunk.object}`);
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        if (choice.delta?.content) {
          if (firstTokenMs === null) firstTokenMs = Date.now() - started;
          text += choice.delta.content;
          contentChunks++;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
  }
  const ms = Date.now() - started;
  assert(done, "no data: [DONE]");
  assert(text.trim().length > 0, "no text");
  assert(contentChunks > 1, `only ${contentChunks} content chunk(s)`);
  assert(finish === "stop" || finish === "length", `finish_reason ${finish}`);
  assert(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0, `usage ${JSON.stringify(usage)}`);
  const rate = (usage.completion_tokens * 1000) / (ms - firstTokenMs || 1);
  return `${usage.completion_tokens} tokens in ${ms} ms, first after ${firstTokenMs} ms, ` +
    `${rate.toFixed(1)} tokens/s after it; ${JSON.stringify(text.trim().slice(0, 100))}`;
});

await check("non-streamed chat completion with usage", async () => {
  const r = await post({ messages, max_tokens: 32, temperature: 0.2 });
  if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
  const body = await r.json();
  assert(body.object === "chat.completion", `object ${body.object}`);
  const content = body.choices?.[0]?.message?.content;
  assert(typeof content === "string" && content.trim().length > 0, `no content in ${JSON.stringify(body)}`);
  assert(body.choices[0].message.role === "assistant", "role");
  assert(["stop", "length"].includes(body.choices[0].finish_reason), `finish_reason ${body.choices[0].finish_reason}`);
  assert(body.usage?.prompt_tokens > 0 && body.usage?.completion_tokens > 0, `usage ${JSON.stringify(body.usage)}`);
  return `${body.usage.completion_tokens} tokens; ${JSON.stringify(content.trim().slice(0, 100))}`;
});

await check("bad body answers 400 with a JSON error", async () => {
  for (const body of ["{not json", JSON.stringify({ messages: [] }), JSON.stringify({ messages: [{ role: "tool", content: "x" }] })]) {
    const r = await post(body);
    assert(r.status === 400, `status ${r.status} for ${body}`);
    const err = await r.json();
    assert(typeof err.error?.message === "string", `no error.message for ${body}`);
  }
});

try {
  const pid = readFileSync(pidFile, "utf8").trim();
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key) => Number((status.match(new RegExp(`^${key}:\\s+(\\d+)`, "m")) || [])[1] || 0);
  console.log(`model server memory: RSS ${Math.round(kb("VmRSS") / 1024)} MiB, peak ${Math.round(kb("VmHWM") / 1024)} MiB`);
} catch {
  // not on Linux, or the server is not ours: no memory figure
}

const passed = results.filter(Boolean).length;
const failed = results.length - passed;
console.log(`model-smoke: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
