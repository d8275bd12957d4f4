#!/usr/bin/env bash
# The GPU check anyone can rerun (issue 16): on a machine with an NVIDIA GPU and no network, builds the CUDA
# llama-server with native/build-llama-server.sh, makes ~200 M-param test models with the project's fixture scripts
# (transformers folder, GGUF, ONNX), and prints daemon-vs-engine-alone figures for llama-server, transformers and
# ONNX at concurrency 1, 4 and 8, then runs the OpenAI SDK checks. Budget: about 8 minutes on one H100/H200
# (the CUDA build is most of it; a second run reuses the build cache).
#
#   scripts/gpu-check.sh [--cpu] [--small] [--out DIR] [--reps N] [--max-tokens N] [--skip-sdk]
#
#   --cpu         no GPU needed: the cached CPU llama-server (built if missing), CPU engines; proves the script works
#   --small       small models (hidden 256, 4 layers, ~4 M params) instead of ~200 M; implied by --cpu
#   --out DIR     where models and logs go (default: .gpu-check/ in the project)
#   --reps N      timed runs per side and level (default 3)
#   --max-tokens N  tokens per request (default 128)
#   --skip-sdk    skip the OpenAI SDK checks (vitest files that drive the daemon with the `openai` client)
#
# Needs: node_modules (npm ci), a Python with torch + transformers (TABAGENT_PYTHON, else the dev venv from
# native/setup-python.sh --dev, else python3), cmake + ninja + nvcc for the CUDA build. Exit 0 when every step ran
# (targets MISS are reported, not fatal); non-zero when a step itself failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CPU=0
SMALL=0
OUT="$ROOT/.gpu-check"
REPS=3
MAX_TOKENS=128
SDK=1
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU=1; SMALL=1 ;;
    --small) SMALL=1 ;;
    --out) OUT="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --max-tokens) MAX_TOKENS="$2"; shift ;;
    --skip-sdk) SDK=0 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'gpu-check: unknown option %s (see --help)\n' "$1" >&2; exit 2 ;;
  esac
  shift
done

STARTED=$(date +%s)
say() { printf '\n[gpu-check %4ss] %s\n' "$(($(date +%s) - STARTED))" "$*" >&2; }
die() { printf 'gpu-check: error: %s\n' "$*" >&2; exit 1; }
mkdir -p "$OUT/logs"
SUMMARY="$OUT/logs/summary.txt"
: >"$SUMMARY"

# ---- 1. the machine
if [ "$CPU" = 0 ]; then
  command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: no NVIDIA driver here (use --cpu to run without a GPU)"
  nvidia-smi --query-gpu=index,name,memory.total,memory.free,driver_version --format=csv,noheader | sed 's/^/  gpu: /' >&2
fi
say "building the project (npm run build) and the hardware report (tabagent doctor --json)"
npm run --silent build >"$OUT/logs/build.log" 2>&1 || die "npm run build failed; see $OUT/logs/build.log"
node "$ROOT/bin/tabagent" doctor --json >"$OUT/logs/doctor.json" || die "tabagent doctor failed (is the project built? npm run build)"
# shellcheck disable=SC2016 # JavaScript, not shell: nothing to expand
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const gib = (b) => (b / 1024 ** 3).toFixed(1) + " GiB";
  console.log(`cpu: ${r.cpu.count} x ${r.cpu.model}; ram ${gib(r.ram.totalBytes)}`);
  for (const g of r.gpus.gpus) console.log(`gpu ${g.index}: ${g.name}, ${gib(g.vramTotalBytes)} (${gib(g.vramFreeBytes)} free), driver ${g.driver}, CUDA ${r.gpus.cuda}`);
  if (r.gpus.gpus.length === 0) console.log(`gpus: none (${r.gpus.error})`);
  for (const e of r.engines) console.log(`  ${e.name.padEnd(20)} GPU: ${e.gpu.usable ? "yes" : "no"} (${e.gpu.reason})`);
' "$OUT/logs/doctor.json" | tee -a "$SUMMARY"

# ---- 2. Python with torch + transformers (offline: nothing is installed here)
PYTHON="${TABAGENT_PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if VENV="$(bash "$ROOT/native/setup-python.sh" --dev --print-path 2>/dev/null)" && [ -x "$VENV/bin/python" ]; then
    PYTHON="$VENV/bin/python"
  else
    PYTHON="$(command -v python3 || true)"
  fi
fi
if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import torch, transformers' 2>/dev/null; then
  die "no Python with torch + transformers (set TABAGENT_PYTHON)"
fi
export TABAGENT_PYTHON="$PYTHON"
say "python: $PYTHON ($("$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'))"

# ---- 3. llama-server: the CUDA build (or the CPU one with --cpu), cached by native/build-llama-server.sh
say "building llama-server ($([ "$CPU" = 1 ] && echo CPU || echo CUDA); cached after the first run)"
BUILD_ARGS=(--print-path)
[ "$CPU" = 0 ] && BUILD_ARGS+=(--cmake-flag -DGGML_CUDA=ON)
LLAMA_SERVER="$(bash "$ROOT/native/build-llama-server.sh" "${BUILD_ARGS[@]}" 2>"$OUT/logs/build-llama-server.log")" ||
  die "native/build-llama-server.sh failed; see $OUT/logs/build-llama-server.log"
say "llama-server: $LLAMA_SERVER"

