import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { inspect } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FileTooLargeError } from "../../../src/detection/ModelFileSystem.js";
import { HubError } from "../../../src/detection/hub/HubError.js";
import { HubModelFileSystem, type HubModelFileSystemOptions } from "../../../src/detection/hub/HubModelFileSystem.js";
import { startFakeHub, type FakeHub } from "../../helpers/fakeHub.js";

const TOKEN = "hf_fake_secret_token_1234567890";
const WRONG_TOKEN = "hf_wrong_secret_token_0987654321";
const BIG_SIZE = 50_000_000;
const MARK_AT = 30_000_000;
const MARK = "middle-of-the-weights";

// One zero-filled buffer (calloc: cheap) with a marker far from the start, shared by every repo that needs it.
const big = Buffer.alloc(BIG_SIZE);
big.write(MARK, MARK_AT);
big.write("TAIL", BIG_SIZE - 4);

let hub: FakeHub;

beforeAll(async () => {
  hub = await startFakeHub(
    {
      "acme/tiny": {
        files: {
          "config.json": '{"architectures":["LlamaForCausalLM"]}',
          "tokenizer/tokenizer.json": '{"model":{}}',
          "sub/dir/notes.md": "# notes\n",
          "weights/model.safetensors": Buffer.alloc(4096, 7),
          "big.bin": big,
          "empty.txt": "",
          "with space.txt": "spaced",
        },
      },
      "acme/versioned": { revision: "v2", files: { "a.txt": "from v2" } },
      "acme/gated": { gated: true, files: { "config.json": '{"gated":true}' } },
      "acme/private": { private: true, files: { "config.json": '{"private":true}' } },
      "acme/proxy": { ignoreRange: true, files: { "big.bin": big, "small.txt": "hello", "mid.txt": "0123456789" } },
      "acme/stall": { stallReads: true, files: { "x.txt": "never served" } },
      "acme/many": { files: Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`f${String(i).padStart(2, "0")}.txt`, "x"])) },
    },
    { tokens: [TOKEN], treePageSize: 10 },
  );
});

afterAll(async () => {
  await hub.close();
});

beforeEach(() => hub.resetStats());

const hubFs = (repo: string, extra: Partial<HubModelFileSystemOptions> = {}): HubModelFileSystem => new HubModelFileSystem({ repo, hubUrl: hub.url, ...extra });

async function hubError(p: Promise<unknown>): Promise<HubError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubError);
  return err as HubError;
}

