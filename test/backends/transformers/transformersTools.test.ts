import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateJsonSchema } from "../../api/openapi/validateJsonSchema.js";
import { ensureTinyLlm, pythonExecutable } from "../../fixtures/ensurePythonFixtures.js";
import { postJson, startTestDaemon, type TestDaemon } from "../../helpers/startTestDaemon.js";

/**
 * Tools and JSON modes on the transformers engine, against the real Python sidecar serving the tiny random-weight
 * LLM. Its ChatML template knows nothing of tools (the sidecar describes them in a system message, Hermes style);
 * `hf-tools` serves the same weights with a template that reads `tools` and renders calls' arguments as objects.
 * The weights are random: llguidance's token masks are what make calls and JSON valid.
 */
const run = promisify(execFile);
let t: TestDaemon;
let llm: string;
let python: string;

const TOOLS_TEMPLATE =
  "{%- if tools %}<|im_start|>system\nTools:\n{% for t in tools %}{{ t.function | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}" +
  "{%- for m in messages %}<|im_start|>{{ m.role }}\n" +
  '{%- if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{"name": {{ c.function.name | tojson }}, "arguments": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}' +
  "{%- else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}" +
  "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

beforeAll(async () => {
  [llm, python] = await Promise.all([ensureTinyLlm(), pythonExecutable()]);
  t = await startTestDaemon(
    {
      contextSize: 2048,
      parallel: 1,
      models: [
        { id: "hf-chat", path: llm },
        { id: "hf-tools", path: llm, chatTemplate: TOOLS_TEMPLATE },
      ],
    },
    [],
    { ...process.env, TABAGENT_PYTHON: python },
  );
}, 180_000);
afterAll(() => t?.close());

/** The fixture's tokenizer decoding ids (to look at the prompt the sidecar rendered). */
async function decode(ids: number[]): Promise<string> {
  const code = `import json, sys\nfrom transformers import AutoTokenizer\ntok = AutoTokenizer.from_pretrained(sys.argv[1])\nprint(json.dumps(tok.decode(json.loads(sys.argv[2]))))`;
  const { stdout } = await run(python, ["-c", code, llm, JSON.stringify(ids)], { env: { ...process.env, HF_HUB_OFFLINE: "1" }, maxBuffer: 16 << 20 });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as string;
}

const weatherTool = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Oslo", "Lima"] }, days: { type: "integer", minimum: 1, maximum: 7 } },
      required: ["city", "days"],
      additionalProperties: false,
    },
  },
};
const timeTool = {
  type: "function" as const,
  // No additionalProperties: the sidecar generates the declared properties only (still valid for this schema).
  function: {
    name: "get_time",
    parameters: { type: "object", properties: { utc: { type: "boolean" }, zone: { type: "string", maxLength: 6, pattern: "^[A-Za-z/]*$" } }, required: ["utc"] },
  },
};
const tools = [weatherTool, timeTool];

interface Call {
  type: string;
  id: string;
  function: { name: string; arguments: string };
}

/** Each call names a declared tool and its arguments parse and match that tool's schema. */
function expectValidCalls(calls: readonly Call[] | undefined | null): Call[] {
  expect(calls?.length ?? 0).toBeGreaterThan(0);
  for (const call of calls ?? []) {
    expect(call.type).toBe("function");
    expect(call.id).toMatch(/^call_[\w-]{8,}$/);
    const tool = tools.find((d) => d.function.name === call.function.name);
    expect(tool, call.function.name).toBeDefined();
    const args: unknown = JSON.parse(call.function.arguments);
    expect(validateJsonSchema({}, tool!.function.parameters, args), call.function.arguments).toEqual([]);
  }
  return [...(calls ?? [])];
}

const base = { model: "hf-chat", temperature: 0, max_tokens: 120 };

