#!/usr/bin/env bash
# Creates (or finds) the Python virtual environment that runs the transformers sidecar (or, with --engine litert,
# the LiteRT engine: its own venv under <data-dir>/python-litert/, without torch).
#
#   native/setup-python.sh [--engine transformers|litert] [--dev] [--cpu | --cuda] [--python PYTHON] [--data-dir DIR] [--print-path] [--dry-run] [--force]
#
# The venv lives at <data-dir>/python/<key>, where <key> hashes everything that changes what gets installed: the
# requirements file(s), the torch variant, the Python version and SCRIPT_VERSION. venv-info.json is written last,
# so a half-made venv never looks complete; a second run with the same inputs answers at once. The daemon finds the
# venv the same way (src/native/findPythonEnv.ts), so `tabagent setup python`, CI and the Dockerfile all share it.
set -euo pipefail

SCRIPT_VERSION="1"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ_DIR="$SCRIPT_DIR/python"
# The CPU-only torch wheels are on PyTorch's own index; PyPI's Linux wheels are the CUDA build.
CPU_INDEX="${TABAGENT_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

log() { printf '[setup-python] %s\n' "$*" >&2; }
die() {
  local code="$1"
  shift
  printf 'setup-python: error: %s\n' "$*" >&2
  exit "$code"
}

usage() {
  cat <<'EOF'
Usage: native/setup-python.sh [options]

Creates the virtual environment for the transformers sidecar and prints its folder.

  --engine NAME      transformers (default) or litert: LiteRT-LM's runtime (requirements-litert.txt; with --dev
                     also the PyTorch -> LiteRT converter for fixtures, requirements-litert-dev.txt)
  --dev              also install what fixtures, tests and benchmarks need (requirements-dev.txt)
  --cpu              torch without CUDA, from PyTorch's CPU index (smaller; needs that index reachable)
  --cuda             torch with CUDA (PyPI's Linux build; the default on Linux)
  --python PYTHON    the interpreter to build the venv from (default: $TABAGENT_PYTHON_BASE or python3)
  --data-dir DIR     default: ${TABAGENT_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/tabagent}
  --print-path       print only the venv folder on stdout (pip's output goes to stderr)
  --dry-run          print the key and the commands; install nothing
  --force            recreate the venv even when a complete one with the same key exists
EOF
}

dev=0
engine="transformers"
variant="default"
python="${TABAGENT_PYTHON_BASE:-python3}"
data_dir="${TABAGENT_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/tabagent}"
print_path=0
dry_run=0
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) dev=1 ;;
    --engine)
      [ $# -ge 2 ] || die 2 "--engine needs a value"
      case "$2" in transformers | litert) engine="$2" ;; *) die 2 "--engine: transformers or litert, not '$2'" ;; esac
      shift
      ;;
    --cpu) variant="cpu" ;;
    --cuda) variant="cuda" ;;
    --python)
      [ $# -ge 2 ] || die 2 "--python needs a value"
      python="$2"
      shift
      ;;
    --data-dir)
      [ $# -ge 2 ] || die 2 "--data-dir needs a value"
      data_dir="$2"
      shift
      ;;
    --print-path) print_path=1 ;;
    --dry-run) dry_run=1 ;;
    --force) force=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die 2 "unknown option '$1' (see --help)" ;;
  esac
  shift
done

command -v "$python" >/dev/null 2>&1 ||
  die 3 "no Python interpreter '$python' found. Install Python 3.10 or newer (Debian/Ubuntu: apt-get install python3 python3-venv) or name one with --python / TABAGENT_PYTHON_BASE."
py_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" ||
  die 3 "'$python' does not run"
case "$py_version" in
  3.1[0-9] | 3.[2-9][0-9]) ;;
  *) die 3 "Python $py_version is too old: the sidecar needs 3.10 or newer (--python names another)" ;;
esac
"$python" -c 'import venv, ensurepip' 2>/dev/null ||
  die 3 "'$python' lacks the venv module (Debian/Ubuntu: apt-get install python3-venv)"

