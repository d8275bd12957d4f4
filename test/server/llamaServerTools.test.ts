import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateJsonSchema } from "../api/openapi/validateJsonSchema.js";
import { llamaServerBinary } from "../helpers/llamaServerBinary.js";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

/**
 * Tools and JSON modes on the llama-server engine, against a real llama-server (`--jinja`) serving the BPE fixture
 * with Qwen2.5's tool template. The weights are random: llama-server's grammar makes calls and JSON valid, the
 * fixture's habits (tiny-tool-chat: it likes to open a call and stops after closing one) make a call finish.
 */
let t: TestDaemon;
beforeAll(async () => {
  const { ensureToolChatFixture } = await import("../fixtures/ensureFixtures.js");
  const path = await ensureToolChatFixture();
  t = await startTestDaemon({ contextSize: 2048, parallel: 1 }, [{ id: "srv-tools", path, engine: "llama-server" } as { id: string; path: string }], {
    ...process.env,
    TABAGENT_LLAMA_SERVER: await llamaServerBinary(),
  });
});
afterAll(() => t?.close());

const weatherTool = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather in a city",
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
const tools = [weatherTool, timeTool];

interface Call {
  type: string;
  id: string;
  function: { name: string; arguments: string };
}

/** Each call names a declared tool and its arguments parse and match that tool's schema. */
function expectValidCalls(calls: readonly Call[] | undefined, declared: readonly (typeof weatherTool | typeof timeTool)[] = tools): Call[] {
  expect(calls?.length ?? 0).toBeGreaterThan(0);
  for (const call of calls ?? []) {
    expect(call.type).toBe("function");
    expect(call.id.length).toBeGreaterThan(0);
    const tool = declared.find((d) => d.function.name === call.function.name);
    expect(tool, call.function.name).toBeDefined();
    const args: unknown = JSON.parse(call.function.arguments);
    expect(validateJsonSchema({}, tool!.function.parameters, args), call.function.arguments).toEqual([]);
  }
  return [...(calls ?? [])];
}

// parallel_tool_calls false: this llama-server lets the model write more calls either way (the fixture often does);
// the engine passes on the first only, so a turn cut off inside a later call still answers with a whole one.
const base = { model: "srv-tools", temperature: 0, max_tokens: 200, parallel_tool_calls: false };

