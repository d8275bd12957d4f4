// deploy/systemd: the unit file, its default config, install.sh and uninstall.sh.
//
// What is checked:
//  - `systemd-analyze verify` accepts the unit as install.sh renders it, with /opt/tabagent pointed at this
//    checkout (so ExecStart's script exists) and the config/models paths at temp files. systemd-analyze prints
//    parse problems (unknown keys, bad values) as warnings but still exits 0, so any output line that names the
//    unit fails the test too; a deliberately broken copy proves that detection works on this systemd version.
//    `verify` does not look up users or check the runtime sandbox: User=tabagent need not exist here.
//  - `systemd-analyze security --offline` rates the hardening: exposure must stay at or below 3.5 ("OK").
//  - The settings the deployment guide promises are there (user, hardening, restart, stop behaviour), and the
//    stop timeout is longer than the daemon's shutdown grace (schema default and the shipped config).
//  - The ExecStart command line, run as written (with the unit's Environment=), starts the daemon on the shipped
//    default config, answers /health, and exits 0 on SIGTERM well within TimeoutStopSec.
//  - install.sh / uninstall.sh --dry-run work as an unprivileged user in a temp prefix and change nothing; without
//    --dry-run they refuse to run as non-root; install.sh refuses system folders as --prefix.
//  - shellcheck finds nothing in deploy/**/*.sh (skipped when shellcheck is not installed).
import { execa } from "execa";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/configSchema.js";
import {
  REPO,
  SYSTEMD_PATH,
  hasCommand,
  parseTimespanSeconds,
  parseUnit,
  pathWithThisNode,
  readableScriptsCopy,
  run,
  runUnprivileged,
  startListening,
  unitEnvironment,
  unitValue,
  type UnitFile,
} from "./deployHelpers.js";

const UNIT_SOURCE = join(REPO, "deploy/systemd/tabagent.service");
const CONFIG_SOURCE = join(REPO, "deploy/systemd/tabagent.json");
const MISSING_SYSTEMD_ANALYZE =
  "systemd-analyze is not installed: the unit file cannot be verified. Install the Debian package 'systemd' " +
  "(apt-get install -y systemd); .ci/run must install it on CI machines.";

let tmp: string;
let unitText: string;
let unit: UnitFile;
/** The unit as install.sh would write it, with paths pointing into this checkout and the temp folder. */
let renderedUnitPath: string;
let renderedConfigPath: string;
let modelsDir: string;
let cacheDir: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "tabagent-systemd-"));
  unitText = readFileSync(UNIT_SOURCE, "utf8");
  unit = parseUnit(unitText);
  modelsDir = join(tmp, "models");
  cacheDir = join(tmp, "cache");
  mkdirSync(modelsDir);
  mkdirSync(cacheDir);
  renderedConfigPath = join(tmp, "tabagent.json");
  writeFileSync(renderedConfigPath, readFileSync(CONFIG_SOURCE, "utf8").replaceAll("/srv/tabagent/models", modelsDir));
  renderedUnitPath = join(tmp, "tabagent.service");
  writeFileSync(renderedUnitPath, render(unitText));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function render(text: string): string {
  return text.replaceAll("/opt/tabagent", REPO).replaceAll("/etc/tabagent/tabagent.json", renderedConfigPath).replaceAll("/srv/tabagent/models", modelsDir);
}

/** Runs `systemd-analyze verify` and returns the problems it reports about the given unit. */
async function verifyProblems(path: string): Promise<{ code: number; problems: string[]; output: string }> {
  const r = await run("systemd-analyze", ["verify", "--man=no", path], { env: { ...process.env, SYSTEMD_LOG_COLOR: "0" } });
  const name = path.split("/").at(-1)!;
  const problems = r.all.split("\n").filter((l) => l.trim() !== "" && (l.includes(path) || l.includes(name)));
  return { code: r.code, problems, output: r.all };
}

