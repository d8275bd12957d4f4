import { defineConfig } from "vitest/config";

/**
 * Three tiers, each a Vitest project (`vitest run --project unit`, `npm run test:unit`, ...); `vitest run` runs all
 * three, one tier after another (groupOrder), so the fast tier never competes with a model load for the CPU.
 *
 * - unit: pure logic. No model is loaded by an engine, no child process is started (a `node -e ""` to get a dead
 *   pid aside), the daemon's own HTTP stack is not listening; in-process test doubles on loopback (fake hub, fake
 *   upstream, fake llama-server socket) are fine. Needs no globalSetup, so it runs on a fresh clone in seconds,
 *   files in parallel.
 * - integration: real engines (node-llama-cpp, llama-server, ONNX Runtime, the Python sidecar), the daemon or its
 *   Fastify app on port 0, the template sandbox's renderer process. Needs test/globalSetup.ts (llama-server binary,
 *   Python dev venv) and, where a test runs bin/tabagent, the built dist/.
 * - e2e: the built CLI run as a user would (test/cli), the deploy scripts (Docker, systemd), the llama-server build
 *   script, and the cross-engine conformance suite.
 *
 * e2e and unit are explicit lists (disjoint), and every other test file is integration: the safe default for a new
 * file, which then gets globalSetup and runs one file at a time.
 */
const E2E = [
  "test/cli/**/*.test.ts",
  "test/nativeHost/nativeHostProtocol.test.ts",
  "test/nativeHost/chromiumNativeMessaging.test.ts",
  "test/conformance/**/*.test.ts",
  "test/deploy/**/*.test.ts",
  "test/native/buildLlamaServerScript.test.ts",
  "test/backends/bitnet/bitnetServe.test.ts",
];

const UNIT = [
  "test/api/openai/**/*.test.ts",
  "test/api/openapi/buildOpenApiDocument.test.ts",
  "test/api/routes/**/*.test.ts",
  "test/api/GenerationTimings.test.ts",
  "test/api/management/PullProgress.test.ts",
  "test/architecture/**/*.test.ts",
  "test/backends/generation/JsonSchemaMatcher.test.ts",
  "test/backends/litert/LiteRtBackend.test.ts",
  "test/detection/litert/readLlmMetadata.test.ts",
  "test/backends/generation/StopSequenceMatcher.test.ts",
  "test/backends/generation/StreamingDetokenizer.test.ts",
  "test/backends/generation/TokenMask.test.ts",
  "test/backends/generation/TokenTextStream.test.ts",
  "test/backends/generation/readAhead.test.ts",
  "test/bench/**/*.test.ts",
  "test/backends/generation/toolCalls.test.ts",
  "test/backends/llamacpp/jsonSchemaGrammar.test.ts",
  "test/backends/bitnet/bitnetParsing.test.ts",
  "test/backends/llamaServer/ChildEndpoint.test.ts",
  "test/backends/llamaServer/ChildServerClient.test.ts",
  "test/backends/onnx/resolveExternalData.test.ts",
  "test/backends/onnx/samplingAndGraph.test.ts",
  "test/backends/openaiHttp/**/*.test.ts",
  "test/config/**/*.test.ts",
  "test/core/**/*.test.ts",
  // test/detection/detectSource.test.ts runs bin/tabagent: integration.
  "test/detection/*/**/*.test.ts",
  "test/detection/detectSource.fuzz.test.ts",
  "test/engines/**/*.test.ts",
  "test/fixtures/gguf/**/*.test.ts",
  "test/native/findLlamaServer.test.ts",
  "test/native/findPythonEnv.test.ts",
  "test/registry/**/*.test.ts",
  "test/router/**/*.test.ts",
  "test/server/createLogger.test.ts",
  "test/server/explainListenError.test.ts",
  "test/server/metrics/DaemonMetrics.test.ts",
  // test/server/security/registerSecurity.test.ts listens with the daemon's security layer: integration.
  "test/server/security/checkBindSafety.test.ts",
  "test/server/security/createKeyMatcher.test.ts",
  "test/server/security/policies.test.ts",
  "test/server/security/securitySchema.test.ts",
  // test/store/serveOnDemand.test.ts and ggufServingEngine.test.ts start the daemon: integration.
  "test/store/!(serveOnDemand|ggufServingEngine).test.ts",
  "test/nativeHost/{FrameReader,encodeFrames,manifestLocations,installNativeHost}.test.ts",
  "test/supervisor/ManagedProcess.test.ts",
  "test/supervisor/ProcessRegistry.test.ts",
  "test/supervisor/RingBuffer.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: UNIT,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: [...E2E, ...UNIT],
          globalSetup: ["test/globalSetup.ts"],
          // Integration tests load real models and start real servers; on a 2-core machine they run one file at a time.
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: E2E,
          globalSetup: ["test/globalSetup.ts"],
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
