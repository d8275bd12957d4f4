// The Dockerfile and the deploy/docker scripts it runs. No Docker engine runs here (nor in CI), so the image itself
// is never built; instead:
//  - the Dockerfile is parsed and checked structurally: two stages from matching nvidia/cuda devel/runtime tags
//    (whose CUDA major matches node-llama-cpp's prebuilt CUDA binaries), every RUN is a plain apt-get/npm ci line
//    or one call of a deploy/docker script (put there by a COPY or by build-app.sh) with options that script
//    documents, COPY sources exist, what the runtime stage copies is what the builder produced, and
//    ENTRYPOINT/CMD/ENV/HEALTHCHECK/EXPOSE/USER/VOLUME are what docs/deployment.md says (the CMD's flags and the ENV
//    values are fed to the real CLI); the llama-server layers (lock file + scripts, npm ci without scripts) are
//    reproduced in a temp folder and must yield the same llama.cpp source revision as the checkout;
//  - .dockerignore keeps local outputs out and everything the build needs in;
//  - the scripts run here for real: build-app.sh + prune-runtime.sh on a copy of this checkout (npm ci, npm run
//    build, npm prune --omit=dev), and the pruned tree then serves a chat completion; install-node.sh installs a
//    fake Node.js release from a local server (checksum checked, a bad one refused); healthcheck.mjs against a
//    running daemon and against fake unhealthy servers; build-llama-server.sh --dry-run shows the CUDA flags, and
//    its CPU mode copies the cached CI build out; setup-runtime.sh --dry-run.
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PORT } from "../../src/config/configSchema.js";
import { ensureFixtures } from "../fixtures/ensureFixtures.js";
import { startServe } from "../helpers/spawnCli.js";
import {
  REPO,
  execForm,
  hasCommand,
  parseDockerfile,
  pathWithThisNode,
  readableScriptsCopy,
  run,
  runUnprivileged,
  shellWords,
  startListening,
  type DockerInstruction,
} from "./deployHelpers.js";

const DOCKERFILE = readFileSync(join(REPO, "Dockerfile"), "utf8");
const HEALTHCHECK = join(REPO, "deploy/docker/healthcheck.mjs");
const APT_RUN = /^apt-get update && apt-get install -y --no-install-recommends [a-z0-9.+\- ]+ && rm -rf \/var\/lib\/apt\/lists\/\*$/;
/** A plain npm install from the lock file (no chaining). */
const NPM_RUN = /^npm ci(?: --[a-z-]+(?:=[a-z]+)?)*$/;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "tabagent-docker-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function instructions(keyword: string, stage?: number): DockerInstruction[] {
  return parseDockerfile(DOCKERFILE).filter((i) => i.keyword === keyword && (stage === undefined || i.stage === stage));
}
function only(keyword: string, stage?: number): DockerInstruction {
  const found = instructions(keyword, stage);
  expect(found, `exactly one ${keyword}${stage === undefined ? "" : ` in stage ${stage}`}`).toHaveLength(1);
  return found[0]!;
}
/** KEY=VALUE pairs of every ENV in a stage. */
function stageEnv(stage: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of instructions("ENV", stage)) for (const [, k, v] of i.args.matchAll(/(\w+)=(\S*)/g)) env[k!] = v!;
  return env;
}
function globalArg(name: string): string {
  const arg = parseDockerfile(DOCKERFILE).find((i) => i.stage === -1 && i.keyword === "ARG" && i.args.startsWith(`${name}=`));
  expect(arg, `global ARG ${name}=default`).toBeDefined();
  return arg!.args.slice(name.length + 1);
}

/**
 * The repo script a RUN calls: its first word is an absolute path ending in deploy/docker/NAME (inside a copy of
 * the source or of the built tree), or a file that a COPY in the same stage took from deploy/docker/NAME.
 */
