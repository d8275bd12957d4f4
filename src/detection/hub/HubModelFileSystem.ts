import { listFiles, modelInfo } from "@huggingface/hub";
import { abortable } from "../../core/abortable.js";
import type { ByteSource } from "../gguf/ByteSource.js";
import { FileTooLargeError, type ModelFileEntry, type ModelFileSystem } from "../ModelFileSystem.js";
import { HubError, hubErrorFromResponse, type HubRequestContext } from "./HubError.js";
import { DEFAULT_HUB_REVISION, parseHubSource } from "./parseHubSource.js";

export const DEFAULT_HUB_URL = "https://huggingface.co";

export interface HubModelFileSystemOptions {
  /** `owner/name`. */
  repo: string;
  /** Branch, tag or commit; default `main`. Pinned to its commit on first use so every read sees one snapshot. */
  revision?: string;
  /** Default https://huggingface.co; tests point it at a local fake hub. */
  hubUrl?: string;
  /** For gated and private repos (usually `HF_TOKEN`). Sent as a Bearer token, never put in messages. */
  accessToken?: string;
  fetch?: typeof fetch;
  /** Listing stops after this many files (a repo with millions of files must not turn detection into a crawl). */
  maxFiles?: number;
  /** Per operation (one listing page walk, one ranged read); a stalled hub fails instead of hanging. */
  timeoutMs?: number;
}

const MAX_FILES = 10_000;
const TIMEOUT_MS = 60_000;
const COMMIT_SHA = /^[0-9a-f]{40}$/;

/** One request (or a short sequence) with its combined signal, and the mapping of whatever it threw. */
interface Operation {
  signal: AbortSignal;
  /** Like fetch, but attaches the signal and throws HubError for network failures and non-2xx answers. */
  fetch: typeof fetch;
  /** Turns anything thrown during the operation into a HubError, or the caller's abort reason. */
  fail(err: unknown): unknown;
}

/**
 * A Hugging Face repo as a ModelFileSystem: the listing comes from the hub's tree API (through @huggingface/hub),
 * file contents from HTTP range requests on `/resolve/`. Nothing ever downloads a whole weights file: every read
 * asks for exactly the bytes it needs and refuses servers that ignore the Range header.
 *
 * The commit and the listing are fetched once and shared; a load in flight runs under the signal of the caller
 * that started it (another caller's signal only stops that caller's wait), and a failed load is retried next time.
 */
export class HubModelFileSystem implements ModelFileSystem {
  readonly label: string;
  readonly repo: string;
  readonly revision: string;
  readonly hubUrl: string;
  private readonly accessToken: string | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly maxFiles: number;
  private readonly timeoutMs: number;
  private commitPromise: Promise<string> | null = null;
  private listingPromise: Promise<ModelFileEntry[]> | null = null;

  constructor(options: HubModelFileSystemOptions) {
    const revision = options.revision ?? DEFAULT_HUB_REVISION;
    const parsed = parseHubSource(`${options.repo}@${revision}`);
    if (!parsed || parsed.repo !== options.repo || parsed.revision !== revision || parsed.file !== null) {
      throw new HubError("invalid", `not a valid Hugging Face repo id and revision: ${options.repo}@${revision}`);
    }
    this.repo = parsed.repo;
    this.revision = parsed.revision;
    this.label = `${this.repo}@${this.revision}`;
    this.hubUrl = normalizeHubUrl(options.hubUrl ?? DEFAULT_HUB_URL);
    // An empty HF_TOKEN means "no token", not "send an empty one".
    this.accessToken = options.accessToken || undefined;
    // @huggingface/hub refuses other tokens with a TypeError; say so up front, without echoing the token.
    if (this.accessToken !== undefined && !this.accessToken.startsWith("hf_")) {
      throw new HubError("invalid", "HF_TOKEN must be a Hugging Face access token (it starts with hf_)");
    }
    this.fetchImpl = options.fetch ?? fetch;
    this.maxFiles = options.maxFiles ?? MAX_FILES;
    this.timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  }

  /** The commit the revision points to, resolved once (`GET /api/models/:repo/revision/:rev`). */
  resolveCommit(signal?: AbortSignal): Promise<string> {
    if (COMMIT_SHA.test(this.revision)) return Promise.resolve(this.revision);
    if (!this.commitPromise) {
      const p = this.fetchCommit(signal);
      this.commitPromise = p;
      p.catch(() => {
        if (this.commitPromise === p) this.commitPromise = null;
      });
    }
    return abortable(this.commitPromise, signal);
  }

