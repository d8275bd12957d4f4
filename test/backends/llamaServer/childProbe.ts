import { readdir, readFile, readlink } from "node:fs/promises";
import { request } from "node:http";

/** What /proc says about a running child: its argv and its environment. */
export async function childProcessInfo(pid: number): Promise<{ argv: string[]; env: Record<string, string> }> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
  const env = Object.fromEntries(
    (await readFile(`/proc/${pid}/environ`, "utf8"))
      .split("\0")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  return { argv, env };
}

/** The value after `flag` in argv. */
export function argAfter(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Inodes of the sockets the process holds open. */
async function socketInodes(pid: number): Promise<Set<string>> {
  const out = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) out.add(m[1]!);
  }
  return out;
}

/** TCP ports (v4 and v6) on which the process has a listening socket. */
export async function tcpListenPorts(pid: number): Promise<number[]> {
  const mine = await socketInodes(pid);
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    const lines = (await readFile(`/proc/${pid}/net/${table}`, "utf8").catch(() => "")).split("\n").slice(1);
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      // local_address is f[1] (hex addr:port), st is f[3] (0A = LISTEN), inode is f[9]
      if (f.length > 9 && f[3] === "0A" && mine.has(f[9]!)) ports.push(parseInt(f[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

/** Paths of the Unix sockets on which the process listens. */
export async function unixListenPaths(pid: number): Promise<string[]> {
  const mine = await socketInodes(pid);
  const lines = (await readFile(`/proc/${pid}/net/unix`, "utf8")).split("\n").slice(1);
  const out: string[] = [];
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = __SO_ACCEPTCON (listening)
    if (f.length >= 8 && f[3] === "00010000" && mine.has(f[6]!)) out.push(f[7]!);
  }
  return out;
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request straight to a child, on its Unix socket or a TCP port, on a connection of its own. */
export function rawRequest(
  where: { socketPath: string } | { port: number },
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const target = "socketPath" in where ? { socketPath: where.socketPath } : { host: "127.0.0.1", port: where.port };
    const body = options.body;
    const req = request(
      {
        ...target,
        method: options.method ?? "GET",
        path: options.path,
        agent: false,
        headers: { ...(body !== undefined ? { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) } : {}), ...options.headers },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
