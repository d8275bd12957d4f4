import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MissingExternalDataError, resolveExternalData, UnsafeExternalDataError } from "../../../src/backends/onnx/resolveExternalData.js";

let base: string;
let model: string;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "tabagent-extdata-"));
  model = join(base, "model");
  await mkdir(join(model, "onnx", "weights"), { recursive: true });
  await writeFile(join(model, "onnx", "model.onnx"), "graph");
  await writeFile(join(model, "onnx", "model.onnx_data"), "data");
  await writeFile(join(model, "onnx", "weights", "part1.bin"), "data");
  await writeFile(join(base, "secret.bin"), "outside");
  await symlink(join(base, "secret.bin"), join(model, "onnx", "escape.bin"));
  await symlink(join(model, "onnx", "model.onnx_data"), join(model, "onnx", "inside-link.bin"));
  // A Hugging Face cache snapshot links into its repo's blobs/: allowed.
  const repo = join(base, "hub", "models--org--name");
  await mkdir(join(repo, "blobs"), { recursive: true });
  await mkdir(join(repo, "snapshots", "abc"), { recursive: true });
  await writeFile(join(repo, "blobs", "1234"), "data");
  await writeFile(join(repo, "snapshots", "abc", "model.onnx"), "graph");
  await symlink(join(repo, "blobs", "1234"), join(repo, "snapshots", "abc", "model.onnx_data"));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("resolveExternalData", () => {
  it("accepts locations inside the folder, relative to the graph, and links that stay inside", async () => {
    const paths = await resolveExternalData(model, "onnx/model.onnx", ["model.onnx_data", "./weights/part1.bin", "inside-link.bin"]);
    expect(paths).toHaveLength(3);
    expect(paths[2]!.endsWith(join("onnx", "model.onnx_data"))).toBe(true);
  });

  it("refuses '..', absolute paths and drive letters by their text", async () => {
    for (const location of ["../secret.bin", "../../secret.bin", "weights/../../x", join(base, "secret.bin"), "C:\\\\x.bin", "\\\\server\\share"]) {
      await expect(resolveExternalData(model, "onnx/model.onnx", [location]), location).rejects.toBeInstanceOf(UnsafeExternalDataError);
    }
  });

  it("refuses a symlink that leads outside the folder", async () => {
    await expect(resolveExternalData(model, "onnx/model.onnx", ["escape.bin"])).rejects.toThrow(/escape\.bin.*outside the model folder/);
  });

  it("refuses a graph file that is itself a link out of the folder", async () => {
    await symlink(join(base, "secret.bin"), join(model, "linked.onnx"));
    await expect(resolveExternalData(model, "linked.onnx", [])).rejects.toBeInstanceOf(UnsafeExternalDataError);
  });

  it("says which data file is missing", async () => {
    await expect(resolveExternalData(model, "onnx/model.onnx", ["nope.bin"])).rejects.toBeInstanceOf(MissingExternalDataError);
  });

  it("allows a Hugging Face snapshot's links into the same repo's blobs", async () => {
    const snapshot = join(base, "hub", "models--org--name", "snapshots", "abc");
    await expect(resolveExternalData(snapshot, "model.onnx", ["model.onnx_data"])).resolves.toHaveLength(1);
  });
});
