import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateJsonSchema } from "../api/openapi/validateJsonSchema.js";
import { writeTinyChatModel } from "../fixtures/makeTinyChatModel.js";
import { postJson, startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

/**
 * An OpenAI-compatible upstream that records each request body and answers with a scripted SSE stream: tool-call
 * deltas split the way servers split them (id and name first, then argument fragments, two calls interleaved).
 */
let upstream: Server;
let received: Record<string, unknown>[] = [];
let script: object[] = [];

function sse(res: import("node:http").ServerResponse, events: object[]) {
  res.writeHead(200, { "content-type": "text/event-stream" });
  for (const e of events) res.write(`data: ${JSON.stringify(e)}\n\n`);
  res.end("data: [DONE]\n\n");
}

const chunk = (delta: object, finish: string | null = null) => ({
  id: "x",
  object: "chat.completion.chunk",
  created: 0,
  model: "m",
  choices: [{ index: 0, delta, finish_reason: finish }],
});
const usage = { id: "x", object: "chat.completion.chunk", created: 0, model: "m", choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } };

/** As OpenAI streams them: one call after the other, arguments in fragments. */
const SEQUENTIAL = [
  chunk({ role: "assistant", content: null }),
  chunk({ tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "get_weather", arguments: "" } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] }),
  chunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "get_weather", arguments: '{"city":"Lima"}' } }] }),
  chunk({}, "tool_calls"),
  usage,
];

/** Some servers interleave: folded by call index all the same. */
const TWO_CALLS = [
  chunk({ role: "assistant", content: null }),
  chunk({ tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "get_weather", arguments: "" } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
  chunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "get_weather", arguments: '{"city":"Lima"}' } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] }),
  chunk({}, "tool_calls"),
  usage,
];

let t: TestDaemon;
beforeAll(async () => {
  upstream = createServer((req, res) => {
    if (req.url === "/v1/models") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: "tool-model", object: "model" }] }));
      return;
    }
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      received.push(JSON.parse(body) as Record<string, unknown>);
      sse(res, script);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const port = (upstream.address() as AddressInfo).port;
  const bitnetPath = join(await mkdtemp(join(tmpdir(), "tabagent-tools-")), "tiny-bitnet.gguf");
  await writeTinyChatModel(bitnetPath, { architecture: "bitnet" });
  t = await startTestDaemon({ contextSize: 1024, upstreams: [{ name: "tools", baseUrl: `http://127.0.0.1:${port}/v1`, prefix: "up/" }] }, [
    // llama-server-bitnet has no tools: capabilities are checked before any load, so no BitNet build is needed.
    { id: "bitnet-chat", path: bitnetPath, engine: "llama-server-bitnet" } as { id: string; path: string },
  ]);
});
afterAll(async () => {
  await t?.close();
  await new Promise((resolve) => upstream?.close(resolve));
});

const weather = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    strict: true,
  },
};

