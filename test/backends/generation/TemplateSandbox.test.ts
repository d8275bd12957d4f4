import { afterEach, describe, expect, it } from "vitest";
import { TemplateRenderError, TemplateSandbox, TemplateUnusableError } from "../../../src/backends/generation/TemplateSandbox.js";

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const messages = [{ role: "user", content: "hello" }];

/** The longest gap between event-loop ticks while `work` runs: the daemon's loop must stay free. */
async function longestStall<T>(work: Promise<T>): Promise<{ result: PromiseSettledResult<T>; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 10);
  const [result] = await Promise.allSettled([work]);
  clearInterval(timer);
  return { result, stallMs };
}

describe("TemplateSandbox", () => {
  const opened: TemplateSandbox[] = [];
  const open = async (source: string, options?: Parameters<typeof TemplateSandbox.open>[1]) => {
    const s = await TemplateSandbox.open(source, options);
    opened.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  it("renders a chat template off the event loop", async () => {
    const s = await open(CHATML);
    expect(s.problem).toBeNull();
    expect(await s.render({ messages, add_generation_prompt: true })).toBe("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n");
  });

  it("a template that allocates without end exhausts its own worker's heap, not the daemon's", async () => {
    const s = await open(CHATML + "{% for i in range(30000000) %}{% endfor %}", { timeoutMs: 20_000 });
    const { result, stallMs } = await longestStall(s.render({ messages, add_generation_prompt: true }));
    expect(result.status).toBe("rejected");
    expect((result as PromiseRejectedResult).reason).toBeInstanceOf(TemplateUnusableError);
    expect(s.problem).toMatch(/memory|took more than/);
    expect(stallMs).toBeLessThan(500);
    // Known bad from now on: later calls fail at once.
    await expect(s.render({ messages })).rejects.toBeInstanceOf(TemplateUnusableError);
  });

  it("a template that loops for ever is stopped at the deadline", async () => {
    const loop = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
    const s = await open(loop, { timeoutMs: 300 });
    const started = performance.now();
    const { result, stallMs } = await longestStall(s.render({ messages }));
    expect((result as PromiseRejectedResult).reason).toBeInstanceOf(TemplateUnusableError);
    expect(s.problem).toBe("rendering it took more than 300 ms");
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(stallMs).toBeLessThan(500);
  });

  it("an error raised by the template fails that render only", async () => {
    const s = await open("{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}ok");
    await expect(s.render({ messages })).rejects.toBeInstanceOf(TemplateRenderError);
    expect(s.problem).toBeNull();
    expect(await s.render({ messages: [{ role: "system", content: "" }] })).toBe("ok");
  });

  it("a template that does not compile is unusable with the parser's reason", async () => {
    const s = await open("{% for %}");
    expect(s.problem).toMatch(/^it does not compile: /);
    await expect(s.render({ messages })).rejects.toBeInstanceOf(TemplateUnusableError);
  });

  it("refuses a prompt longer than the cap", async () => {
    const s = await open("{% for i in range(2000) %}xxxxxxxxxx{% endfor %}", { maxOutputChars: 10_000 });
    await expect(s.render({ messages })).rejects.toThrow(/longer than 10000 characters/);
    expect(s.problem).toBeNull();
  });

  it("reads node-llama-cpp's stop triggers for a template in the sandbox", async () => {
    const s = await open(CHATML);
    const triggers = await s.stopTriggers({ bosString: "<s>", metadata: { general: { architecture: "llama" }, tokenizer: { chat_template: CHATML } } });
    expect(JSON.stringify(triggers)).toContain("<|im_end|>");
    expect(JSON.stringify(await s.stopTriggers({ override: CHATML }))).toContain('"EOS"');
  });
});