/** Polls until `cond` holds (the fake hub learns of client hang-ups asynchronously). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
}

const resolveRequests = (): typeof hub.stats.requests => hub.stats.requests.filter((r) => r.path.includes("/resolve/") || r.path.startsWith("/_lfs/"));

describe("HubModelFileSystem listing", () => {
  it("lists nested files with real sizes, sorted, without directories or dotfiles, pinned to the commit", async () => {
    let calls = 0;
    const fs = hubFs("acme/tiny", { fetch: (input, init) => (calls++, fetch(input, init)) });
    expect(fs.label).toBe("acme/tiny@main");
    const files = await fs.list();
    expect(files).toEqual([
      { path: "big.bin", size: BIG_SIZE },
      { path: "config.json", size: 38 },
      { path: "empty.txt", size: 0 },
      { path: "sub/dir/notes.md", size: 8 },
      { path: "tokenizer/tokenizer.json", size: 12 },
      { path: "weights/model.safetensors", size: 4096 },
      { path: "with space.txt", size: 6 },
    ]);
    // A second listing is served from memory.
    await fs.list();
    const commit = hub.commitOf("acme/tiny");
    const paths = hub.stats.requests.map((r) => r.path.split("?")[0]);
    expect(paths[0]).toBe("/api/models/acme/tiny/revision/main");
    // 10 entries per page on this hub: the tree walk follows the Link header, always at the pinned commit.
    expect(paths.slice(1)).toEqual([1, 2].map(() => `/api/models/acme/tiny/tree/${commit}`));
    expect(calls).toBe(3);
    expect(hub.stats.bytesServed).toBe(0);
  });

  it("stops listing (and paging) at maxFiles", async () => {
    const files = await hubFs("acme/many", { maxFiles: 12 }).list();
    expect(files).toHaveLength(12);
    expect(hub.stats.requests.filter((r) => r.path.includes("/tree/"))).toHaveLength(2);
  });

  it("uses the given revision, and a commit sha without resolving it", async () => {
    const fs = hubFs("acme/versioned", { revision: "v2" });
    expect(fs.label).toBe("acme/versioned@v2");
    expect(await fs.readText("a.txt", 100)).toBe("from v2");
    const commit = hub.commitOf("acme/versioned");
    expect(resolveRequests().map((r) => r.path)).toEqual([`/acme/versioned/resolve/${commit}/a.txt`]);

    hub.resetStats();
    expect(await hubFs("acme/versioned", { revision: commit }).list()).toEqual([{ path: "a.txt", size: 7 }]);
    expect(hub.stats.requests.some((r) => r.path.includes("/revision/"))).toBe(false);
  });

  it("reports a missing revision", async () => {
    const err = await hubError(hubFs("acme/versioned").list());
    expect(err.kind).toBe("not-found");
    expect(err.status).toBe(404);
    expect(err.message).toBe("revision main not found in acme/versioned");
  });

  it("reports a missing repo, with and without a token (anonymous callers get 401 RepoNotFound from the hub)", async () => {
    const withToken = await hubError(hubFs("acme/nope", { accessToken: TOKEN }).list());
    expect(withToken.kind).toBe("not-found");
    expect(withToken.status).toBe(404);
    expect(withToken.message).toMatch(/^repo acme\/nope not found on http:\/\/127\.0\.0\.1:\d+ \(or it is private/);

    const anonymous = await hubError(hubFs("acme/nope").list());
    expect(anonymous.kind).toBe("not-found");
    expect(anonymous.status).toBe(401);
    expect(anonymous.message).toContain("gated or private: set HF_TOKEN");
  });

  it("retries after a failed listing instead of caching the failure", async () => {
    const fs = hubFs("acme/tiny");
    const ac = new AbortController();
    ac.abort();
    await expect(fs.list(ac.signal)).rejects.toThrow();
    expect(await fs.list()).toHaveLength(7);
  });
});

describe("HubModelFileSystem reads", () => {
  it("reads exact ranges of a 50 MB LFS file, fetching only those bytes", async () => {
    const fs = hubFs("acme/tiny");
    const src = await fs.open("big.bin");
    expect(src.size).toBe(BIG_SIZE);
    hub.resetStats();

    expect(Buffer.from(await src.read(MARK_AT, MARK.length)).toString()).toBe(MARK);
    // Past the end: fewer bytes, and nothing at all without a request.
    expect(Buffer.from(await src.read(BIG_SIZE - 4, 1 << 20)).toString()).toBe("TAIL");
    expect(await src.read(BIG_SIZE, 10)).toHaveLength(0);
    expect(await src.read(5, 0)).toHaveLength(0);

    expect(hub.stats.bytesServed).toBe(MARK.length + 4);
    const ranges = resolveRequests().map((r) => `${r.status} ${r.range}`);
    // Each read: the hub's 302 to its CDN, then the CDN's 206.
    expect(ranges).toEqual([
      `302 bytes=${MARK_AT}-${MARK_AT + MARK.length - 1}`,
      `206 bytes=${MARK_AT}-${MARK_AT + MARK.length - 1}`,
      `302 bytes=${BIG_SIZE - 4}-${BIG_SIZE - 1}`,
      `206 bytes=${BIG_SIZE - 4}-${BIG_SIZE - 1}`,
    ]);
    await src.close();
    await expect(src.read(0, 1)).rejects.toThrow(/closed/);
  });

  it("reads small non-LFS files and paths that need encoding", async () => {
    const fs = hubFs("acme/tiny");
    const src = await fs.open("sub/dir/notes.md");
    expect(Buffer.from(await src.read(2, 5)).toString()).toBe("notes");
    expect(await fs.readText("with space.txt", 100)).toBe("spaced");
    expect(resolveRequests().some((r) => r.path.endsWith("/with%20space.txt"))).toBe(true);
  });

  it("readText checks the listed size before fetching anything", async () => {
    const fs = hubFs("acme/tiny");
    expect(await fs.readText("config.json", 1000)).toBe('{"architectures":["LlamaForCausalLM"]}');
    expect(await fs.readText("empty.txt", 10)).toBe("");
    hub.resetStats();
    await expect(fs.readText("config.json", 10)).rejects.toBeInstanceOf(FileTooLargeError);
    await expect(fs.readText("big.bin", 1 << 20)).rejects.toThrow(/big\.bin is 50000000 bytes/);
    expect(hub.stats.requests).toHaveLength(0);
    expect(hub.stats.bytesServed).toBe(0);
  });

  it("refuses files that are not in the listing", async () => {
    const fs = hubFs("acme/tiny");
    const err = await hubError(fs.open("missing.gguf"));
    expect(err.kind).toBe("not-found");
    expect(err.message).toMatch(/^missing\.gguf not found in acme\/tiny@main on http/);
    expect((await hubError(fs.readText("sub/dir", 10))).kind).toBe("not-found");
    expect(resolveRequests()).toHaveLength(0);
  });
});

describe("HubModelFileSystem gated and private repos", () => {
  // inspect: the cause's message, stack, own properties and nested causes (String() of a non-Error is "[object Object]").
  const allMessages = (e: HubError): string => [e.message, e.stack, inspect(e.cause, { depth: 8 })].join("\n");

  it("lists a gated repo anonymously but needs HF_TOKEN to read it", async () => {
    const anonymous = hubFs("acme/gated");
    expect(await anonymous.list()).toEqual([{ path: "config.json", size: 14 }]);
    const err = await hubError(anonymous.readText("config.json", 100));
    expect(err.kind).toBe("unauthorized");
    expect(err.status).toBe(401);
    expect(err.message).toBe("config.json in acme/gated@main: gated or private repo: set HF_TOKEN");

    expect(await hubFs("acme/gated", { accessToken: TOKEN }).readText("config.json", 100)).toBe('{"gated":true}');
    const authed = hub.stats.requests.filter((r) => r.auth);
    expect(authed.length).toBeGreaterThan(0);
  });

  it("reports a rejected token without ever showing it", async () => {
    const errors = [
      await hubError(hubFs("acme/gated", { accessToken: WRONG_TOKEN }).list()),
      await hubError(hubFs("acme/gated", { accessToken: WRONG_TOKEN, revision: hub.commitOf("acme/gated") }).open("config.json")),
      await hubError(hubFs("acme/private", { accessToken: WRONG_TOKEN }).list()),
    ];
    for (const e of errors) {
      expect(e.kind).toBe("unauthorized");
      expect(e.message).toContain("HF_TOKEN was rejected or has no access");
      expect(allMessages(e)).not.toContain(WRONG_TOKEN);
      expect(allMessages(e)).not.toContain("hf_wrong");
    }
  });

  it("reads a private repo only with a valid token", async () => {
    const err = await hubError(hubFs("acme/private").list());
    expect(err.kind).toBe("not-found");
    expect(err.message).toContain("set HF_TOKEN");
    expect(await hubFs("acme/private", { accessToken: TOKEN }).readText("config.json", 100)).toBe('{"private":true}');
  });

  it("rejects malformed tokens and ids before any request, without echoing the token", () => {
    const bad = "not_a_hf_token_secret";
    const e = (() => {
      try {
        hubFs("acme/tiny", { accessToken: bad });
      } catch (err) {
        return err as HubError;
      }
      throw new Error("no error");
    })();
    expect(e.kind).toBe("invalid");
    expect(allMessages(e)).not.toContain(bad);
    expect(() => hubFs("acme/tiny", { accessToken: "" })).not.toThrow();
    expect(() => hubFs("not a repo")).toThrow(HubError);
    expect(() => hubFs("acme/tiny", { revision: "main:file" })).toThrow(HubError);
    expect(() => hubFs("acme/tiny", { hubUrl: "ftp://example" })).toThrow(/http/);
  });
});

describe("HubModelFileSystem failures", () => {
  it("maps an unreachable hub to HubError", async () => {
    // A port that was just free: nothing listens there now.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const err = await hubError(new HubModelFileSystem({ repo: "acme/tiny", hubUrl: `http://127.0.0.1:${port}` }).list());
    expect(err.kind).toBe("unreachable");
    expect(err.message).toBe(`cannot reach http://127.0.0.1:${port} (ECONNREFUSED)`);
  });

  it("aborts an in-flight read", async () => {
    const fs = hubFs("acme/stall");
    const src = await fs.open("x.txt");
    const ac = new AbortController();
    const read = src.read(0, 5, ac.signal);
    const settled = read.then(
      () => "resolved",
      (e: unknown) => e,
    );
    // Wait until the hub holds the request, so the abort hits a fetch in flight.
    await until(() => resolveRequests().length > 0);
    expect(resolveRequests()).toHaveLength(1);
    expect(resolveRequests()[0]?.status).toBeUndefined();
    const started = Date.now();
    ac.abort();
    const err = await settled;
    expect(err).toBeInstanceOf(DOMException);
    expect((err as DOMException).name).toBe("AbortError");
    expect(Date.now() - started).toBeLessThan(1000);
    await until(() => resolveRequests()[0]?.aborted === true);
    expect(resolveRequests()[0]?.aborted).toBe(true);
    // An already-aborted signal sends nothing.
    hub.resetStats();
    await expect(src.read(0, 5, ac.signal)).rejects.toMatchObject({ name: "AbortError" });
    expect(hub.stats.requests).toHaveLength(0);
  });

  it("gives up on a hub that never answers", async () => {
    const fs = hubFs("acme/stall", { timeoutMs: 200 });
    const src = await fs.open("x.txt");
    const err = await hubError(src.read(0, 5));
    expect(err.kind).toBe("unreachable");
    expect(err.message).toMatch(/no answer within/);
  });

  it("stops a server that ignores Range instead of downloading the whole file", async () => {
    const fs = hubFs("acme/proxy");
    const src = await fs.open("big.bin");
    hub.resetStats();
    const err = await hubError(src.read(MARK_AT, 1024));
    expect(err.kind).toBe("range-unsupported");
    expect(err.message).toContain("ignored the Range header for big.bin in acme/proxy@main");
    // The client hangs up rather than leaving the body pending; what the server pushed by then is what the
    // socket buffers took (about 4 MB on loopback), not the file.
    await until(() => resolveRequests()[1]?.aborted === true);
    expect(hub.stats.bytesServed).toBeLessThan(BIG_SIZE / 4);
    expect(resolveRequests().map((r) => `${r.status} ${r.aborted ?? false}`)).toEqual(["302 false", "200 true"]);

    // Non-LFS file, partial read: same refusal. Whole-file reads are what a 200 carries, so they still work.
    const mid = await fs.open("mid.txt");
    expect((await hubError(mid.read(2, 3))).kind).toBe("range-unsupported");
    expect(await fs.readText("small.txt", 100)).toBe("hello");
  });
});