function scriptOfRun(run: DockerInstruction): string | null {
  const first = shellWords(run.args)[0]!;
  const inTree = /^\/(?:[\w.-]+\/)*(deploy\/docker\/[\w.-]+)$/.exec(first);
  for (const copy of copiesBefore(run)) {
    if (copy.dest === first && copy.src.startsWith("deploy/docker/")) return copy.src;
    // `COPY . /src` (the whole context), or a COPY of that very script, put it there.
    if (inTree && ((copy.src === "." && first === `${copy.dest}/${inTree[1]}`) || copy.dest === first)) return inTree[1]!;
  }
  // The tree build-app.sh wrote (it copies the whole source, deploy/ included).
  if (inTree && builtTrees(run).some((dest) => first === `${dest}/${inTree[1]}`)) return inTree[1]!;
  return null;
}

/** Context COPYs earlier in the run's stage, with destinations made absolute against the WORKDIR then in force. */
function copiesBefore(run: DockerInstruction): Array<{ src: string; dest: string }> {
  let workdir = "/";
  const out: Array<{ src: string; dest: string }> = [];
  for (const i of parseDockerfile(DOCKERFILE)) {
    if (i.stage !== run.stage || i.line >= run.line) continue;
    if (i.keyword === "WORKDIR") workdir = i.args.startsWith("/") ? i.args : `${workdir}/${i.args}`;
    if (i.keyword !== "COPY" || i.args.startsWith("--from")) continue;
    const words = i.args.split(" ");
    const dest = words.at(-1)!;
    for (const src of words.slice(0, -1)) {
      const abs = dest.startsWith("/") ? dest : `${workdir.replace(/\/$/, "")}/${dest.replace(/^\.\//, "")}`;
      out.push({ src, dest: abs.replace(/\/$/, "").replace(/\/\.$/, "") });
    }
  }
  return out;
}

/** --dest folders of build-app.sh runs earlier in the stage, and where a COPY --from=builder put such a folder. */
function builtTrees(run: DockerInstruction): string[] {
  const built = (stage: number, before: number) =>
    instructions("RUN", stage)
      .filter((i) => i.line < before && i.args.includes("deploy/docker/build-app.sh"))
      .map((i) => {
        const words = shellWords(i.args);
        return words[words.indexOf("--dest") + 1]!;
      });
  const trees = built(run.stage, run.line);
  for (const copy of instructions("COPY", run.stage).filter((i) => i.line < run.line && i.args.startsWith("--from=builder "))) {
    const [, src, dest] = copy.args.split(" ");
    if (built(0, Number.POSITIVE_INFINITY).includes(src!)) trees.push(dest!);
  }
  return trees;
}