describe("deploy/systemd/tabagent.service", () => {
  it("passes systemd-analyze verify with no warnings", async () => {
    if (!(await hasCommand("systemd-analyze"))) throw new Error(MISSING_SYSTEMD_ANALYZE);
    const r = await verifyProblems(renderedUnitPath);
    expect(r.problems, r.output).toEqual([]);
    expect(r.code, r.output).toBe(0);
  });

  it("the verify check catches a broken unit (unknown key, bad value, missing binary)", async () => {
    if (!(await hasCommand("systemd-analyze"))) throw new Error(MISSING_SYSTEMD_ANALYZE);
    const cases: Array<[string, (t: string) => string]> = [
      ["unknown key", (t) => t.replace("KillMode=mixed", "KillMode=mixed\nKillModee=mixed")],
      ["bad value", (t) => t.replace("ProtectSystem=strict", "ProtectSystem=strictest")],
      ["missing binary", (t) => t.replace("ExecStart=/usr/bin/env", "ExecStart=/usr/bin/no-such-env")],
    ];
    for (const [what, mutate] of cases) {
      const path = join(tmp, `broken-${what.replaceAll(" ", "-")}.service`);
      writeFileSync(path, mutate(render(unitText)));
      const r = await verifyProblems(path);
      expect(r.problems.length > 0 || r.code !== 0, `${what} went unnoticed:\n${r.output}`).toBe(true);
    }
  });

  it("keeps systemd-analyze security's exposure at or below 3.5", async () => {
    if (!(await hasCommand("systemd-analyze"))) throw new Error(MISSING_SYSTEMD_ANALYZE);
    const r = await run("systemd-analyze", ["security", "--offline=true", "--threshold=35", renderedUnitPath]);
    const overall = /Overall exposure level for \S+: ([\d.]+)/.exec(r.all)?.[1];
    expect(overall, r.all).toBeDefined();
    expect(Number(overall), r.all).toBeLessThanOrEqual(3.5);
    expect(r.code, r.all).toBe(0);
  });

  it("has the settings the deployment guide describes", () => {
    const s = (key: string) => unitValue(unit, "Service", key);
    expect(s("User")).toBe("tabagent");
    expect(s("Group")).toBe("tabagent");
    expect(s("DynamicUser")).toBe("no");
    expect(s("ExecStart")).toBe("/usr/bin/env node /opt/tabagent/bin/tabagent serve --config /etc/tabagent/tabagent.json");
    expect(s("StateDirectory")).toBe("tabagent");
    expect(s("CacheDirectory")).toBe("tabagent");
    const env = unitEnvironment(unit);
    expect(env).toMatchObject({ NODE_ENV: "production", TABAGENT_CACHE_DIR: "/var/cache/tabagent" });
    expect(env.HF_HOME).toMatch(/^\/var\/cache\/tabagent\//);
    expect(unit.get("Service")?.get("EnvironmentFile")).toEqual(["-/etc/tabagent/tabagent.env"]);
    for (const [key, value] of Object.entries({
      ProtectSystem: "strict",
      ProtectHome: "yes",
      PrivateTmp: "yes",
      NoNewPrivileges: "yes",
      PrivateDevices: "no",
      ProtectKernelTunables: "yes",
      ProtectKernelModules: "yes",
      ProtectControlGroups: "yes",
      LockPersonality: "yes",
      RestrictRealtime: "yes",
      SystemCallArchitectures: "native",
      Restart: "on-failure",
      RestartSec: "2",
      RestartPreventExitStatus: "2",
      KillSignal: "SIGTERM",
      KillMode: "mixed",
      LimitNOFILE: "65536",
      CapabilityBoundingSet: "",
    })) {
      expect(s(key), key).toBe(value);
    }
    const families = s("RestrictAddressFamilies")!.split(/\s+/);
    expect(families).toEqual(expect.arrayContaining(["AF_INET", "AF_INET6", "AF_UNIX"]));
    expect(unit.get("Service")?.get("ReadWritePaths")).toContain("-/srv/tabagent/models");
    expect(readFileSync(CONFIG_SOURCE, "utf8")).toContain('"/srv/tabagent/models"');
    // GPU access is documented, not forced: DeviceAllow lines ship commented out.
    expect(unitText).toMatch(/^#DeviceAllow=\/dev\/nvidiactl rw$/m);
    expect(unitValue(unit, "Install", "WantedBy")).toBe("multi-user.target");
  });

  it("gives the daemon longer to stop than its shutdown grace period", () => {
    const stop = parseTimespanSeconds(unitValue(unit, "Service", "TimeoutStopSec")!);
    expect(stop).toBe(45);
    const schemaDefault = configSchema.parse({}).shutdownGraceSeconds;
    const shipped = configSchema.parse(JSON.parse(readFileSync(CONFIG_SOURCE, "utf8"))).shutdownGraceSeconds;
    // Grace, then unloading models and stopping llama-server children: keep at least 10 s of headroom.
    expect(stop).toBeGreaterThanOrEqual(schemaDefault + 10);
    expect(stop).toBeGreaterThanOrEqual(shipped + 10);
  });

  it("ExecStart, run as written, serves the shipped config and stops cleanly on SIGTERM", async () => {
    const rendered = parseUnit(readFileSync(renderedUnitPath, "utf8"));
    const argv = unitValue(rendered, "Service", "ExecStart")!.split(/\s+/);
    expect(argv[0]).toBe("/usr/bin/env");
    expect(existsSync(argv[2]!), `${argv[2]} (ExecStart's script, /opt/tabagent rewritten to this checkout)`).toBe(true);
    const env: Record<string, string> = {
      // systemd's PATH, with this node first: the test checks the unit, not where this machine keeps node.
      PATH: pathWithThisNode(SYSTEMD_PATH),
      HOME: tmp,
      ...Object.fromEntries(Object.entries(unitEnvironment(rendered)).map(([k, v]) => [k, v.replace("/var/cache/tabagent", cacheDir)])),
      // Env overrides the config file's port 8471, so the test never collides with a real daemon.
      TABAGENT_PORT: "0",
      TABAGENT_GPU: "off",
    };
    const daemon = await startListening(argv[0]!, argv.slice(1), env);
    try {
      const health = await run(process.execPath, [join(REPO, "deploy/docker/healthcheck.mjs"), `${daemon.url}/health`]);
      expect(health.code, health.all).toBe(0);
      const started = Date.now();
      daemon.child.kill("SIGTERM");
      const result = await daemon.child;
      expect(result.exitCode, daemon.logs.join("\n")).toBe(0);
      expect(Date.now() - started).toBeLessThan(parseTimespanSeconds(unitValue(unit, "Service", "TimeoutStopSec")!) * 1000);
      expect(daemon.logs.join("\n")).toMatch(/shutdown complete/);
    } finally {
      daemon.child.kill("SIGKILL");
    }
  });
});

describe("deploy/systemd/install.sh and uninstall.sh", () => {
  let scripts: string;
  beforeAll(() => {
    scripts = readableScriptsCopy();
  });
  afterAll(() => {
    rmSync(scripts, { recursive: true, force: true });
  });

  it("install.sh --dry-run works unprivileged in a temp prefix, prints the rendered unit, and changes nothing", async () => {
    const root = mkdtempSync(join(tmpdir(), "tabagent-install-"));
    try {
      const prefix = join(root, "opt/tabagent");
      const models = join(root, "models");
      const etcBefore = existsSync("/etc/tabagent");
      const r = await runUnprivileged(
        "bash",
        [join(scripts, "deploy/systemd/install.sh"), "--dry-run", "--prefix", prefix, "--models-dir", models],
        { PATH: pathWithThisNode(), HOME: root },
        root,
      );
      expect(r.code, r.all).toBe(0);
      expect(r.stdout).toMatch(/^# dry run: nothing is changed$/m);
      expect(r.stdout).toContain(`ExecStart=/usr/bin/env node ${prefix}/bin/tabagent serve --config /etc/tabagent/tabagent.json`);
      expect(r.stdout).toContain(`ReadWritePaths=-${models}`);
      expect(r.stdout).toMatch(/^\+ .*deploy\/docker\/build-app\.sh --source \S+ --dest \S+\/opt\/tabagent\.new$/m);
      expect(r.stdout).toMatch(/npm ci/);
      expect(r.stdout).toMatch(/^\+ .*deploy\/docker\/prune-runtime\.sh /m);
      expect(r.stdout).toMatch(/^\+ install -m 0600 -o root -g root .*tabagent\.env \/etc\/tabagent\/tabagent\.env$/m);
      expect(r.stdout).toMatch(/systemctl enable --now tabagent/);
      expect(r.stdout).toContain("would be installed");
      expect(readdirSync(root)).toEqual([]);
      expect(existsSync("/etc/tabagent")).toBe(etcBefore);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("install.sh refuses to run for real as non-root, and refuses system folders as --prefix", async () => {
    const env = { PATH: pathWithThisNode(), HOME: tmp };
    const notRoot = await runUnprivileged("bash", [join(scripts, "deploy/systemd/install.sh"), "--prefix", join(tmp, "p")], env, tmp);
    expect(notRoot.code).toBe(2);
    expect(notRoot.stderr).toMatch(/run as root/);
    for (const prefix of ["/usr", "/opt", "relative/path", "/opt/with space"]) {
      const r = await run("bash", [join(scripts, "deploy/systemd/install.sh"), "--dry-run", "--prefix", prefix], { env });
      expect(r.code, `${prefix}: ${r.all}`).toBe(2);
    }
  });

  it("uninstall.sh --dry-run works unprivileged and says what it keeps", async () => {
    const env = { PATH: pathWithThisNode(), HOME: tmp };
    const r = await runUnprivileged("bash", [join(scripts, "deploy/systemd/uninstall.sh"), "--dry-run", "--prefix", join(tmp, "nothing-here")], env, tmp);
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toMatch(/kept: \/etc\/tabagent/);
    expect(r.stdout).toMatch(/models folder is never removed/);
    const notRoot = await runUnprivileged("bash", [join(scripts, "deploy/systemd/uninstall.sh")], env, tmp);
    expect(notRoot.code).toBe(2);
  });

  it("every deploy script is executable and shellcheck-clean", async (ctx) => {
    const scriptsFound: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith(".sh")) scriptsFound.push(path);
      }
    };
    walk(join(REPO, "deploy"));
    expect(scriptsFound.length).toBeGreaterThanOrEqual(7);
    for (const path of scriptsFound) expect(statSync(path).mode & 0o111, `${path} is not executable`).not.toBe(0);
    if (!(await hasCommand("shellcheck"))) {
      ctx.skip("shellcheck is not installed (Debian: apt-get install -y shellcheck)");
      return;
    }
    const r = await execa("shellcheck", ["--severity=info", ...scriptsFound], { reject: false, all: true });
    expect(r.exitCode, String(r.all)).toBe(0);
  });
});
