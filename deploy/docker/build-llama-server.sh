#!/usr/bin/env bash
# Builds llama-server for the image with the project's own script (native/build-llama-server.sh, the one CI runs)
# and copies the binary out of the build cache into DEST:
#
#   deploy/docker/build-llama-server.sh --app DIR --dest DIR [--backend cuda|cpu] [--cuda-architectures LIST]
#                                       [--jobs N] [--dry-run]
#
#   --app DIR     a tree built by build-app.sh (its native/ script and node_modules/node-llama-cpp's llama.cpp
#                 bundle are used; run this before prune-runtime.sh)
#   --dest DIR    gets bin/llama-server and build-info.json
#   --backend     cuda (default: -DGGML_CUDA=ON) or cpu (the script's default flags only: the same build, and so
#                 the same cache entry, as CI's)
#   --cuda-architectures  CMAKE_CUDA_ARCHITECTURES (default: $CUDA_ARCHITECTURES or "75;80;86;89;90")
#   --dry-run     print what native/build-llama-server.sh would do (its --dry-run output) and the copy; build nothing
#
# A docker build has no GPU driver, so libcuda.so.1 exists only as the toolkit's link stub. The native script
# checks the finished binary with ldd and refuses one with a missing library, so for a CUDA build the stub is put
# on LD_LIBRARY_PATH (as libcuda.so.1) for the build only; at run time the NVIDIA container runtime mounts the real
# driver library.
set -euo pipefail

APP=""
DEST=""
BACKEND="cuda"
ARCHS="${CUDA_ARCHITECTURES:-75;80;86;89;90}"
JOBS=""
DRY_RUN=0
die() {
  printf 'build-llama-server (docker): error: %s\n' "$2" >&2
  exit "$1"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --app) [ $# -ge 2 ] || die 2 "--app needs a value"; APP="$2"; shift 2 ;;
    --dest) [ $# -ge 2 ] || die 2 "--dest needs a value"; DEST="$2"; shift 2 ;;
    --backend) [ $# -ge 2 ] || die 2 "--backend needs a value"; BACKEND="$2"; shift 2 ;;
    --cuda-architectures) [ $# -ge 2 ] || die 2 "--cuda-architectures needs a value"; ARCHS="$2"; shift 2 ;;
    --jobs) [ $# -ge 2 ] || die 2 "--jobs needs a value"; JOBS="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$APP" ] || die 2 "--app DIR is required"
[ -n "$DEST" ] || die 2 "--dest DIR is required"
SCRIPT="$APP/native/build-llama-server.sh"
[ -x "$SCRIPT" ] || die 2 "$SCRIPT is missing or not executable (is --app a tree built by build-app.sh?)"

ARGS=(--print-path)
case "$BACKEND" in
  cuda) ARGS+=(--cmake-flag -DGGML_CUDA=ON --cmake-flag "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS") ;;
  cpu) ;;
  *) die 2 "--backend must be cuda or cpu, not '$BACKEND'" ;;
esac
[ -z "$JOBS" ] || ARGS+=(--jobs "$JOBS")

if [ "$BACKEND" = "cuda" ] && [ "$DRY_RUN" -eq 0 ]; then
  command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] \
    || die 3 "nvcc not found: a CUDA build needs the CUDA toolkit (the nvidia/cuda *-devel images have it)"
  command -v nvcc >/dev/null 2>&1 || export PATH="/usr/local/cuda/bin:$PATH"
  # The toolkit's libraries (libcudart, libcublas) for the native script's ldd check, wherever ld.so.conf stands.
  export LD_LIBRARY_PATH="${CUDA_HOME:-/usr/local/cuda}/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    STUB=""
    for candidate in "${CUDA_HOME:-/usr/local/cuda}/lib64/stubs/libcuda.so" /usr/local/cuda/targets/*/lib/stubs/libcuda.so; do
      if [ -f "$candidate" ]; then STUB="$candidate"; break; fi
    done
    [ -n "$STUB" ] || die 3 "no libcuda.so.1 (no driver) and no CUDA toolkit stub libcuda.so to build against"
    STUB_DIR="$(mktemp -d)"
    trap 'rm -rf "$STUB_DIR"' EXIT
    ln -s "$STUB" "$STUB_DIR/libcuda.so.1"
    export LD_LIBRARY_PATH="$STUB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    printf 'build-llama-server (docker): no GPU driver here; building against the stub %s\n' "$STUB" >&2
  fi
fi

if [ "$DRY_RUN" -eq 1 ]; then
  printf '+ %s %s --dry-run\n' "$SCRIPT" "${ARGS[*]}" >&2
  "$SCRIPT" "${ARGS[@]}" --dry-run
  printf '+ copy <path>, build-info.json -> %s/bin/llama-server, %s/build-info.json\n' "$DEST" "$DEST" >&2
  exit 0
fi

printf '+ %s %s\n' "$SCRIPT" "${ARGS[*]}" >&2
BIN="$("$SCRIPT" "${ARGS[@]}" | tail -n 1)"
[ -x "$BIN" ] || die 1 "native/build-llama-server.sh printed '$BIN', which is not an executable file"
mkdir -p "$DEST/bin"
cp "$BIN" "$DEST/bin/llama-server"
chmod 755 "$DEST/bin/llama-server"
cp "$(dirname "$(dirname "$BIN")")/build-info.json" "$DEST/build-info.json"
# Builds with BUILD_SHARED_LIBS=ON put their libraries next to the binary (rpath $ORIGIN): they travel with it.
for lib in "$(dirname "$BIN")"/*.so "$(dirname "$BIN")"/*.so.*; do
  [ -e "$lib" ] || continue
  cp -P "$lib" "$DEST/bin/"
done
printf 'build-llama-server (docker): %s/bin/llama-server (%s)\n' "$DEST" "$BACKEND" >&2
