import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pythonExecutable } from "../fixtures/ensurePythonFixtures.js";
import { startTestDaemon, type TestDaemon } from "../helpers/startTestDaemon.js";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("./langchain_agent.py", import.meta.url));

let t: TestDaemon;
beforeAll(async () => {
  t = await startTestDaemon({ contextSize: 1024 });
});
afterAll(() => t?.close());

interface AgentResult {
  invoke: { tool_calls: { name: string; args: { city: string }; id: string }[]; content: string };
  stream: { tool_calls: { name: string; args: { city: string } }[] };
  round_trip: { content_is_text: boolean; tool_calls: unknown[] };
  function_calling: { answer: string; sure: boolean };
  json_schema: { answer: string; sure: boolean };
  json_mode: { raw_starts_with_brace: boolean };
}

// langchain-openai (PyPI, in the dev venv) drives the daemon as it would OpenAI: bind_tools, stream, a tool round
// trip and all three with_structured_output methods, on the in-process GGUF engine (random weights: the grammar
// is what makes the calls and objects valid).
describe("LangChain agents against the daemon", () => {
  it("bind_tools, streaming, a tool round trip and with_structured_output work unchanged", async () => {
    const python = await pythonExecutable();
    const { stdout } = await run(python, [SCRIPT, `${t.url}/v1`, "tiny-chat"], { timeout: 120_000, env: { ...process.env, OPENAI_API_KEY: "unused" } });
    const r = JSON.parse(stdout.trim().split("\n").at(-1)!) as AgentResult;
    expect(r.invoke.tool_calls).toHaveLength(1);
    expect(r.invoke.tool_calls[0]).toMatchObject({ name: "get_weather", id: expect.stringMatching(/^call_/) });
    expect(["Oslo", "Lima"]).toContain(r.invoke.tool_calls[0]!.args.city);
    expect(r.stream.tool_calls[0]!.name).toBe("get_weather");
    expect(["Oslo", "Lima"]).toContain(r.stream.tool_calls[0]!.args.city);
    expect(r.round_trip).toEqual({ content_is_text: true, tool_calls: [] });
    for (const method of ["function_calling", "json_schema"] as const) {
      expect(["yes", "no"]).toContain(r[method].answer);
      expect(typeof r[method].sure).toBe("boolean");
    }
    expect(r.json_mode.raw_starts_with_brace).toBe(true);
  }, 180_000);
});
