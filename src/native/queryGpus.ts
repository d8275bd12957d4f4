import { execa } from "execa";
import { z } from "zod";

/** One NVIDIA GPU as nvidia-smi reports it; memory in bytes. */
export interface GpuInfo {
  index: number;
  name: string;
  vramTotalBytes: number;
  vramFreeBytes: number;
  driver: string;
}

/** What the machine's GPUs look like: none found is `gpus: []` with the reason in `error`. */
export interface GpuReport {
  gpus: GpuInfo[];
  /** The CUDA version the driver supports (nvidia-smi's banner), null when unknown. */
  cuda: string | null;
  /** Why there is no list: nvidia-smi missing, failing, or printing something unreadable. */
  error: string | null;
  source: "nvidia-smi" | "fake";
}

/** Runs a command and returns its stdout; throws on a missing binary or a non-zero exit. Injectable for tests. */
export type RunCommand = (file: string, args: readonly string[], options: { timeoutMs: number; signal?: AbortSignal }) => Promise<string>;

export interface QueryGpusOptions {
  env: NodeJS.ProcessEnv;
  /** The nvidia-smi binary; default `nvidia-smi` on PATH. */
  nvidiaSmi?: string;
  run?: RunCommand;
  timeoutMs?: number;
  signal?: AbortSignal;
}

const QUERY = ["--query-gpu=index,name,memory.total,memory.free,driver_version", "--format=csv,noheader,nounits"];
const MIB = 1024 * 1024;

/** A fake report, as JSON in TABAGENT_FAKE_GPUS (tests; a machine without a GPU can be told it has one). */
const fakeSchema = z.object({
  gpus: z.array(
    z.object({
      index: z.number().int().min(0),
      name: z.string(),
      vramTotalBytes: z.number().nonnegative(),
      vramFreeBytes: z.number().nonnegative(),
      driver: z.string(),
    }),
  ),
  cuda: z.string().nullable().default(null),
});

const defaultRun: RunCommand = async (file, args, { timeoutMs, signal }) => {
  const { stdout } = await execa(file, [...args], { timeout: timeoutMs, cancelSignal: signal, stdin: "ignore" });
  return stdout;
};

/** The NVIDIA GPUs through `nvidia-smi --query-gpu` (NVML underneath); never throws. */
export async function queryGpus(options: QueryGpusOptions): Promise<GpuReport> {
  const fake = options.env.TABAGENT_FAKE_GPUS;
  if (fake !== undefined && fake !== "") {
    try {
      const parsed = fakeSchema.parse(JSON.parse(fake));
      return { gpus: parsed.gpus, cuda: parsed.cuda, error: null, source: "fake" };
    } catch (err) {
      return { gpus: [], cuda: null, error: `TABAGENT_FAKE_GPUS is not a valid report: ${(err as Error).message}`, source: "fake" };
    }
  }
  const run = options.run ?? defaultRun;
  const smi = options.nvidiaSmi ?? "nvidia-smi";
  const timeoutMs = options.timeoutMs ?? 10_000;
  let csv: string;
  try {
    csv = await run(smi, QUERY, { timeoutMs, signal: options.signal });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const reason = code === "ENOENT" ? "nvidia-smi is not installed (no NVIDIA driver)" : `nvidia-smi failed: ${firstLine((err as Error).message)}`;
    return { gpus: [], cuda: null, error: reason, source: "nvidia-smi" };
  }
  const parsed = parseNvidiaSmiCsv(csv);
  if ("error" in parsed) return { gpus: [], cuda: null, error: parsed.error, source: "nvidia-smi" };
  let cuda: string | null = null;
  try {
    cuda = parseCudaVersion(await run(smi, [], { timeoutMs, signal: options.signal }));
  } catch {
    // the list stands without the banner
  }
  return { gpus: parsed.gpus, cuda, error: null, source: "nvidia-smi" };
}

/** `index, name, memory.total [MiB], memory.free [MiB], driver_version` lines (csv, noheader, nounits). */
export function parseNvidiaSmiCsv(text: string): { gpus: GpuInfo[] } | { error: string } {
  const gpus: GpuInfo[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "") continue;
    const cells = line.split(",").map((c) => c.trim());
    if (cells.length !== 5) return { error: `nvidia-smi printed an unexpected line: '${line.trim()}'` };
    const [index, name, total, free, driver] = cells as [string, string, string, string, string];
    const n = [index, total, free].map(Number);
    // "[N/A]" or "[Not Supported]" memory (some integrated or MIG setups): unreadable, say so.
    if (n.some((x) => !Number.isFinite(x))) return { error: `nvidia-smi reported no memory figures for GPU '${name}': '${line.trim()}'` };
    gpus.push({ index: n[0]!, name, vramTotalBytes: n[1]! * MIB, vramFreeBytes: n[2]! * MIB, driver });
  }
  return { gpus };
}

/** The `CUDA Version: 13.0` of nvidia-smi's banner. */
export function parseCudaVersion(banner: string): string | null {
  return /CUDA Version:\s*([\d.]+)/.exec(banner)?.[1] ?? null;
}

function firstLine(text: string): string {
  return text.split("\n")[0]?.trim() ?? "";
}