# ---- 4. test models from the fixture scripts: ~200 M params (hidden 1024, 12 layers, MLP 4096), or small
if [ "$SMALL" = 1 ]; then
  SHAPE=(--hidden 256 --layers 4 --heads 4 --kv-heads 2)
else
  SHAPE=(--hidden 1024 --layers 12 --heads 16 --kv-heads 8 --intermediate 4096)
fi
MODEL_DIR="$OUT/models/hf-$(printf '%s' "${SHAPE[*]}" | tr ' -' '_x')"
FIX="$ROOT/native/python/fixtures"
if [ ! -f "$MODEL_DIR/config.json" ]; then
  say "making the transformers model (${SHAPE[*]})"
  "$PYTHON" "$FIX/make_tiny_llm.py" "$MODEL_DIR" "${SHAPE[@]}" >"$OUT/logs/make_model.log" 2>&1 || die "make_tiny_llm.py failed; see $OUT/logs/make_model.log"
fi
# llama-server's chat parser refuses some random output of the ChatML llama above ("does not match the expected
# peg-native format"), so its GGUF comes from the GGUF fixture writer (bench/makeBenchModel.ts's generator, whose
# end-of-turn bias keeps greedy output going): same width and depth, F32.
if [ "$SMALL" = 1 ]; then GGUF_SHAPE="nEmbd: 256, nLayer: 4, nHead: 4, nFf: 512"; else GGUF_SHAPE="nEmbd: 1024, nLayer: 12, nHead: 16, nFf: 4096"; fi
GGUF="$OUT/models/chat-$(printf '%s' "$GGUF_SHAPE" | tr -cd '0-9_').gguf"
if [ ! -f "$GGUF" ]; then
  say "writing the GGUF chat model ($GGUF_SHAPE)"
  npx tsx --eval "import('$ROOT/test/fixtures/makeTinyChatModel.ts').then((m) => m.writeTinyChatModel('$GGUF', { $GGUF_SHAPE, eogBias: -40 }))" \
    >"$OUT/logs/make_gguf.log" 2>&1 || die "writing the GGUF failed; see $OUT/logs/make_gguf.log"
fi
ONNX_DIR="$MODEL_DIR.onnx"
if [ ! -f "$ONNX_DIR/config.json" ]; then
  say "exporting to ONNX"
  "$PYTHON" "$FIX/export_onnx.py" "$MODEL_DIR" "$ONNX_DIR" >"$OUT/logs/export_onnx.log" 2>&1 || die "export_onnx.py failed; see $OUT/logs/export_onnx.log"
fi
"$PYTHON" -c 'import json, sys; print("params:", json.load(open(sys.argv[1] + "/config.json")).get("hidden_size"), "hidden")' "$MODEL_DIR" >&2

# ---- 5. the benchmarks: daemon vs the engine alone
run_bench() {
  local name="$1"
  shift
  say "bench: $name"
  if npx tsx "$ROOT/bench/runBench.ts" "$@" 2>"$OUT/logs/bench-$name.err" | tee "$OUT/logs/bench-$name.txt"; then
    { printf '\n== %s\n' "$name"; grep -E 'PASS|MISS|decode ratio|A/A|^[0-9]+ +[0-9.]+' "$OUT/logs/bench-$name.txt" || true; } >>"$SUMMARY"
  else
    printf '\n== %s: FAILED (see %s)\n' "$name" "$OUT/logs/bench-$name.err" | tee -a "$SUMMARY" >&2
    FAILED=1
  fi
}
FAILED=0
export TABAGENT_LLAMA_SERVER="$LLAMA_SERVER"
for conc in 4 8; do
  run_bench "llama-server-conc$conc" llama-server --model "$GGUF" --llama-server "$LLAMA_SERVER" --no-node-llama-cpp \
    --concurrency "$conc" --reps "$REPS" --reps-concurrent "$REPS" --max-tokens "$MAX_TOKENS"
done
run_bench transformers transformers --model "$MODEL_DIR" --conc 1,4,8 --reps "$REPS" --max-tokens "$MAX_TOKENS"
run_bench onnx onnx --model "$ONNX_DIR" --reps "$REPS" --max-tokens "$MAX_TOKENS"
# shellcheck disable=SC2016 # JavaScript, not shell: nothing to expand
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const ort = r.engines.find((e) => e.name === "onnxruntime");
  console.log(`onnx on CUDA: ${ort.gpu.usable ? "possible" : "not here"}: ${ort.gpu.reason}`);
' "$OUT/logs/doctor.json" | tee -a "$SUMMARY"

# ---- 6. the OpenAI SDK checks (the daemon driven by the real `openai` client)
if [ "$SDK" = 1 ]; then
  say "OpenAI SDK checks"
  if npx vitest run test/backends/transformers/transformersBatching.test.ts test/conformance/logprobsTransformers.test.ts \
    test/server/concurrency.test.ts >"$OUT/logs/sdk.txt" 2>&1; then
    printf '\n== OpenAI SDK checks: passed\n' | tee -a "$SUMMARY"
  else
    printf '\n== OpenAI SDK checks: FAILED (see %s)\n' "$OUT/logs/sdk.txt" | tee -a "$SUMMARY" >&2
    FAILED=1
  fi
fi

say "done in $(($(date +%s) - STARTED)) s; summary in $SUMMARY"
printf '\n==== summary (%s)\n' "$([ "$CPU" = 1 ] && echo "CPU, --cpu" || echo GPU)"
cat "$SUMMARY"
exit "$FAILED"