describe("Dockerfile (structure; no Docker engine here)", () => {
  it("declares the BuildKit syntax and two stages from matching nvidia/cuda devel and runtime images", () => {
    expect(DOCKERFILE.split("\n")[0]).toBe("# syntax=docker/dockerfile:1");
    expect(globalArg("CUDA_VERSION")).toMatch(/^\d+\.\d+\.\d+$/);
    expect(globalArg("UBUNTU_VERSION")).toMatch(/^\d\d\.04$/);
    const froms = instructions("FROM").map((i) => i.args);
    expect(froms).toEqual([
      "nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS builder",
      "nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS runtime",
    ]);
  });

  it("uses the CUDA major version that node-llama-cpp's prebuilt CUDA binaries link", (ctx) => {
    const dir = join(REPO, "node_modules/@node-llama-cpp/linux-x64-cuda/bins");
    if (!existsSync(dir)) {
      ctx.skip("@node-llama-cpp/linux-x64-cuda is not installed (optional dependency)");
      return;
    }
    const lib = readdirSync(dir, { recursive: true, encoding: "utf8" }).find((f) => f.endsWith("libggml-cuda.so"));
    expect(lib, "libggml-cuda.so in the prebuilt CUDA package").toBeDefined();
    const linked = /libcudart\.so\.(\d+)/.exec(readFileSync(join(dir, lib!)).toString("latin1"))?.[1];
    expect(linked).toBeDefined();
    expect(globalArg("CUDA_VERSION").split(".")[0]).toBe(linked);
  });

  it("runs only plain apt-get/npm ci lines and single calls of deploy/docker scripts, with options they accept", async () => {
    const runs = instructions("RUN");
    expect(runs.length).toBeGreaterThanOrEqual(6);
    const called: string[] = [];
    for (const r of runs) {
      if (APT_RUN.test(r.args) || NPM_RUN.test(r.args)) continue;
      const script = scriptOfRun(r);
      expect(script, `line ${r.line}: RUN ${r.args}`).not.toBeNull();
      expect(r.args, `line ${r.line}: one script per RUN`).not.toMatch(/&&|\|\||;|\|/);
      expect(existsSync(join(REPO, script!)), script!).toBe(true);
      called.push(`${r.stage}:${script}`);
      const help = await run("bash", [join(REPO, script!), "--help"]);
      expect(help.code, `${script} --help`).toBe(0);
      const options = shellWords(r.args)
        .filter((w) => w.startsWith("--"))
        .map((w) => w.replace(/=.*$/, ""));
      for (const option of options) expect(help.stdout, `${script} does not document ${option} (line ${r.line})`).toContain(option);
    }
    expect(called).toEqual([
      "0:deploy/docker/install-node.sh",
      "0:deploy/docker/build-llama-server.sh",
      "0:deploy/docker/build-app.sh",
      "0:deploy/docker/prune-runtime.sh",
      "1:deploy/docker/setup-runtime.sh",
      "1:deploy/docker/install-python.sh",
    ]);
  });

  it("copies only files that exist from the build context", () => {
    for (const copy of instructions("COPY").filter((i) => !i.args.startsWith("--from"))) {
      for (const src of copy.args.split(" ").slice(0, -1)) expect(existsSync(join(REPO, src)), `COPY ${src} (line ${copy.line})`).toBe(true);
    }
  });

  it("copies into the runtime stage exactly what the builder produced", () => {
    const builderRuns = instructions("RUN", 0).map((i) => i.args);
    const produced = (script: string, option: string) => {
      const line = builderRuns.find((r) => r.includes(script))!;
      const words = shellWords(line);
      return words[words.indexOf(option) + 1];
    };
    const copies = instructions("COPY", 1).map((i) => i.args);
    expect(copies).toEqual([
      `--from=builder ${produced("install-node.sh", "--prefix")} /opt/node`,
      `--from=builder ${produced("build-app.sh", "--dest")} /opt/tabagent`,
      `--from=builder ${produced("build-llama-server.sh", "--dest")} /opt/llama-server`,
    ]);
    expect(builderRuns.find((r) => r.includes("build-llama-server.sh"))).toContain("--backend cuda");
    expect(stageEnv(1).TABAGENT_LLAMA_SERVER).toBe(`${produced("build-llama-server.sh", "--dest")}/bin/llama-server`);
  });

  it("runs as a non-root user, with volumes, the port, a node health check and the documented entrypoint", () => {
    expect(only("USER", 1).args).toBe("tabagent");
    expect(instructions("RUN", 1).some((r) => r.args.includes("setup-runtime.sh --user tabagent"))).toBe(true);
    expect(JSON.parse(only("VOLUME", 1).args)).toEqual(["/models", "/cache"]);
    expect(only("EXPOSE", 1).args).toBe(String(DEFAULT_PORT));
    expect(only("STOPSIGNAL", 1).args).toBe("SIGTERM");
    expect(execForm(only("ENTRYPOINT", 1).args)).toEqual(["node", "/opt/tabagent/bin/tabagent"]);
    expect(execForm(only("CMD", 1).args)).toEqual(["serve", "--models-dir", "/models"]);
    const health = only("HEALTHCHECK", 1).args;
    const cmd = /^(.*?)\s*CMD\s+(\[.*\])$/.exec(health);
    expect(cmd, health).not.toBeNull();
    expect(execForm(cmd![2]!)).toEqual(["node", "/opt/tabagent/deploy/docker/healthcheck.mjs"]);
    const timeout = /--timeout=(\d+)s/.exec(cmd![1]!)?.[1];
    // The script gives up after 4 s by default: Docker's own timeout must be longer, or it never reports why.
    expect(Number(timeout)).toBeGreaterThan(4);
    const env = stageEnv(1);
    expect(env).toMatchObject({
      NODE_ENV: "production",
      TABAGENT_HOST: "0.0.0.0",
      TABAGENT_PORT: String(DEFAULT_PORT),
      TABAGENT_CACHE_DIR: "/cache",
    });
    expect(env.HF_HOME).toMatch(/^\/cache\//);
  });

  it("its CMD flags and ENV values are accepted by the real CLI", async () => {
    const models = join(tmp, "cmd-models");
    mkdirSync(models, { recursive: true });
    const cmd = execForm(only("CMD", 1).args)!.map((a) => (a === "/models" ? models : a));
    expect(cmd[0]).toBe("serve");
    // `models` takes the same options and validates the same config as `serve`, without listening.
    const env: Record<string, string> = {
      PATH: pathWithThisNode(),
      HOME: tmp,
      ...stageEnv(1),
      TABAGENT_CACHE_DIR: join(tmp, "cache"),
      HF_HOME: join(tmp, "cache/hf"),
      // Listening on 0.0.0.0 needs keys once authentication exists; an unknown variable is ignored before that.
      TABAGENT_API_KEYS: "docker-test-key-0123456789abcdef",
    };
    const r = await run(process.execPath, [join(REPO, "bin/tabagent"), "models", ...cmd.slice(1)], { env });
    expect(r.code, r.all).toBe(0);
  });
});

describe(".dockerignore", () => {
  it("keeps local installs and outputs out, and everything the build needs in", () => {
    const patterns = readFileSync(join(REPO, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    for (const p of [".git", "**/node_modules", "dist", ".fixtures"]) expect(patterns).toContain(p);
    const needed = ["package.json", "package-lock.json", ".npmrc", "src", "bench", "test", "bin", "native", "deploy", "tsconfig.json", "tsconfig.build.json"];
    for (const p of patterns) {
      const re = new RegExp(
        `^${p
          .replace(/\*\*\//g, "(?:.*/)?")
          .replace(/\./g, "\\.")
          .replace(/\*/g, "[^/]*")}$`,
      );
      for (const n of needed) expect(re.test(n), `.dockerignore '${p}' would drop ${n}`).toBe(false);
    }
  });
});

describe("deploy/docker/healthcheck.mjs", () => {
  const servers: Server[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
  });

  /** A fake daemon answering /health however the test wants; records the request headers. */
  async function fake(handler: (res: ServerResponse) => void): Promise<{ url: string; headers: IncomingHttpHeaders[] }> {
    const headers: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      headers.push(req.headers);
      handler(res);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`, headers };
  }
  const check = (args: string[], env: Record<string, string> = {}) => run(process.execPath, [HEALTHCHECK, ...args], { env: { PATH: pathWithThisNode(), ...env } });

  it("passes against a running daemon, by URL and by TABAGENT_PORT", async () => {
    const models = join(tmp, "health-models");
    mkdirSync(models, { recursive: true });
    const daemon = await startServe(["--models-dir", models]);
    try {
      const byUrl = await check([`${daemon.url}/health`]);
      expect(byUrl.code, byUrl.all).toBe(0);
      expect(byUrl.stdout).toMatch(/^healthy: 0 model\(s\)/);
      const byPort = await check([], { TABAGENT_PORT: new URL(daemon.url).port });
      expect(byPort.code, byPort.all).toBe(0);
    } finally {
      daemon.child.kill("SIGKILL");
    }
  });

  it("fails on errors, wrong bodies, closed ports and hangs; sends the first API key", async () => {
    const unavailable = await fake((res) => res.writeHead(503).end('{"error":"shutting down"}'));
    expect((await check([unavailable.url])).code).toBe(1);
    const notOk = await fake((res) => res.writeHead(200, { "content-type": "application/json" }).end('{"status":"starting"}'));
    expect((await check([notOk.url])).code).toBe(1);
    const notJson = await fake((res) => res.writeHead(200).end("<html>"));
    expect((await check([notJson.url])).code).toBe(1);
    const ok = await fake((res) => res.writeHead(200).end('{"status":"ok","models":[],"loaded":[]}'));
    const withKey = await check([ok.url], { TABAGENT_API_KEYS: " key-one , key-two" });
    expect(withKey.code, withKey.all).toBe(0);
    expect(ok.headers.at(-1)?.authorization).toBe("Bearer key-one");

    const closed = await fake(() => undefined);
    const closedUrl = closed.url;
    await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
    const refused = await check([closedUrl]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ECONNREFUSED/);

    const hang = await fake(() => undefined);
    const started = Date.now();
    const hung = await check([hang.url], { TABAGENT_HEALTHCHECK_TIMEOUT_MS: "300" });
    expect(hung.code).toBe(1);
    expect(hung.stderr).toMatch(/no answer within 300 ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe("deploy/docker/install-node.sh", () => {
  it("installs a release from a (local) dist server after checking its checksum, and refuses a bad one", async () => {
    for (const tool of ["tar", "xz", "sha256sum"]) {
      if (!(await hasCommand(tool))) throw new Error(`${tool} is missing: install-node.sh needs it (Debian: apt-get install -y xz-utils coreutils tar)`);
    }
    if (!(await hasCommand("curl")) && !(await hasCommand("wget"))) throw new Error("install-node.sh needs curl or wget (Debian: apt-get install -y curl)");
    const version = "20.99.1";
    const arch = process.arch === "arm64" ? "arm64" : "x64";
    const name = `node-v${version}-linux-${arch}`;
    const dist = join(tmp, "dist");
    const release = join(tmp, "release", name, "bin");
    mkdirSync(join(dist, `v${version}`), { recursive: true });
    mkdirSync(release, { recursive: true });
    // A stand-in node: the script only runs `node --version`.
    writeFileSync(join(release, "node"), `#!/bin/sh\necho v${version}\n`, { mode: 0o755 });
    writeFileSync(join(release, "npm"), "#!/bin/sh\necho 10.0.0\n", { mode: 0o755 });
    const tarball = join(dist, `v${version}`, `${name}.tar.xz`);
    const packed = await run("tar", ["-cJf", tarball, "-C", join(tmp, "release"), name]);
    expect(packed.code, packed.all).toBe(0);
    const sha = createHash("sha256").update(readFileSync(tarball)).digest("hex");
    const sums = join(dist, `v${version}`, "SHASUMS256.txt");
    writeFileSync(sums, `${"0".repeat(64)}  node-v${version}-darwin-arm64.tar.xz\n${sha}  ${name}.tar.xz\n`);

    const server = createServer((req, res) => {
      const file = join(dist, decodeURIComponent(new URL(req.url!, "http://x").pathname));
      if (!file.startsWith(dist) || !existsSync(file)) return res.writeHead(404).end();
      res.writeHead(200).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const distUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const prefix = join(tmp, "node-prefix");
      const links = join(tmp, "node-links");
      const script = join(REPO, "deploy/docker/install-node.sh");
      const r = await run("bash", [script, "--version", version, "--prefix", prefix, "--link-dir", links, "--dist-url", distUrl]);
      expect(r.code, r.all).toBe(0);
      expect((await run(join(links, "node"), ["--version"])).stdout.trim()).toBe(`v${version}`);
      expect(existsSync(join(links, "npm"))).toBe(true);

      writeFileSync(sums, `${"f".repeat(64)}  ${name}.tar.xz\n`);
      const bad = await run("bash", [script, "--version", version, "--prefix", join(tmp, "node-bad"), "--link-dir", "", "--dist-url", distUrl]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/checksum mismatch/);
      expect(existsSync(join(tmp, "node-bad"))).toBe(false);

      const missing = await run("bash", [script, "--version", "20.99.2", "--prefix", join(tmp, "node-missing"), "--dist-url", distUrl]);
      expect(missing.code).toBe(1);
    } finally {
      server.close();
    }
  });
});

describe("deploy/docker/build-app.sh + prune-runtime.sh (for real, on a copy of this checkout)", () => {
  it("builds with npm ci + npm run build, prunes to production dependencies, and the pruned tree serves", { timeout: 480_000 }, async () => {
    const dest = join(tmp, "app");
    const built = await run("bash", [join(REPO, "deploy/docker/build-app.sh"), "--source", REPO, "--dest", dest], { timeoutMs: 360_000 });
    expect(built.code, built.all).toBe(0);
    expect(built.stderr).toMatch(/npm ci --no-audit --no-fund/);
    expect(built.stderr).toMatch(/npm run build/);
    expect(existsSync(join(dest, "dist/src/cli/main.js"))).toBe(true);
    expect(existsSync(join(dest, "node_modules/vitest"))).toBe(true);
    expect(existsSync(join(dest, ".git"))).toBe(false);

    const again = await run("bash", [join(REPO, "deploy/docker/build-app.sh"), "--source", REPO, "--dest", dest]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/not empty/);

    const pruned = await run("bash", [join(REPO, "deploy/docker/prune-runtime.sh"), dest], { timeoutMs: 120_000 });
    expect(pruned.code, pruned.all).toBe(0);
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const dev of ["vitest", "tsx", "openai", "@types/node"]) {
      if (dev in pkg.devDependencies) expect(existsSync(join(dest, "node_modules", dev)), `${dev} (devDependency) was not pruned`).toBe(false);
    }
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(dest, "node_modules", dep)), `${dep} (dependency)`).toBe(true);
    // Sources go, but for the web page's assets, which the daemon serves as they are.
    for (const gone of ["src/api", "src/cli", "src/server/buildApp.ts", "src/server/web/registerWebPage.ts", "test", "bench", "scripts", "tsconfig.json"]) {
      expect(existsSync(join(dest, gone)), gone).toBe(false);
    }
    for (const kept of [
      "bin/tabagent",
      "dist/src/cli/main.js",
      "deploy/docker/healthcheck.mjs",
      "native/build-llama-server.sh",
      "package.json",
      "src/server/web/index.html",
    ]) {
      expect(existsSync(join(dest, kept)), kept).toBe(true);
    }
    const foreign = readdirSync(join(dest, "node_modules/@node-llama-cpp")).filter((n) => !n.startsWith(`linux-${process.arch}`));
    expect(foreign).toEqual([]);

    // The pruned tree runs: serve the tiny chat model, answer one completion and the health check, stop on SIGTERM.
    const fixtures = await ensureFixtures();
    const daemon = await startListening(
      process.execPath,
      [join(dest, "bin/tabagent"), "serve", "--port", "0", "--gpu", "off", "--threads", "1", "--models-dir", fixtures.dir],
      { PATH: pathWithThisNode(), HOME: tmp, NODE_ENV: "production", TABAGENT_CACHE_DIR: join(tmp, "cache") },
    );
    try {
      const res = await fetch(`${daemon.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny-chat", messages: [{ role: "user", content: "Hello" }], max_tokens: 4, temperature: 0 }),
      });
      const text = await res.text();
      expect(res.status, text).toBe(200);
      expect(JSON.parse(text)).toMatchObject({ object: "chat.completion", model: "tiny-chat" });
      const health = await run(process.execPath, [join(dest, "deploy/docker/healthcheck.mjs"), `${daemon.url}/health`]);
      expect(health.code, health.all).toBe(0);
      expect(health.stdout).toMatch(/loaded: tiny-chat/);
      daemon.child.kill("SIGTERM");
      expect((await daemon.child).exitCode).toBe(0);
    } finally {
      daemon.child.kill("SIGKILL");
      rmSync(dest, { recursive: true, force: true });
    }
  });
});

describe("deploy/docker/build-llama-server.sh", () => {
  const script = join(REPO, "deploy/docker/build-llama-server.sh");

  it("--dry-run: the CUDA build is native/build-llama-server.sh with GGML_CUDA and the Dockerfile's architectures", async () => {
    const archs = instructions("ARG", 0)
      .find((a) => a.args.startsWith("CUDA_ARCHITECTURES="))!
      .args.split("=")[1]!;
    const r = await run("bash", [script, "--app", REPO, "--dest", join(tmp, "ls-dry"), "--cuda-architectures", archs, "--dry-run"]);
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toMatch(/^flag=-DGGML_CUDA=ON$/m);
    expect(r.stdout).toContain(`flag=-DCMAKE_CUDA_ARCHITECTURES=${archs}`);
    expect(r.stdout).toMatch(/^flag=-DLLAMA_BUILD_UI=OFF$/m);
    expect(r.stderr).toMatch(/native\/build-llama-server\.sh --print-path --cmake-flag -DGGML_CUDA=ON/);
    expect(existsSync(join(tmp, "ls-dry"))).toBe(false);
    const bad = await run("bash", [script, "--app", REPO, "--dest", join(tmp, "x"), "--backend", "rocm"]);
    expect(bad.code).toBe(2);
  });

  it("the Dockerfile's llama-server layers (lock file only, npm ci without scripts) give the same llama.cpp source", { timeout: 180_000 }, async () => {
    // Reproduce the builder's layers: the COPYs into the WORKDIR of the build-llama-server.sh RUN, the `npm ci`
    // RUNs there, then the script's dry run. The cache key covers the source revision, so it must equal this
    // checkout's (CUDA flags and compilers are the same in both runs).
    const buildRun = instructions("RUN", 0).find((i) => i.args.includes("deploy/docker/build-llama-server.sh"))!;
    const app = shellWords(buildRun.args)[shellWords(buildRun.args).indexOf("--app") + 1]!;
    const layer = join(tmp, "llama-layer");
    for (const copy of copiesBefore(buildRun).filter((c) => c.dest === app || c.dest.startsWith(`${app}/`))) {
      const target = copy.dest === app ? join(layer, copy.src.split("/").at(-1)!) : join(layer, copy.dest.slice(app.length + 1));
      mkdirSync(join(target, ".."), { recursive: true });
      cpSync(join(REPO, copy.src), target, { recursive: true });
    }
    const npmRuns = instructions("RUN", 0).filter((i) => NPM_RUN.test(i.args) && i.line < buildRun.line);
    expect(npmRuns).toHaveLength(1);
    const [npm, ...npmArgs] = shellWords(npmRuns[0]!.args);
    const installed = await run(npm!, npmArgs, { cwd: layer, timeoutMs: 150_000 });
    expect(installed.code, installed.all).toBe(0);
    const args = ["--dest", join(tmp, "unused"), "--backend", "cuda", "--cuda-architectures", "90", "--dry-run"];
    const fromLayer = await run("bash", [join(layer, "deploy/docker/build-llama-server.sh"), "--app", layer, ...args]);
    const fromRepo = await run("bash", [script, "--app", REPO, ...args]);
    expect(fromLayer.code, fromLayer.all).toBe(0);
    const key = (out: string) => /^key=(\S+)$/m.exec(out)?.[1];
    expect(key(fromLayer.stdout)).toBeDefined();
    expect(key(fromLayer.stdout)).toBe(key(fromRepo.stdout));
    rmSync(layer, { recursive: true, force: true });
  });

  it("--backend cpu copies the binary and build-info.json out of the build cache", async (ctx) => {
    const dry = await run("bash", [script, "--app", REPO, "--dest", join(tmp, "ls-cpu"), "--backend", "cpu", "--dry-run"]);
    expect(dry.code, dry.all).toBe(0);
    if (!/^complete=yes$/m.test(dry.stdout)) {
      // Building it here would take ~10 minutes; .ci/run builds it before the tests, so CI has it.
      ctx.skip("no cached CPU build of llama-server (native/build-llama-server.sh has not run on this machine)");
      return;
    }
    const r = await run("bash", [script, "--app", REPO, "--dest", join(tmp, "ls-cpu"), "--backend", "cpu"]);
    expect(r.code, r.all).toBe(0);
    const info = JSON.parse(readFileSync(join(tmp, "ls-cpu/build-info.json"), "utf8")) as { sha256: string };
    expect(
      createHash("sha256")
        .update(readFileSync(join(tmp, "ls-cpu/bin/llama-server")))
        .digest("hex"),
    ).toBe(info.sha256);
    const version = await run(join(tmp, "ls-cpu/bin/llama-server"), ["--version"]);
    expect(version.all).toMatch(/version: /);
  });
});

describe("deploy/docker/setup-runtime.sh", () => {
  it("--dry-run shows the user, the volume folders and the checks; for real it needs root", async () => {
    const scripts = readableScriptsCopy();
    try {
      const env = { PATH: pathWithThisNode(), HOME: tmp };
      const script = join(scripts, "deploy/docker/setup-runtime.sh");
      const r = await runUnprivileged("bash", [script, "--user", "tabagent", "--uid", "10001", "--models", "/models", "--cache", "/cache", "--dry-run"], env, tmp);
      expect(r.code, r.all).toBe(0);
      expect(r.stderr).toMatch(/^\+ useradd --system --uid 10001 --gid tabagent --home-dir \/cache .* tabagent$/m);
      expect(r.stderr).toMatch(/^\+ install -d -m 0750 -o tabagent -g tabagent \/models \/cache$/m);
      expect(r.stderr).toMatch(/^\+ node \/opt\/tabagent\/bin\/tabagent --version$/m);
      const notRoot = await runUnprivileged("bash", [script], env, tmp);
      expect(notRoot.code).toBe(2);
      expect(notRoot.stderr).toMatch(/run as root/);
      expect((await run("bash", [script, "--uid", "abc", "--dry-run"])).code).toBe(2);
    } finally {
      rmSync(scripts, { recursive: true, force: true });
    }
  });
});

describe("deploy/docker/install-python.sh", () => {
  it("--dry-run: the venv is native/setup-python.sh's, under the data folder the image's TABAGENT_DATA_DIR names", async () => {
    const line = instructions("RUN", 1).find((r) => r.args.includes("install-python.sh"))!.args;
    const words = shellWords(line);
    const dataDir = words[words.indexOf("--data-dir") + 1]!;
    expect(stageEnv(1).TABAGENT_DATA_DIR).toBe(dataDir);
    expect(stageEnv(1).TABAGENT_PYTHON_AUTO_SETUP).toBe("false");
    const r = await run("bash", [join(REPO, "deploy/docker/install-python.sh"), "--app", REPO, "--data-dir", dataDir, "--cuda", "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`+ ${REPO}/native/setup-python.sh --cuda --data-dir ${dataDir} --dry-run`);
    expect(r.stdout).toMatch(new RegExp(`^venv: ${dataDir}/python/[0-9a-f]{20}$`, "m"));
    expect(r.stdout).toMatch(/^variant: cuda$/m);
    expect((await run("bash", [join(REPO, "deploy/docker/install-python.sh"), "--app", "/nonexistent"])).code).toBe(2);
  });
});
