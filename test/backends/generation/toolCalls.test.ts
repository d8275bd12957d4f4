import { describe, expect, it } from "vitest";
import { forcedCallSchema, messagesWithTools, toolMode, withToolCalls } from "../../../src/backends/generation/toolCalls.js";
import type { ChatRequest, GenerationChunk, ToolDefinition } from "../../../src/core/types.js";

const tools: ToolDefinition[] = [
  { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } }, strict: false },
  { name: "get_time", parameters: { type: "object", properties: {} }, strict: false },
];

async function run(pieces: string[], mode: "auto" | "forced", reason: "stop" | "length" = "stop"): Promise<GenerationChunk[]> {
  async function* engine(): AsyncGenerator<GenerationChunk> {
    for (const text of pieces) yield { type: "text", index: 0, text };
    yield { type: "finish", index: 0, reason };
    yield { type: "usage", usage: { promptTokens: 1, completionTokens: pieces.length } };
  }
  const out: GenerationChunk[] = [];
  for await (const c of withToolCalls(engine(), mode, tools)) out.push(c);
  return out;
}

const text = (chunks: GenerationChunk[]) => chunks.flatMap((c) => (c.type === "text" ? [c.text] : [])).join("");
const calls = (chunks: GenerationChunk[]) => chunks.flatMap((c) => (c.type === "tool_call" ? [[c.callIndex, c.name, c.arguments]] : []));
const finish = (chunks: GenerationChunk[]) => chunks.find((c) => c.type === "finish");

describe("withToolCalls", () => {
  it("auto: <tool_call> blocks split across pieces become calls, the text around them stays", async () => {
    const out = await run(
      [
        "Let me check. <tool",
        '_call>{"name": "get_weather", "argu',
        'ments": {"city": "Oslo"}}</tool_',
        "call>\n<tool_call>",
        '{"name":"get_time","arguments":{}}</tool_call>',
      ],
      "auto",
    );
    expect(text(out)).toBe("Let me check. ");
    expect(calls(out)).toEqual([
      [0, "get_weather", '{"city":"Oslo"}'],
      [1, "get_time", "{}"],
    ]);
    expect(finish(out)).toMatchObject({ reason: "tool_calls" });
  });

  it("auto: plain text passes through, a held-back '<' is released, and a block naming no declared tool stays text", async () => {
    expect(text(await run(["a < b and <t", "able>"], "auto"))).toBe("a < b and <table>");
    const bogus = await run(['<tool_call>{"name":"rm_rf","arguments":{}}</tool_call>'], "auto");
    expect(calls(bogus)).toEqual([]);
    expect(text(bogus)).toBe('<tool_call>{"name":"rm_rf","arguments":{}}</tool_call>');
    expect(finish(bogus)).toMatchObject({ reason: "stop" });
    expect(text(await run(['<tool_call>{"name":'], "auto", "length"))).toBe('<tool_call>{"name":');
  });

  it("forced: the whole answer is one call; an unparsable one (cut by max_tokens) comes back as text", async () => {
    const out = await run(['{"name": "get_time", ', '"arguments": {}}'], "forced");
    expect(calls(out)).toEqual([[0, "get_time", "{}"]]);
    expect(text(out)).toBe("");
    const cut = await run(['{"name": "get_ti'], "forced", "length");
    expect(calls(cut)).toEqual([]);
    expect(finish(cut)).toMatchObject({ reason: "length" });
  });

  it("builds the forced-call schema for one named tool or any of them", () => {
    const base = { tools, parallelToolCalls: true } as unknown as ChatRequest;
    expect(forcedCallSchema({ ...base, toolChoice: { type: "function", name: "get_time" } })).toMatchObject({ properties: { name: { const: "get_time" } } });
    expect((forcedCallSchema({ ...base, toolChoice: { type: "required" } }) as { oneOf: unknown[] }).oneOf).toHaveLength(2);
    expect(toolMode({ ...base, toolChoice: { type: "none" } })).toBe("none");
  });

  it("writes tools and the tool history into messages for templates that do not read tools", () => {
    const out = messagesWithTools(
      [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Weather?" },
        { role: "assistant", content: "", toolCalls: [{ id: "c1", name: "get_weather", arguments: '{"city":"Oslo"}' }] },
        { role: "tool", content: "sunny", toolCallId: "c1" },
      ],
      tools,
      "auto",
    );
    expect(out[0]!.content).toMatch(/^Be brief\.\n\nYou can call these functions:\n\{"name":"get_weather"/);
    expect(out[2]).toEqual({ role: "assistant", content: '<tool_call>\n{"name":"get_weather","arguments":{"city":"Oslo"}}\n</tool_call>' });
    expect(out[3]).toEqual({ role: "user", content: "<tool_response>\nsunny\n</tool_response>" });
  });
});

describe("withToolCalls, parallel_tool_calls false", () => {
  it("ends the answer after the first call: later calls and text are dropped, the finish says tool_calls", async () => {
    async function* engine(): AsyncGenerator<GenerationChunk> {
      for (const text of ['<tool_call>{"name":"get_time","arguments":{}}</tool_call>', ' and <tool_call>{"name":"get_weather","arguments":{}}</tool_call>', " more"]) {
        yield { type: "text", index: 0, text };
      }
      yield { type: "finish", index: 0, reason: "stop" };
    }
    const out: GenerationChunk[] = [];
    for await (const c of withToolCalls(engine(), "auto", tools, false)) out.push(c);
    expect(calls(out)).toEqual([[0, "get_time", "{}"]]);
    expect(text(out)).toBe("");
    expect(finish(out)).toMatchObject({ reason: "tool_calls" });
  });
});
