// Tool calls and JSON modes on the ONNX engine, through the real daemon and the openai client: the tiny ONNX LLM has
// random weights, so only the token mask (JsonSchemaMatcher + TokenMask) makes its calls and JSON valid, which is
// what is tested.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateJsonSchema } from "../../api/openapi/validateJsonSchema.js";
import { ensureTinyLlmOnnx } from "../../fixtures/ensurePythonFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";

let t: TestDaemon;

beforeAll(async () => {
  const llm = await ensureTinyLlmOnnx();
  t = await startTestDaemon({ parallel: 2, contextSize: 2048 }, [{ id: "onnx-llm", path: llm.dir }]);
}, 600_000);

afterAll(async () => {
  await t?.close();
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

const ask = (extra: object) =>
  t.client.chat.completions.create({ model: "onnx-llm", messages: [{ role: "user", content: "Weather in Oslo?" }], max_tokens: 256, temperature: 0, ...extra });

describe("tool calls and JSON modes on the ONNX engine", () => {
  it("tool_choice required yields a call of a declared tool whose arguments match its schema", async () => {
    for (const seed of [1, 2]) {
      const r = await ask({ tools: [cityTool, timeTool], tool_choice: "required", temperature: 1, seed });
      const choice = r.choices[0]!;
      expect(choice.finish_reason).toBe("tool_calls");
      expect(choice.message.content).toBeNull();
      const call = choice.message.tool_calls![0]!;
      if (call.type !== "function") throw new Error("not a function call");
      const tool = [cityTool, timeTool].find((x) => x.function.name === call.function.name)!;
      expect(tool).toBeDefined();
      expect(validateJsonSchema({}, tool.function.parameters, JSON.parse(call.function.arguments))).toEqual([]);
      expect(call.id).toMatch(/^call_/);
    }
  });

  it("a named tool_choice calls that tool; streamed, the openai-node helper reassembles it", async () => {
    const stream = t.client.chat.completions.stream({
      model: "onnx-llm",
      messages: [{ role: "user", content: "What time is it?" }],
      tools: [cityTool, timeTool],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      max_tokens: 256,
      temperature: 0,
    });
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]!.message.tool_calls![0]!;
    if (call.type !== "function") throw new Error("not a function call");
    expect(call.function.name).toBe("get_weather");
    expect(validateJsonSchema({}, cityTool.function.parameters, JSON.parse(call.function.arguments))).toEqual([]);
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

  it("json_schema strict output parses and validates over seeds (n = 2 too); numbers stay finite integers", async () => {
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
      const r = await ask({
        response_format: { type: "json_schema", json_schema: { name: "verdict", schema, strict: true } },
        temperature: 1,
        seed,
        max_tokens: 128,
        n: 2,
      });
      expect(r.choices).toHaveLength(2);
      for (const choice of r.choices) {
        const value: unknown = JSON.parse(choice.message.content!);
        expect(validateJsonSchema({}, schema, value), JSON.stringify(value)).toEqual([]);
        expect(Number.isSafeInteger((value as { score: number }).score)).toBe(true);
        expect(choice.finish_reason).toBe("stop");
      }
    }
  });

  it("json_object output parses as an object; one cut by max_tokens finishes with length", async () => {
    const r = await ask({ response_format: { type: "json_object" }, max_tokens: 512 });
    const content = r.choices[0]!.message.content!;
    expect(r.choices[0]!.finish_reason, content).toBe("stop");
    const value: unknown = JSON.parse(content);
    expect(value !== null && typeof value === "object" && !Array.isArray(value)).toBe(true);
    // Random weights sampled can wander inside a string (nothing bounds a string's length): what is there is a
    // prefix of an object, and the finish reason says it was cut.
    const cut = await ask({ messages: [{ role: "user", content: "Numbers: 0 1 2 3" }], response_format: { type: "json_object" }, max_tokens: 64 });
    expect(cut.choices[0]!.finish_reason).toBe("length");
    expect(cut.choices[0]!.message.content!.startsWith('{"')).toBe(true);
    expect(cut.usage!.completion_tokens).toBe(64);
  });

  it("a schema keyword the mask cannot enforce is a 400 naming it", async () => {
    const r = await postJson(`${t.url}/v1/chat/completions`, {
      model: "onnx-llm",
      messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "object", properties: { id: { type: "string", pattern: "^[a-z]+$" } } } } },
    });
    expect(r.status).toBe(400);
    const error = (r.json as { error: { param: string; code: string; message: string } }).error;
    expect(error).toMatchObject({ param: "response_format.json_schema.schema.properties.id.pattern", code: "unsupported_schema" });
    expect(error.message).toMatch(/onnxruntime engine/);
    const tools = await postJson(`${t.url}/v1/chat/completions`, {
      model: "onnx-llm",
      messages: [{ role: "user", content: "x" }],
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { n: { type: "number", minimum: 0 } } } } }],
      tool_choice: "required",
    });
    expect(tools.status).toBe(400);
    expect((tools.json as { error: { param: string } }).error.param).toBe("tools.properties.arguments.properties.n.minimum");
  });
});
