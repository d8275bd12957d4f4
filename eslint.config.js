// @ts-check
// Lint configuration (flat config). TypeScript files are linted with type information from tsconfig.json, which
// covers src/, test/, bench/, scripts/ and vitest.config.ts. Run with `npm run lint`.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".fixtures/", "coverage/", "native/python/"] },

  {
    files: ["**/*.ts"],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // Promises: an un-awaited or misplaced promise is the bug class that hurts a daemon most (unhandled
      // rejections, cleanup that runs before the work it cleans up). floating-promises, misused-promises and
      // await-thenable come from recommendedTypeChecked; these are stated for visibility.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      // `return promise` inside try/catch skips the catch and the finally's ordering; require the await there.
      "@typescript-eslint/return-await": ["error", "in-try-catch"],
      // A new member of a union (a new engine, task, finish reason) must be handled by every switch over it.
      "@typescript-eslint/switch-exhaustiveness-check": [
        "error",
        { allowDefaultCaseForExhaustiveSwitch: true, considerDefaultExhaustiveForUnions: true, requireDefaultForNonUnion: false },
      ],
      // verbatimModuleSyntax keeps type-only imports out of the emitted JS; this keeps them spelled `import type`.
      // Inline `import("onnxruntime-node").X` annotations stay allowed: the ONNX engine types its lazily loaded module that way.
      "@typescript-eslint/consistent-type-imports": ["error", { prefer: "type-imports", fixStyle: "separate-type-imports", disallowTypeAnnotations: false }],
      "@typescript-eslint/no-explicit-any": "error",
      // Deliberately unused names start with `_` (callback parameters kept for their position, skipped tuple items).
      "@typescript-eslint/no-unused-vars": [
        "error",
        {
          args: "after-used",
          argsIgnorePattern: "^_",
          varsIgnorePattern: "^_",
          caughtErrorsIgnorePattern: "^_",
          destructuredArrayIgnorePattern: "^_",
          ignoreRestSiblings: true,
        },
      ],
      // Forwarding an `unknown` error or an AbortSignal's `reason` unchanged is the intended pattern here.
      "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingAny: true, allowThrowingUnknown: true }],

      // Off: noise for this codebase.
      // Many async methods implement Promise-returning interfaces (backends, spawners, fakes) without awaiting
      // anything; `async` keeps a thrown error a rejection, which is what callers rely on.
      "@typescript-eslint/require-await": "off",
      // The path and name validators and the ANSI-stripping test helpers match control characters on purpose.
      "no-control-regex": "off",
    },
  },

  {
    // Tests read JSON bodies (`await res.json()`, JSON.parse of logs and SSE frames) as `any` and assert on
    // them with expect(); the no-unsafe-* rules would flag every such read without finding bugs. They stay on
    // for src/, bench/ and scripts/, where an `any` leaking from a parse is a real hole in the types.
    files: ["test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-return": "off",
    },
  },

  {
    // Plain JavaScript run by Node: this file, the container health check (deploy/docker/healthcheck.mjs) and the
    // supervisor tests' fake server (test/supervisor/fixtures/fakeServer.mjs).
    files: ["**/*.js", "**/*.mjs"],
    extends: [js.configs.recommended],
    languageOptions: {
      sourceType: "module",
      globals: Object.fromEntries(
        ["process", "console", "fetch", "AbortSignal", "URL", "Buffer", "setTimeout", "clearTimeout", "setInterval", "clearInterval"].map((name) => [name, "readonly"]),
      ),
    },
  },
);