describe("tool calls on the transformers engine", () => {
  it("tool_choice required answers with one call of a declared tool whose arguments match its schema", async () => {
    for (const [content, seed] of [
      ["Weather in Oslo?", 1],
      ["What time is it?", 2],
      ["Hello", 3],
    ] as const) {
      const r = await t.client.chat.completions.create({ ...base, temperature: 1, seed, messages: [{ role: "user", content }], tools, tool_choice: "required" });
      const choice = r.choices[0]!;
      expect(choice.finish_reason, content).toBe("tool_calls");
      expect(choice.message.content).toBeNull();
      expect(expectValidCalls(choice.message.tool_calls as Call[])).toHaveLength(1);
      expect(r.usage!.completion_tokens).toBeGreaterThan(5);
    }
  });

  it("a named tool_choice calls that tool, on either template", async () => {
    for (const model of ["hf-chat", "hf-tools"]) {
      for (const name of ["get_time", "get_weather"] as const) {
        const r = await t.client.chat.completions.create({
          ...base,
          model,
          messages: [{ role: "user", content: "Weather in Oslo?" }],
          tools,
          tool_choice: { type: "function", function: { name } },
        });
        expect(r.choices[0]!.finish_reason).toBe("tool_calls");
        expect(expectValidCalls(r.choices[0]!.message.tool_calls as Call[]).map((c) => c.function.name)).toEqual([name]);
      }
    }
  });

  it("streams a call in OpenAI's shape (id, type and name first, then argument fragments), reassembled by openai-node", async () => {
    const stream = t.client.chat.completions.stream({ ...base, messages: [{ role: "user", content: "Weather in Oslo?" }], tools, tool_choice: "required" });
    const deltas: { index: number; id?: string; type?: string; function?: { name?: string; arguments?: string } }[] = [];
    stream.on("chunk", (c) => deltas.push(...(c.choices[0]?.delta.tool_calls ?? [])));
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
    const calls = expectValidCalls(final.choices[0]!.message.tool_calls);
    expect(calls).toHaveLength(1);
    expect(deltas[0]).toMatchObject({ index: 0, id: calls[0]!.id, type: "function", function: { name: calls[0]!.function.name, arguments: "" } });
    expect(deltas.filter((d) => d.id !== undefined)).toHaveLength(1);
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.map((d) => d.function?.arguments ?? "").join("")).toBe(calls[0]!.function.arguments);
  });

  it("a round trip: the call and the tool result in the history, then an answer in text (tool_choice none)", async () => {
    for (const model of ["hf-chat", "hf-tools"]) {
      const first = await t.client.chat.completions.create({
        ...base,
        model,
        messages: [{ role: "user", content: "Weather in Oslo?" }],
        tools,
        tool_choice: { type: "function", function: { name: "get_weather" } },
      });
      const call = expectValidCalls(first.choices[0]!.message.tool_calls as Call[])[0]!;
      const body = {
        ...base,
        model,
        max_tokens: 12,
        return_token_ids: true,
        messages: [
          { role: "user", content: "Weather in Oslo?" },
          { role: "assistant", content: null, tool_calls: [{ id: call.id, type: "function", function: call.function }] },
          { role: "tool", tool_call_id: call.id, content: "sunny, 21 C" },
        ],
        tools,
        tool_choice: "none",
      };
      const res = await postJson(`${t.url}/v1/chat/completions`, body);
      expect(res.status, res.text).toBe(200);
      const r = res.json as {
        prompt_token_ids: number[];
        choices: { message: { content: string | null; tool_calls?: unknown[] }; finish_reason: string }[];
        usage: { prompt_tokens: number };
      };
      const choice = r.choices[0]!;
      expect(choice.message.tool_calls ?? []).toEqual([]);
      expect(typeof choice.message.content).toBe("string");
      expect(["stop", "length"]).toContain(choice.finish_reason);
      expect(r.usage.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens);
      // The history reached the template: the call with its arguments as an object, and the tool's answer.
      const prompt = await decode(r.prompt_token_ids);
      expect(prompt).toContain(`<tool_call>`);
      expect(prompt).toContain(`"arguments": ${JSON.stringify(JSON.parse(call.function.arguments)).replace(/([:,])/g, "$1 ")}`);
      expect(prompt).toContain("sunny, 21 C");
      expect(prompt).toContain(model === "hf-chat" ? "You can call these functions" : 'Tools:\n{"name": "get_weather"');
    }
  });

  it("auto with a response_format: the answer is that JSON, or calls of declared tools", async () => {
    let sawCall = false;
    for (const seed of [1, 2, 3, 4]) {
      const r = await t.client.chat.completions.create({
        ...base,
        temperature: 0.8,
        seed,
        messages: [{ role: "user", content: "Weather in Oslo?" }],
        tools,
        tool_choice: "auto",
        response_format: { type: "json_object" },
      });
      const message = r.choices[0]!.message;
      if (message.tool_calls?.length) {
        sawCall = true;
        expectValidCalls(message.tool_calls as Call[]);
        expect(r.choices[0]!.finish_reason).toBe("tool_calls");
      } else if (r.choices[0]!.finish_reason === "stop") {
        const value: unknown = JSON.parse(message.content!);
        expect(typeof value === "object" && value !== null && !Array.isArray(value)).toBe(true);
      }
    }
    expect(sawCall).toBe(true);
  });
});