describe("tool calls on llama-server", () => {
  it("tool_choice required answers with calls of declared tools whose arguments match their schemas", async () => {
    for (const content of ["Weather in Oslo?", "What time is it?", "Hello", "Tell me about Lima", "Is it sunny in Lima?", "Hi"]) {
      const r = await t.client.chat.completions.create({ ...base, messages: [{ role: "user", content }], tools, tool_choice: "required" });
      const choice = r.choices[0]!;
      expect(choice.finish_reason, content).toBe("tool_calls");
      expect(expectValidCalls(choice.message.tool_calls as Call[])).toHaveLength(1);
      expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    }
  });

  it("a named tool_choice calls that tool (llama-server gets required with that tool alone)", async () => {
    for (const [name, content] of [
      ["get_time", "Weather in Oslo?"],
      ["get_time", "Hi"],
      ["get_weather", "What time is it?"],
      ["get_weather", "Weather for three days in Lima"],
    ] as const) {
      const r = await t.client.chat.completions.create({
        ...base,
        messages: [{ role: "user", content }],
        tools,
        tool_choice: { type: "function", function: { name } },
      });
      expect(r.choices[0]!.finish_reason).toBe("tool_calls");
      expect(expectValidCalls(r.choices[0]!.message.tool_calls as Call[]).map((c) => c.function.name)).toEqual([name]);
    }
  });

  it("streams calls in OpenAI's shape, which the openai-node helper reassembles", async () => {
    const stream = t.client.chat.completions.stream({ ...base, messages: [{ role: "user", content: "Weather in Oslo?" }], tools, tool_choice: "required" });
    const deltas: { index: number; id?: string; type?: string; function?: { name?: string; arguments?: string } }[] = [];
    stream.on("chunk", (c) => deltas.push(...(c.choices[0]?.delta.tool_calls ?? [])));
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
    const calls = expectValidCalls(final.choices[0]!.message.tool_calls);
    // The first delta of a call has its id, type and name; the arguments arrive in fragments after it.
    expect(deltas[0]).toMatchObject({ index: 0, id: calls[0]!.id, type: "function", function: { name: calls[0]!.function.name } });
    expect(deltas.filter((d) => d.id !== undefined)).toHaveLength(calls.length);
    expect(deltas.length).toBeGreaterThan(calls.length);
  });

  it("parallel calls (the default) are passed on as the model wrote them, each one whole and valid", async () => {
    const r = await t.client.chat.completions.create({
      ...base,
      parallel_tool_calls: true,
      messages: [{ role: "user", content: "What time is it?" }],
      tools,
      tool_choice: "required",
    });
    expect(r.choices[0]!.finish_reason).toBe("tool_calls");
    const calls = expectValidCalls(r.choices[0]!.message.tool_calls as Call[]);
    expect(calls.length).toBeGreaterThan(1);
    expect(new Set(calls.map((c) => c.id)).size).toBe(calls.length);
  });

  it("a round trip: the call and the tool result in the history, then an answer in text", async () => {
    const first = await t.client.chat.completions.create({ ...base, messages: [{ role: "user", content: "Weather in Oslo?" }], tools, tool_choice: "required" });
    const call = expectValidCalls(first.choices[0]!.message.tool_calls as Call[])[0]!;
    const r = await t.client.chat.completions.create({
      ...base,
      max_tokens: 16,
      messages: [
        { role: "user", content: "Weather in Oslo?" },
        { role: "assistant", content: null, tool_calls: [{ id: call.id, type: "function", function: call.function }] },
        { role: "tool", tool_call_id: call.id, content: "sunny, 21 °C" },
      ],
      tools,
      tool_choice: "none",
    });
    const choice = r.choices[0]!;
    expect(choice.message.tool_calls ?? []).toEqual([]);
    expect(typeof choice.message.content).toBe("string");
    expect(["stop", "length"]).toContain(choice.finish_reason);
    // The history reached the template: the prompt is longer than the first turn's.
    expect(r.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens);
  });
});

describe("JSON modes on llama-server", () => {
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

  it("json_schema output parses and validates", async () => {
    for (const seed of [1, 2, 3]) {
      const r = await t.client.chat.completions.create({
        ...base,
        messages: [{ role: "user", content: "Weather in Oslo?" }],
        response_format: { type: "json_schema", json_schema: { name: "verdict", schema, strict: true } },
        temperature: 1,
        seed,
      });
      const value: unknown = JSON.parse(r.choices[0]!.message.content!);
      expect(validateJsonSchema({}, schema, value), JSON.stringify(value)).toEqual([]);
      expect(r.choices[0]!.finish_reason).toBe("stop");
    }
  });

  it("json_schema streams too", async () => {
    const stream = t.client.chat.completions.stream({
      ...base,
      messages: [{ role: "user", content: "Hello" }],
      response_format: { type: "json_schema", json_schema: { name: "verdict", schema, strict: true } },
    });
    const final = await stream.finalChatCompletion();
    expect(validateJsonSchema({}, schema, JSON.parse(final.choices[0]!.message.content!))).toEqual([]);
  });

  it("json_object output parses as an object (sent to llama-server as the schema {type: object})", async () => {
    for (const seed of [2, 3]) {
      const r = await t.client.chat.completions.create({
        ...base,
        messages: [{ role: "user", content: "Weather in Oslo?" }],
        response_format: { type: "json_object" },
        temperature: 1,
        seed,
      });
      const value: unknown = JSON.parse(r.choices[0]!.message.content!);
      expect(typeof value === "object" && value !== null && !Array.isArray(value), JSON.stringify(value)).toBe(true);
      expect(r.choices[0]!.finish_reason).toBe("stop");
    }
  });
});