sha() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }
if [ "$engine" = "litert" ]; then
  # LiteRT-LM needs no torch at run time; its converter (dev) pins an older torch than the sidecar's.
  reqs=("$REQ_DIR/requirements-litert.txt")
  [ "$dev" = 1 ] && reqs+=("$REQ_DIR/requirements-litert-dev.txt")
  variant="none"
  key="$({ printf 'v%s %s litert dev=%s\n' "$SCRIPT_VERSION" "$py_version" "$dev"; cat "${reqs[@]}"; } | sha | cut -c1-20)"
  runtime_hash="$(sha <"$REQ_DIR/requirements-litert.txt" | cut -c1-64)"
  venv_root="$data_dir/python-litert"
  torch_pin=""
else
  reqs=("$REQ_DIR/requirements.txt")
  [ "$dev" = 1 ] && reqs+=("$REQ_DIR/requirements-dev.txt")
  key="$({ printf 'v%s %s %s dev=%s\n' "$SCRIPT_VERSION" "$py_version" "$variant" "$dev"; cat "${reqs[@]}"; } | sha | cut -c1-20)"
  runtime_hash="$(sha <"$REQ_DIR/requirements.txt" | cut -c1-64)"
  venv_root="$data_dir/python"
  torch_pin="$(grep -E '^torch==' "$REQ_DIR/requirements.txt")"
fi
venv="$venv_root/$key"

torch_args=("$torch_pin")
[ "$variant" = "cpu" ] && torch_args+=(--index-url "$CPU_INDEX")

if [ "$dry_run" = 1 ]; then
  printf 'key: %s\nvenv: %s\npython: %s (%s)\nvariant: %s\n' "$key" "$venv" "$python" "$py_version" "$variant"
  [ -z "$torch_pin" ] || printf 'pip install %s\n' "${torch_args[*]}"
  for r in "${reqs[@]}"; do printf 'pip install -r %s\n' "$r"; done
  exit 0
fi

done_path() {
  if [ "$print_path" = 1 ]; then printf '%s\n' "$venv"; else log "ready: $venv"; fi
  exit 0
}

if [ "$force" = 0 ] && [ -f "$venv/venv-info.json" ] && [ -x "$venv/bin/python" ]; then
  done_path
fi

mkdir -p "$venv_root"
# One setup at a time per key: a second caller waits for the first instead of racing it.
exec 9>"$venv_root/$key.lock"
if command -v flock >/dev/null; then flock 9; fi
if [ "$force" = 0 ] && [ -f "$venv/venv-info.json" ]; then done_path; fi

rm -rf "$venv"
log "creating $venv (Python $py_version, engine: $engine, torch: $variant)"
"$python" -m venv "$venv" >&2
pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@" >&2; }
if [ -n "$torch_pin" ]; then
  log "installing $torch_pin (the largest download; several minutes on a slow link)"
  pip install "${torch_args[@]}" || die 4 "installing torch failed (see pip's output above); rerun native/setup-python.sh, or pass --cpu/--cuda to pick the other build"
fi
for r in "${reqs[@]}"; do
  log "installing $(basename "$r")"
  pip install -r "$r" || die 4 "installing $(basename "$r") failed (see pip's output above); rerun native/setup-python.sh"
done
if [ "$engine" = "litert" ]; then
  "$venv/bin/python" -c 'import litert_lm, litert_lm_builder, jinja2' >&2 ||
    die 4 "the new venv cannot import litert_lm (LiteRT-LM has wheels for Linux x86_64/arm64 and macOS arm64)"
  printf '{"key": "%s", "engine": "litert", "python": "%s", "variant": "none", "dev": %s, "runtimeRequirementsSha256": "%s", "scriptVersion": "%s"}\n' \
    "$key" "$py_version" "$([ "$dev" = 1 ] && echo true || echo false)" "$runtime_hash" "$SCRIPT_VERSION" >"$venv/venv-info.json"
  done_path
fi
"$venv/bin/python" -c 'import torch, transformers, safetensors' >&2 || die 4 "the new venv cannot import torch/transformers"
cat >"$venv/venv-info.json" <<EOF
{"key": "$key", "python": "$py_version", "variant": "$variant", "dev": $([ "$dev" = 1 ] && echo true || echo false), "runtimeRequirementsSha256": "$runtime_hash", "scriptVersion": "$SCRIPT_VERSION"}
EOF
done_path