describe("tool calls through an upstream", () => {
  it("sends tools, tool_choice, parallel_tool_calls, the tool history and response_format as the client wrote them", async () => {
    received = [];
    script = [chunk({ role: "assistant", content: "done" }), chunk({}, "stop"), usage];
    const messages = [
      { role: "user" as const, content: "Weather in Oslo?" },
      {
        role: "assistant" as const,
        content: null,
        tool_calls: [{ id: "call_1", type: "function" as const, function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }],
      },
      { role: "tool" as const, tool_call_id: "call_1", content: "sunny" },
    ];
    const r = await t.client.chat.completions.create({
      model: "up/tool-model",
      messages,
      tools: [weather],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      response_format: { type: "json_schema", json_schema: { name: "answer", schema: { type: "object" }, strict: true } },
      // A field this server does not know (another server's extension) reaches the upstream untouched.
      ...({ vendor_option: { keep: [1, "two"] } } as object),
    });
    expect(r.choices[0]!.message.content).toBe("done");
    expect(received[0]).toMatchObject({ vendor_option: { keep: [1, "two"] } });
    expect(received[0]).toMatchObject({
      model: "tool-model",
      messages,
      tools: [weather],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      response_format: { type: "json_schema", json_schema: { name: "answer", schema: { type: "object" }, strict: true } },
    });
  });

  it("folds streamed call deltas into message.tool_calls (content null, finish_reason tool_calls, usage kept)", async () => {
    script = TWO_CALLS;
    const r = await t.client.chat.completions.create({ model: "up/tool-model", messages: [{ role: "user", content: "Oslo and Lima?" }], tools: [weather] });
    expect(r.choices[0]).toMatchObject({
      finish_reason: "tool_calls",
      message: {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "call_a", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } },
          { id: "call_b", type: "function", function: { name: "get_weather", arguments: '{"city":"Lima"}' } },
        ],
      },
    });
    expect(r.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 7 });
  });

  it("streams calls in OpenAI's shape, which the openai-node stream helper reassembles", async () => {
    script = SEQUENTIAL;
    const stream = t.client.chat.completions.stream({ model: "up/tool-model", messages: [{ role: "user", content: "Oslo and Lima?" }], tools: [weather] });
    const deltas: unknown[] = [];
    stream.on("chunk", (c) => deltas.push(...(c.choices[0]?.delta.tool_calls ?? [])));
    const final = await stream.finalChatCompletion();
    const calls = final.choices[0]!.message.tool_calls!.map((c) => (c.type === "function" ? [c.id, c.function.name, JSON.parse(c.function.arguments)] : null));
    expect(calls).toEqual([
      ["call_a", "get_weather", { city: "Oslo" }],
      ["call_b", "get_weather", { city: "Lima" }],
    ]);
    // The first delta of each call carries id, type and name with empty arguments; later ones only fragments.
    expect(deltas[0]).toEqual({ index: 0, id: "call_a", type: "function", function: { name: "get_weather", arguments: "" } });
    expect(deltas.filter((d) => (d as { id?: string }).id !== undefined)).toHaveLength(2);
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
  });

  it("an upstream that streams arguments before a call's name is an error, not a nameless call", async () => {
    script = [chunk({ tool_calls: [{ index: 0, function: { arguments: "{}" } }] }), chunk({}, "tool_calls")];
    const r = await postJson(`${t.url}/v1/chat/completions`, { model: "up/tool-model", messages: [{ role: "user", content: "x" }], tools: [weather] });
    expect(r.status).toBe(502);
    expect((r.json as { error: { message: string } }).error.message).toMatch(/arguments of tool call 0 before its function name/);
  });
});

const cityTool = {
  type: "function" as const,
  function: {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Oslo", "Lima"] }, days: { type: "integer" } },
      required: ["city", "days"],
      additionalProperties: false,
    },
  },
};
const timeTool = {
  type: "function" as const,
  function: { name: "get_time", parameters: { type: "object", properties: { utc: { type: "boolean" } }, required: ["utc"], additionalProperties: false } },
};