describe("JSON modes on the transformers engine", () => {
  const schema = {
    type: "object",
    properties: {
      answer: { type: "string", enum: ["yes", "no"] },
      score: { type: "integer", minimum: 0, maximum: 100 },
      ok: { type: "boolean" },
      // A pattern keeps the random model to ASCII: validateJsonSchema counts UTF-16 units, JSON Schema code points.
      tags: { type: "array", items: { type: "string", maxLength: 4, pattern: "^[a-z ]*$" }, maxItems: 2 },
    },
    required: ["answer", "score", "ok", "tags"],
    additionalProperties: false,
  };

  it("json_schema (strict) output parses and validates, over three seeds", async () => {
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

  it("json_object output is a JSON object", async () => {
    for (const seed of [2, 3]) {
      const r = await t.client.chat.completions.create({
        ...base,
        messages: [{ role: "user", content: "Weather in Oslo?" }],
        response_format: { type: "json_object" },
        temperature: 1,
        seed,
      });
      const content = r.choices[0]!.message.content!;
      expect(content.startsWith("{")).toBe(true);
      if (r.choices[0]!.finish_reason === "stop") {
        const value: unknown = JSON.parse(content);
        expect(typeof value === "object" && value !== null && !Array.isArray(value), content).toBe(true);
      }
    }
  });

  it("a schema keyword the grammar cannot enforce is a 400 naming its path, as is one llguidance cannot compile", async () => {
    const ask = (s: object) =>
      postJson(`${t.url}/v1/chat/completions`, {
        ...base,
        messages: [{ role: "user", content: "Hi" }],
        response_format: { type: "json_schema", json_schema: { name: "x", schema: s } },
      });
    for (const [s, what] of [
      [{ type: "object", properties: { ids: { type: "array", uniqueItems: true } } }, "properties.ids.uniqueItems"],
      [{ type: "object", properties: { a: { type: "string" } }, patternProperties: { "^b": {} } }, "patternProperties"],
      [{ type: "object", nullable: true }, "nullable"],
      [{ type: "string", pattern: "((" }, "cannot be compiled"],
    ] as const) {
      const res = await ask(s);
      expect(res.status, res.text).toBe(400);
      const error = (res.json as { error: { message: string; type: string; param: string; code: string } }).error;
      expect(error).toMatchObject({ type: "invalid_request_error", param: "response_format", code: "invalid_schema" });
      expect(error.message).toContain(what);
    }
    // A forced call checks the tools' schemas the same way.
    const res = await postJson(`${t.url}/v1/chat/completions`, {
      ...base,
      messages: [{ role: "user", content: "Hi" }],
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object", properties: { a: { not: { type: "string" } } } } } }],
      tool_choice: "required",
    });
    expect(res.status, res.text).toBe(400);
    expect((res.json as { error: { param: string; message: string } }).error).toMatchObject({ param: "tools" });
    expect((res.json as { error: { message: string } }).error.message).toContain("tools[0].function.parameters.properties.a.not");
  });
});
