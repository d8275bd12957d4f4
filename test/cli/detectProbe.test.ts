import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTinyChatModel, TINY_CHAT_TEMPLATE } from "../fixtures/makeTinyChatModel.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { runCli } from "../helpers/spawnCli.js";

// `detect` tries a local model for real: a chat template that cannot be rendered is reported, not found at the first request.
describe("tabagent detect: probing local models", () => {
  let dir: string;
  let hostile: string;
  let hanging: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "tabagent-detect-probe-"));
    hostile = join(dir, "hostile.gguf");
    hanging = join(dir, "hanging.gguf");
    await writeFile(hostile, makeTinyChatModel({ chatTemplate: TINY_CHAT_TEMPLATE + "{% for i in range(30000000) %}{% endfor %}" }));
    await writeFile(hanging, makeTinyChatModel({ chatTemplate: "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}" }));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reports a template that exhausts memory or hangs as unusable, and a good one as nothing", async () => {
    const { chatModelPath } = await ensureFixtures();
    const r = await runCli(["detect", "--json", "--data-dir", join(dir, "data"), hostile, hanging, chatModelPath]);
    expect(r.code, r.stderr).toBe(0);
    const [h, g, good] = JSON.parse(r.stdout) as { warnings: string[]; details: Record<string, unknown>; engine: { name: string } | null }[];
    expect(h!.details["chatTemplateProblem"]).toBe("rendering it needs more than 128 MiB of memory");
    expect(h!.warnings.at(-1)).toMatch(/^chat template unusable: /);
    expect(g!.details["chatTemplateProblem"]).toBe("rendering it took more than 2000 ms");
    expect(good!.details["chatTemplateProblem"]).toBeUndefined();
    expect(good!.engine?.name).toBe("node-llama-cpp");
  });

  it("--no-probe keeps detection to headers", async () => {
    const r = await runCli(["detect", "--json", "--no-probe", hostile]);
    expect(r.code, r.stderr).toBe(0);
    const [h] = JSON.parse(r.stdout) as { details: Record<string, unknown> }[];
    expect(h!.details["chatTemplateProblem"]).toBeUndefined();
  });
});