  async list(signal?: AbortSignal): Promise<ModelFileEntry[]> {
    if (!this.listingPromise) {
      const p = this.fetchListing(signal);
      this.listingPromise = p;
      p.catch(() => {
        if (this.listingPromise === p) this.listingPromise = null;
      });
    }
    const entries = await abortable(this.listingPromise, signal);
    return entries.map((e) => ({ ...e }));
  }

  async open(path: string, signal?: AbortSignal): Promise<ByteSource> {
    const entry = await this.entry(path, signal);
    const url = this.resolveUrl(await this.resolveCommit(signal), path);
    let closed = false;
    return {
      size: entry.size,
      read: async (offset, length, readSignal) => {
        if (closed) throw new Error(`${path} in ${this.label} is closed`);
        return this.readRange(url, entry, offset, length, readSignal);
      },
      close: async () => {
        closed = true;
      },
    };
  }

  async readText(path: string, maxBytes: number, signal?: AbortSignal): Promise<string> {
    const entry = await this.entry(path, signal);
    // The listed size decides before any byte is fetched.
    if (entry.size > maxBytes) throw new FileTooLargeError(path, entry.size, maxBytes);
    const url = this.resolveUrl(await this.resolveCommit(signal), path);
    const bytes = await this.readRange(url, entry, 0, entry.size, signal);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  }

  private async entry(path: string, signal?: AbortSignal): Promise<ModelFileEntry> {
    const entry = (await this.list(signal)).find((e) => e.path === path);
    if (!entry) throw new HubError("not-found", `${path} not found in ${this.label} on ${this.hubUrl}`);
    return entry;
  }

  private async fetchCommit(signal?: AbortSignal): Promise<string> {
    const op = this.operation(signal);
    try {
      const info = await modelInfo({
        name: this.repo,
        revision: this.revision,
        additionalFields: ["sha"],
        hubUrl: this.hubUrl,
        accessToken: this.accessToken,
        fetch: op.fetch,
      });
      // A mirror without `sha` still works, just without pinning.
      return typeof info.sha === "string" && info.sha !== "" ? info.sha : this.revision;
    } catch (err) {
      throw op.fail(err);
    }
  }

