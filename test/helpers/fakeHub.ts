// A local stand-in for huggingface.co, real enough that @huggingface/hub's own code runs against it. It serves
// exactly the endpoints the library and HubModelFileSystem call, with the status codes, X-Error-Code headers,
// ETag / X-Repo-Commit headers and LFS redirects the real hub sends (taken from @huggingface/hub 2.17.5's
// list-files.ts, model-info.ts, paths-info.ts, file-download-info.ts and WebBlob.ts).
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeHubRepo {
  /** The branch the files live on; default `main`. Its commit sha is derived from the repo id and branch. */
  revision?: string;
  files: Record<string, Buffer | string>;
  /** Files are visible to anyone, but `/resolve/` needs a valid token (401 GatedRepo without one). */
  gated?: boolean;
  /** Everything needs a valid token; without one the repo does not exist (401 RepoNotFound), as on the hub. */
  private?: boolean;
  /** `/resolve/` answers 200 with the whole file whatever the Range header says (a misbehaving proxy). */
  ignoreRange?: boolean;
  /** `/resolve/` GETs never answer (until the client gives up or the hub closes): for abort tests. */
  stallReads?: boolean;
  /** With `gated`: a valid token still gets 403 GatedRepo (the licence was not accepted on the hub page). */
  accessDenied?: boolean;
  /** Files whose served bytes differ from what the tree and LFS pointer describe (one byte flipped mid-file). */
  corrupt?: string[];
  /** Wait this long before each 64 KiB chunk of file content (a slow link, so tests can act mid-download). */
  chunkDelayMs?: number;
  /** The commit sha the hub reports instead of the real one (a hostile or broken hub). */
  reportedSha?: string;
  /** LFS oids the tree reports instead of the real ones, by path (a hostile or broken hub). */
  reportedLfsOid?: Record<string, string>;
}

interface FakeHubOptions {
  /** Tokens the hub accepts; any other Bearer token gets 401 everywhere. Default: any token starting `hf_`. */
  tokens?: string[];
  /** Tree page size; the next page is announced in a `Link: <...>; rel="next"` header as the hub does. */
  treePageSize?: number;
}

export interface FakeHubRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  range?: string;
  /** Whether an Authorization header came (the token itself is never recorded). */
  auth: boolean;
  /** Set when the response starts; undefined while a request is pending. */
  status?: number;
  /** The connection closed before the response was complete (the client cancelled or aborted). */
  aborted?: boolean;
}

export interface FakeHub {
  url: string;
  close(): Promise<void>;
  stats: { requests: FakeHubRequest[]; /** File content bytes written by /resolve/ and the LFS "CDN". */ bytesServed: number };
  resetStats(): void;
  /** The commit sha the hub reports for a repo's branch. */
  commitOf(repo: string): string;
  /** The next `times` content GETs of `path` (any repo) close the connection after `afterBytes` bytes of the body. */
  cutNext(path: string, afterBytes: number, times?: number): void;
  /** The sha256 of a file's content, as its LFS pointer names it. */
  sha256Of(repo: string, path: string): string;
}

interface FakeFile {
  path: string;
  content: Buffer;
  gitOid: string;
  lfs: { oid: string; size: number; pointerSize: number } | null;
}

interface PreparedRepo {
  id: string;
  spec: FakeHubRepo;
  revision: string;
  commit: string;
  files: Map<string, FakeFile>;
  dirs: Set<string>;
}

// Weights go through LFS on the hub (the default .gitattributes), and so does anything big.
const LFS_EXTENSIONS = /\.(gguf|safetensors|bin|onnx|pt|pth|h5|msgpack|model|tflite)$/;
const LFS_MIN_SIZE = 1 << 20;
const CHUNK = 64 << 10;
const LAST_MODIFIED = "2025-01-01T00:00:00.000Z";

const sha1 = (data: string | Buffer): string => createHash("sha1").update(data).digest("hex");
const gitBlobOid = (data: Buffer): string => sha1(Buffer.concat([Buffer.from(`blob ${data.length}\0`), data]));