// The tiny model has random weights: only the grammar makes its calls and JSON valid, which is what is tested.
describe("tool calls and JSON modes on the in-process GGUF engine", () => {
  const ask = (extra: object) =>
    t.client.chat.completions.create({ model: "tiny-chat", messages: [{ role: "user", content: "Weather in Oslo?" }], max_tokens: 96, temperature: 0, ...extra });

  it("tool_choice required yields a call of a declared tool whose arguments match its schema", async () => {
    const r = await ask({ tools: [cityTool, timeTool], tool_choice: "required" });
    const choice = r.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    const call = choice.message.tool_calls![0]!;
    if (call.type !== "function") throw new Error("not a function call");
    const tool = [cityTool, timeTool].find((x) => x.function.name === call.function.name)!;
    expect(tool).toBeDefined();
    expect(validateJsonSchema({}, tool.function.parameters, JSON.parse(call.function.arguments))).toEqual([]);
    expect(call.id).toMatch(/^call_/);
  });

  it("a named tool_choice calls that tool; streamed, the openai-node helper reassembles it", async () => {
    const stream = t.client.chat.completions.stream({
      model: "tiny-chat",
      messages: [{ role: "user", content: "What time is it?" }],
      tools: [cityTool, timeTool],
      tool_choice: { type: "function", function: { name: "get_time" } },
      max_tokens: 64,
      temperature: 0,
    });
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]!.message.tool_calls![0]!;
    if (call.type !== "function") throw new Error("not a function call");
    expect(call.function.name).toBe("get_time");
    expect(validateJsonSchema({}, timeTool.function.parameters, JSON.parse(call.function.arguments))).toEqual([]);
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
  });

  it("a round trip with the call and the tool result in the history answers in text", async () => {
    const r = await ask({
      messages: [
        { role: "user", content: "Weather in Oslo?" },
        { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo","days":1}' } }] },
        { role: "tool", tool_call_id: "call_1", content: "sunny" },
      ],
      tools: [cityTool],
      max_tokens: 8,
    });
    expect(r.choices[0]!.message.tool_calls ?? []).toEqual([]);
    expect(typeof r.choices[0]!.message.content).toBe("string");
    expect(r.choices[0]!.finish_reason).toBe("length");
  });

  it("json_schema output parses and validates; numbers stay finite integers", async () => {
    const schema = {
      type: "object",
      properties: {
        answer: { type: "string", enum: ["yes", "no"] },
        score: { type: "integer" },
        ok: { type: "boolean" },
        tags: { type: "array", items: { type: "string", maxLength: 4 }, maxItems: 2 },
      },
      required: ["answer", "score", "ok", "tags"],
      additionalProperties: false,
    };
    for (const seed of [1, 2, 3]) {
      const r = await ask({ response_format: { type: "json_schema", json_schema: { name: "verdict", schema, strict: true } }, temperature: 1, seed, max_tokens: 128 });
      const value: unknown = JSON.parse(r.choices[0]!.message.content!);
      expect(validateJsonSchema({}, schema, value), JSON.stringify(value)).toEqual([]);
      expect(Number.isSafeInteger((value as { score: number }).score)).toBe(true);
      expect(r.choices[0]!.finish_reason).toBe("stop");
    }
  });

  it("a schema keyword the grammar cannot enforce is a 400 naming it", async () => {
    const r = await postJson(`${t.url}/v1/chat/completions`, {
      model: "tiny-chat",
      messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "object", properties: { id: { type: "string", pattern: "^[a-z]+$" } } } } },
    });
    expect(r.status).toBe(400);
    expect((r.json as { error: { param: string; message: string } }).error).toMatchObject({ param: "response_format.json_schema.schema.properties.id.pattern" });
  });
});

describe("engines without tools", () => {
  it("an engine without tools refuses them by name, saying which engines have them", async () => {
    const r = await postJson(`${t.url}/v1/chat/completions`, { model: "bitnet-chat", messages: [{ role: "user", content: "Hi" }], tools: [weather] });
    expect(r.status).toBe(400);
    const error = (r.json as { error: { param: string; code: string; message: string } }).error;
    expect(error).toMatchObject({ param: "tools", code: "unsupported_parameter" });
    expect(error.message).toMatch(
      /llama-server-bitnet engine that serves 'bitnet-chat' \(engines that support it: node-llama-cpp, llama-server, onnxruntime, transformers, upstream\)/,
    );
  });

  it("bad tool input is a 400 naming the field, before any engine sees it", async () => {
    received = [];
    const base = { model: "up/tool-model", messages: [{ role: "user", content: "Hi" }] };
    for (const [patch, param] of [
      [{ tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } }, "tool_choice"],
      [{ tools: [{ type: "function", function: { name: "has space" } }] }, "tools[0].function.name"],
      [{ messages: [{ role: "tool", tool_call_id: "x", content: "?" }] }, "messages[0].tool_call_id"],
      [{ response_format: { type: "json_schema" } }, "response_format.json_schema"],
      [{ functions: [{ name: "f" }] }, "functions"],
    ] as const) {
      const r = await postJson(`${t.url}/v1/chat/completions`, { ...base, ...patch });
      expect(r.status, param).toBe(400);
      expect((r.json as { error: { param: string } }).error.param, JSON.stringify(patch)).toBe(param);
    }
    expect(received).toEqual([]);
  });
});

describe("unknown request fields", () => {
  it("go to an upstream on completions too; a local engine ignores them", async () => {
    received = [];
    script = [{ id: "x", object: "text_completion", created: 0, model: "m", choices: [{ index: 0, text: "ok", finish_reason: "stop" }] }, usage];
    const r = await postJson(`${t.url}/v1/completions`, { model: "up/tool-model", prompt: "Hi", vendor_flag: true });
    expect(r.status).toBe(200);
    expect(received[0]).toMatchObject({ prompt: "Hi", vendor_flag: true });
    // A local engine ignores them, as OpenAI ignores unknown fields.
    const local = await postJson(`${t.url}/v1/completions`, { model: "tiny-chat", prompt: "Hi", max_tokens: 2, vendor_flag: true });
    expect(local.status).toBe(200);
  });
});