  private async fetchListing(signal?: AbortSignal): Promise<ModelFileEntry[]> {
    const commit = await this.resolveCommit(signal);
    const op = this.operation(signal);
    const out: ModelFileEntry[] = [];
    try {
      for await (const e of listFiles({
        repo: this.repo,
        revision: commit,
        recursive: true,
        hubUrl: this.hubUrl,
        accessToken: this.accessToken,
        fetch: op.fetch,
      })) {
        if (e.type !== "file") continue;
        // Same rule as LocalModelFileSystem: dotfiles (`.gitattributes`) are not model files.
        if (e.path.split("/").some((seg) => seg.startsWith("."))) continue;
        // For LFS files the tree's `size` has been the pointer's on some hub versions; `lfs.size` is the content.
        out.push({ path: e.path, size: e.lfs?.size ?? e.size });
        // Leaving the loop ends the generator, so no further pages are requested.
        if (out.length >= this.maxFiles) break;
      }
    } catch (err) {
      throw op.fail(err);
    }
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  private resolveUrl(commit: string, path: string): string {
    const segments = path.split("/").map(encodeURIComponent).join("/");
    return `${this.hubUrl}/${this.repo}/resolve/${encodeURIComponent(commit)}/${segments}`;
  }

  private async readRange(url: string, entry: ModelFileEntry, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`invalid read of ${length} bytes at ${offset} in ${entry.path}`);
    }
    const end = Math.min(entry.size, offset + length); // exclusive
    if (end <= offset) return new Uint8Array(0);
    const want = end - offset;
    const op = this.operation(signal, entry.path);
    try {
      const res = await op.fetch(url, {
        headers: {
          Range: `bytes=${offset}-${end - 1}`,
          // Content-Range counts encoded bytes; ask for none so the byte positions are the file's.
          "Accept-Encoding": "identity",
          ...this.authHeader(),
        },
      });
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
        if (!m || Number(m[1]) !== offset || Number(m[2]) !== end - 1) {
          await cancelBody(res);
          throw new HubError(
            "bad-response",
            `${this.hubUrl} answered bytes ${m ? `${m[1]}-${m[2]}` : "(no Content-Range)"} of ${entry.path} for a request of ${offset}-${end - 1}`,
            { status: 206 },
          );
        }
      } else if (res.status === 200) {
        // A 200 carries the whole file. That is what was asked only when the read covers the whole file.
        if (offset !== 0 || end !== entry.size) {
          await cancelBody(res);
          throw new HubError(
            "range-unsupported",
            `${this.hubUrl} (or a proxy in between) ignored the Range header for ${entry.path} in ${this.label} and sent the whole ` +
              `${entry.size}-byte file; stopped instead of downloading it to read ${want} bytes`,
            { status: 200 },
          );
        }
      } else {
        await cancelBody(res);
        throw new HubError("bad-response", `${this.hubUrl} answered HTTP ${res.status} to a ranged read of ${entry.path}`, {
          status: res.status,
        });
      }
      return await readExactly(res, want, `${entry.path} in ${this.label}`);
    } catch (err) {
      throw op.fail(err);
    }
  }

  private authHeader(): Record<string, string> {
    return this.accessToken ? { Authorization: `Bearer ${this.accessToken}` } : {};
  }

  private operation(signal: AbortSignal | undefined, path?: string): Operation {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const ctx: HubRequestContext = {
      hubUrl: this.hubUrl,
      repo: this.repo,
      revision: this.revision,
      tokenSent: this.accessToken !== undefined,
      ...(path === undefined ? {} : { path }),
    };
    const fail = (err: unknown): unknown => {
      // The caller's own abort stays an abort, so callers can tell cancellation from failure.
      if (signal?.aborted) return signal.reason;
      if (err instanceof HubError) return err;
      if (timeout.aborted) {
        return new HubError("unreachable", `cannot reach ${this.hubUrl}: no answer within ${Math.round(this.timeoutMs / 1000)} s`);
      }
      if (err instanceof TypeError && err.message === "terminated") {
        return new HubError("unreachable", `connection to ${this.hubUrl} lost during a read from ${this.label}`, { cause: err });
      }
      if (err instanceof SyntaxError) return new HubError("bad-response", `${this.hubUrl} sent malformed JSON for ${this.label}`);
      const code = networkErrorCode(err);
      if (err instanceof TypeError || code) {
        return new HubError("unreachable", `cannot reach ${this.hubUrl}${code ? ` (${code})` : ""}`, { cause: err });
      }
      return new HubError("bad-response", `unexpected failure talking to ${this.hubUrl} about ${this.label}: ${String(err)}`);
    };
    const wrapped: typeof fetch = async (input, init) => {
      let res: Response;
      try {
        res = await this.fetchImpl(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, combined]) : combined });
      } catch (err) {
        throw fail(err);
      }
      if (!res.ok) {
        const error = hubErrorFromResponse(res, ctx);
        await cancelBody(res);
        throw error;
      }
      return res;
    };
    return { signal: combined, fetch: wrapped, fail };
  }
}

function normalizeHubUrl(hubUrl: string): string {
  let url: URL;
  try {
    url = new URL(hubUrl);
  } catch {
    throw new HubError("invalid", `not a valid hub URL: ${hubUrl}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new HubError("invalid", `hub URL must be http(s): ${hubUrl}`);
  if (url.username || url.password) throw new HubError("invalid", "hub URL must not carry credentials; use HF_TOKEN");
  return url.href.replace(/\/+$/, "");
}

/** ECONNREFUSED, ENOTFOUND, ...: undici puts it on `cause` (sometimes inside an AggregateError). */
function networkErrorCode(err: unknown): string | null {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const rec = e as { code?: unknown; errors?: unknown[]; cause?: unknown };
    if (typeof rec.code === "string" && /^E[A-Z_]+$|^UND_ERR/.test(rec.code)) return rec.code;
    e = rec.cause ?? rec.errors?.[0];
  }
  return null;
}

async function cancelBody(res: Response): Promise<void> {
  // Cancelling closes the connection, so the server stops sending what we will not read.
  await res.body?.cancel().catch(() => {});
}

/** Reads exactly `want` bytes; more means the server ignored our range, fewer means the body was cut short. */
async function readExactly(res: Response, want: number, what: string): Promise<Uint8Array> {
  const out = new Uint8Array(want);
  let got = 0;
  if (res.body) {
    // A fetch body streams Uint8Array chunks; Node's fetch types declare it as an untyped ReadableStream (`any` chunks).
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (got + value.byteLength > want) {
        await reader.cancel().catch(() => {});
        throw new HubError("bad-response", `${what}: the hub sent more than the ${want} bytes requested`);
      }
      out.set(value, got);
      got += value.byteLength;
    }
  }
  if (got !== want) throw new HubError("bad-response", `${what}: the hub sent ${got} of ${want} bytes`);
  return out;
}