function prepareFile(path: string, raw: Buffer | string): FakeFile {
  const content = typeof raw === "string" ? Buffer.from(raw) : raw;
  if (!LFS_EXTENSIONS.test(path) && content.length < LFS_MIN_SIZE) {
    return { path, content, gitOid: gitBlobOid(content), lfs: null };
  }
  const sha256 = createHash("sha256").update(content).digest("hex");
  const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${content.length}\n`);
  return { path, content, gitOid: gitBlobOid(pointer), lfs: { oid: sha256, size: content.length, pointerSize: pointer.length } };
}

function prepareRepo(id: string, spec: FakeHubRepo): PreparedRepo {
  const revision = spec.revision ?? "main";
  const files = new Map<string, FakeFile>();
  // Every hub repo has one; clients are expected to skip it.
  const all: Record<string, Buffer | string> = { ".gitattributes": "*.gguf filter=lfs diff=lfs merge=lfs -text\n", ...spec.files };
  const dirs = new Set<string>();
  for (const [path, raw] of Object.entries(all)) {
    files.set(path, prepareFile(path, raw));
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return { id, spec, revision, commit: sha1(`${id}@${revision}`), files, dirs };
}

/** Starts the fake hub on 127.0.0.1 with a free port. */
export async function startFakeHub(repos: Record<string, FakeHubRepo>, options: FakeHubOptions = {}): Promise<FakeHub> {
  const prepared = new Map(Object.entries(repos).map(([id, spec]) => [id, prepareRepo(id, spec)]));
  const lfsBlobs = new Map<string, { content: Buffer; path: string; repo: PreparedRepo }>();
  for (const repo of prepared.values()) for (const f of repo.files.values()) if (f.lfs) lfsBlobs.set(f.lfs.oid, { content: f.content, path: f.path, repo });
  const cuts = new Map<string, { afterBytes: number; times: number }>();
  const stats: FakeHub["stats"] = { requests: [], bytesServed: 0 };
  const pageSize = options.treePageSize ?? 1000;
  let baseUrl = "";

  const tokenState = (req: IncomingMessage): "none" | "valid" | "invalid" => {
    const header = req.headers.authorization;
    if (!header) return "none";
    const token = /^Bearer (.+)$/.exec(header)?.[1];
    if (!token) return "invalid";
    return (options.tokens ? options.tokens.includes(token) : token.startsWith("hf_")) ? "valid" : "invalid";
  };

  const sendError = (res: ServerResponse, status: number, message: string, code?: string): void => {
    res.statusCode = status;
    if (code) res.setHeader("X-Error-Code", code);
    res.setHeader("X-Error-Message", message);
    res.setHeader("Content-Type", "application/json; charset=utf-8");
    res.end(JSON.stringify({ error: message }));
  };

  const sendJson = (res: ServerResponse, body: unknown, headers: Record<string, string> = {}): void => {
    res.statusCode = 200;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.setHeader("Content-Type", "application/json; charset=utf-8");
    res.end(JSON.stringify(body));
  };

  /** Repo lookup with the hub's auth rules; returns null after answering with the error. */
  const findRepo = (req: IncomingMessage, res: ServerResponse, id: string, rev: string): PreparedRepo | null => {
    const auth = tokenState(req);
    if (auth === "invalid") {
      sendError(res, 401, "Invalid credentials in Authorization header");
      return null;
    }
    const repo = prepared.get(id);
    if (!repo || (repo.spec.private && auth !== "valid")) {
      // The hub does not tell anonymous callers whether a repo exists: 401 without a token, 404 with one.
      sendError(res, auth === "valid" ? 404 : 401, "Repository not found", "RepoNotFound");
      return null;
    }
    if (rev !== repo.revision && rev !== repo.commit) {
      sendError(res, 404, `Invalid rev id: ${rev}`, "RevisionNotFound");
      return null;
    }
    return repo;
  };

  const treeEntry = (repo: PreparedRepo, path: string, expand: boolean): Record<string, unknown> => {
    const lastCommit = expand ? { lastCommit: { id: repo.commit, title: "Upload", date: LAST_MODIFIED } } : {};
    const f = repo.files.get(path);
    if (!f) return { type: "directory", oid: sha1(`tree ${path}`), size: 0, path, ...lastCommit };
    return {
      type: "file",
      oid: f.gitOid,
      size: f.content.length,
      ...(f.lfs ? { lfs: { ...f.lfs, oid: repo.spec.reportedLfsOid?.[path] ?? f.lfs.oid } } : {}),
      path,
      ...lastCommit,
    };
  };

  const handleModelInfo = (req: IncomingMessage, res: ServerResponse, id: string, rev: string): void => {
    // `HEAD` is what modelInfo asks for when no revision is given.
    const repo = findRepo(req, res, id, rev === "HEAD" ? (prepared.get(id)?.revision ?? rev) : rev);
    if (!repo) return;
    sendJson(res, {
      _id: sha1(`id ${id}`).slice(0, 24),
      id,
      private: !!repo.spec.private,
      gated: repo.spec.gated ? "auto" : false,
      downloads: 0,
      likes: 0,
      lastModified: LAST_MODIFIED,
      pipeline_tag: "text-generation",
      sha: repo.spec.reportedSha ?? repo.commit,
      siblings: [...repo.files.keys()].sort().map((rfilename) => ({ rfilename })),
    });
  };

  const handleTree = (req: IncomingMessage, res: ServerResponse, url: URL, id: string, rev: string, path: string): void => {
    const repo = findRepo(req, res, id, rev);
    if (!repo) return;
    if (path !== "" && !repo.dirs.has(path)) {
      sendError(res, 404, `${path} does not exist on "${rev}"`, "EntryNotFound");
      return;
    }
    const recursive = ["true", "1"].includes(url.searchParams.get("recursive") ?? "");
    const expand = ["true", "1"].includes(url.searchParams.get("expand") ?? "");
    const prefix = path === "" ? "" : `${path}/`;
    const all = [...repo.dirs, ...repo.files.keys()].filter((p) => p.startsWith(prefix) && (recursive || !p.slice(prefix.length).includes("/"))).sort();
    const cursor = Number(url.searchParams.get("cursor") ?? "0");
    const page = all.slice(cursor, cursor + pageSize);
    const headers: Record<string, string> = {};
    if (cursor + pageSize < all.length) {
      const next = new URL(url.pathname + url.search, baseUrl);
      next.searchParams.set("cursor", String(cursor + pageSize));
      headers.Link = `<${next.href}>; rel="next"`;
    }
    sendJson(
      res,
      page.map((p) => treeEntry(repo, p, expand)),
      headers,
    );
  };

  const handlePathsInfo = async (req: IncomingMessage, res: ServerResponse, id: string, rev: string): Promise<void> => {
    let body = "";
    for await (const chunk of req) body += String(chunk);
    const repo = findRepo(req, res, id, rev);
    if (!repo) return;
    let parsed: { paths?: unknown; expand?: unknown };
    try {
      parsed = JSON.parse(body) as { paths?: unknown; expand?: unknown };
    } catch {
      sendError(res, 400, "Invalid JSON body");
      return;
    }
    const paths = Array.isArray(parsed.paths) ? parsed.paths.filter((p): p is string => typeof p === "string") : [];
    // Paths that do not exist are left out, not reported as errors.
    const found = paths.filter((p) => repo.files.has(p) || repo.dirs.has(p));
    sendJson(
      res,
      found.map((p) => treeEntry(repo, p, parsed.expand === true)),
    );
  };

  /** Streams `content` (or the requested range of it) in chunks, honouring backpressure and client disconnects. */
  const serveContent = async (
    req: IncomingMessage,
    res: ServerResponse,
    file: { content: Buffer; path: string; repo: PreparedRepo },
    headers: Record<string, string>,
    honourRange: boolean,
  ): Promise<void> => {
    let content = file.content;
    if (file.repo.spec.corrupt?.includes(file.path)) {
      content = Buffer.from(content);
      content[content.length >> 1] = content[content.length >> 1]! ^ 0xff;
    }
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.setHeader("Accept-Ranges", "bytes");
    res.setHeader("Content-Type", "application/octet-stream");
    const size = content.length;
    let start = 0;
    let end = size - 1;
    const range = honourRange ? parseRange(req.headers.range, size) : null;
    if (range === "unsatisfiable") {
      res.statusCode = 416;
      res.setHeader("Content-Range", `bytes */${size}`);
      res.end();
      return;
    }
    if (range) {
      [start, end] = range;
      res.statusCode = 206;
      res.setHeader("Content-Range", `bytes ${start}-${end}/${size}`);
    } else {
      res.statusCode = 200;
    }
    res.setHeader("Content-Length", String(end - start + 1));
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    let closed = false;
    res.on("close", () => (closed = true));
    const cut = req.method === "GET" ? cuts.get(file.path) : undefined;
    let cutAt = Infinity;
    if (cut) {
      cutAt = cut.afterBytes;
      if (--cut.times <= 0) cuts.delete(file.path);
    }
    let sent = 0;
    for (let pos = start; pos <= end && !closed; pos += CHUNK) {
      if (file.repo.spec.chunkDelayMs) await new Promise((r) => setTimeout(r, file.repo.spec.chunkDelayMs));
      if (closed) break;
      let chunk = content.subarray(pos, Math.min(end + 1, pos + CHUNK));
      if (sent + chunk.length >= cutAt) {
        // A connection lost mid-body: what was written arrives, then the socket dies.
        chunk = chunk.subarray(0, cutAt - sent);
        stats.bytesServed += chunk.length;
        // Give the written bytes a moment to leave before the socket dies.
        res.write(chunk, () => setTimeout(() => res.destroy(), 20));
        return;
      }
      sent += chunk.length;
      stats.bytesServed += chunk.length;
      if (!res.write(chunk))
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
    }
    if (!closed) res.end();
  };

  const handleResolve = async (req: IncomingMessage, res: ServerResponse, id: string, rev: string, path: string): Promise<void> => {
    const repo = findRepo(req, res, id, rev);
    if (!repo) return;
    if (repo.spec.gated && tokenState(req) !== "valid") {
      sendError(res, 401, `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.`, "GatedRepo");
      return;
    }
    if (repo.spec.gated && repo.spec.accessDenied) {
      sendError(
        res,
        403,
        `Access to model ${id} is restricted and you are not in the authorized list. Visit https://huggingface.co/${id} to ask for access.`,
        "GatedRepo",
      );
      return;
    }
    const file = repo.files.get(path);
    if (!file) {
      sendError(res, 404, "Entry not found", "EntryNotFound");
      return;
    }
    if (repo.spec.stallReads && req.method === "GET") return; // the client's abort (or close()) ends it
    const common = { "X-Repo-Commit": repo.commit };
    if (file.lfs) {
      // The hub redirects LFS content to its CDN; clients follow and send the Range there.
      res.statusCode = 302;
      res.setHeader("Location", `${baseUrl}/_lfs/${file.lfs.oid}${repo.spec.ignoreRange ? "?ignoreRange=1" : ""}`);
      res.setHeader("ETag", `"${file.gitOid}"`);
      res.setHeader("X-Linked-ETag", `"${file.lfs.oid}"`);
      res.setHeader("X-Linked-Size", String(file.lfs.size));
      for (const [k, v] of Object.entries(common)) res.setHeader(k, v);
      res.end();
      return;
    }
    await serveContent(req, res, { content: file.content, path: file.path, repo }, { ...common, ETag: `"${file.gitOid}"` }, !repo.spec.ignoreRange);
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", baseUrl);
    const seg = url.pathname.split("/").slice(1).map(decodeURIComponent);
    const method = req.method ?? "GET";
    if (seg[0] === "api" && seg[1] === "models" && seg.length >= 6) {
      const id = `${seg[2]}/${seg[3]}`;
      const rev = seg[5] ?? "";
      const rest = seg.slice(6).join("/");
      if (seg[4] === "revision" && method === "GET" && rest === "") return handleModelInfo(req, res, id, rev);
      if (seg[4] === "tree" && method === "GET") return handleTree(req, res, url, id, rev, rest);
      if (seg[4] === "paths-info" && method === "POST" && rest === "") return handlePathsInfo(req, res, id, rev);
    }
    if (seg.length >= 5 && seg[2] === "resolve" && (method === "GET" || method === "HEAD")) {
      return handleResolve(req, res, `${seg[0]}/${seg[1]}`, seg[3] ?? "", seg.slice(4).join("/"));
    }
    if (seg[0] === "_lfs" && seg.length === 2 && (method === "GET" || method === "HEAD")) {
      const blob = lfsBlobs.get(seg[1] ?? "");
      if (!blob) return sendError(res, 404, "Not found");
      return serveContent(req, res, blob, { ETag: `"${seg[1]}"` }, url.searchParams.get("ignoreRange") !== "1");
    }
    sendError(res, 404, `fake hub: no route for ${method} ${url.pathname}`);
  };

  const server = createServer((req, res) => {
    const entry: FakeHubRequest = { method: req.method ?? "GET", path: req.url ?? "/", auth: req.headers.authorization !== undefined };
    if (typeof req.headers.range === "string") entry.range = req.headers.range;
    stats.requests.push(entry);
    res.on("close", () => {
      if (!res.writableFinished) entry.aborted = true;
    });
    const origWriteHead = res.writeHead.bind(res);
    res.writeHead = ((...args: Parameters<typeof res.writeHead>) => {
      entry.status = args[0];
      return origWriteHead(...args);
    }) as typeof res.writeHead;
    route(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, `fake hub error: ${String(err)}`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: baseUrl,
    stats,
    resetStats() {
      stats.requests.length = 0;
      stats.bytesServed = 0;
    },
    cutNext(path, afterBytes, times = 1) {
      cuts.set(path, { afterBytes, times });
    },
    sha256Of(repo, path) {
      const f = prepared.get(repo)?.files.get(path);
      if (!f) throw new Error(`fake hub has no ${path} in ${repo}`);
      return createHash("sha256").update(f.content).digest("hex");
    },
    commitOf(repo) {
      const r = prepared.get(repo);
      if (!r) throw new Error(`fake hub has no repo ${repo}`);
      return r.commit;
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Stalled and keep-alive connections would otherwise hold close() open.
        server.closeAllConnections();
      });
    },
  };
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n`; null (serve everything) for absent or malformed headers, as RFC 9110 says. */
function parseRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size) return "unsatisfiable";
  if (end < start) return null;
  return [start, end];
}
