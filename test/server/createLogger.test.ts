import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/server/createLogger.js";

describe("createLogger", () => {
  it("writes JSON lines and redacts authorization and cookies", () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger({ level: "info", destination });
    log.info({ req: { headers: { authorization: "Bearer sk-secret", cookie: "s=1", accept: "x" } } }, "hello");
    log.info({ headers: { authorization: "Bearer sk-secret" } }, "again");
    const out = lines.join("");
    expect(out).not.toContain("sk-secret");
    expect(out).not.toContain("s=1");
    const first = JSON.parse(lines[0]!);
    expect(first.req.headers).toEqual({ authorization: "[redacted]", cookie: "[redacted]", accept: "x" });
    expect(first.msg).toBe("hello");
  });

  it("redacts credentials in the query string of a logged url", () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger({ level: "info", destination });
    log.info({ url: "/v1/models?api_key=sk-secret&limit=2&token=t0k&q=a%20b" }, "request completed");
    log.child({ reqId: "r" }).info({ url: "/health?client_secret=shh" }, "again");
    expect(lines.join("")).not.toMatch(/sk-secret|t0k|shh/);
    expect(JSON.parse(lines[0]!).url).toBe("/v1/models?api_key=[redacted]&limit=2&token=[redacted]&q=a%20b");
    expect(JSON.parse(lines[1]!).url).toBe("/health?client_secret=[redacted]");
  });
});
