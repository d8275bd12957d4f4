#!/usr/bin/env bash
# Builds llama-server (standard llama.cpp or Microsoft's BitNet fork) with cmake + ninja into a content-keyed cache.
#
#   native/build-llama-server.sh [--variant standard|bitnet] [--source DIR | --git-ref REF] [--cmake-flag FLAG]...
#                                [--bitnet-kernels MODEL|none] [--jobs N] [--cache-dir DIR] [--print-path] [--dry-run]
#                                [--force]
#
# The output is <cache-dir>/<key>/bin/llama-server (plus a llama-server-<variant> link next to it; the bitnet
# variant also ships llama-quantize, which writes I2_S / TL1 / TL2 files), where <key>
# hashes everything that changes the binary: the source revision, the variant, the cmake flags, the compiler and
# SCRIPT_VERSION. A build runs in a temp folder and is renamed into place only once build-info.json is written,
# so a half-finished build never looks complete, and a second run with the same inputs answers at once.
# Written for bash 3.2 too (macOS): no associative arrays, no mapfile.
set -euo pipefail

# Bump when the default flags or the output layout change: it is part of every cache key.
SCRIPT_VERSION="1"

# Microsoft's BitNet (github.com/microsoft/BitNet at c82b5e6, with its llama.cpp fork in 3rdparty/llama.cpp) as
# shipped beside the project; --source names a checkout of it instead.
BITNET_TARBALL_DEFAULT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/third_party/BitNet-c82b5e6.tar.xz"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
NODE_LLAMA_CPP_DIR="${TABAGENT_NODE_LLAMA_CPP_DIR:-$PROJECT_ROOT/node_modules/node-llama-cpp}"

# Flags every build gets; --cmake-flag values come after them and win for the same variable.
#  - no web UI download, no OpenSSL (HTTPS is not needed on localhost), portable CPU code;
#  - static libraries, so the binary is one self-contained file that can be copied anywhere;
#  - $ORIGIN rpath, so a build with BUILD_SHARED_LIBS=ON still finds its libs after being moved.
DEFAULT_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  -DGGML_NATIVE=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_CURL=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON
)

log() { printf '[build-llama-server] %s\n' "$*" >&2; }
die() {
  local code="$1"
  shift
  printf 'build-llama-server: error: %s\n' "$*" >&2
  exit "$code"
}

usage() {
  cat <<'EOF'
Usage: native/build-llama-server.sh [options]

Builds llama-server with cmake + ninja and prints the path of the binary.

  --variant standard|bitnet  which engine this build is for (default: standard); names the output.
                             bitnet builds Microsoft's BitNet llama.cpp fork: llama-server and llama-quantize,
                             from $TABAGENT_BITNET_SOURCE or ../shared/third_party/BitNet-c82b5e6.tar.xz
                             unless --source names a BitNet checkout (with 3rdparty/llama.cpp filled in)
  --source DIR               build this llama.cpp checkout instead of the llama.cpp tree bundled in
                             node-llama-cpp (with --variant bitnet: a BitNet checkout)
  --bitnet-kernels MODEL     bitnet only: generate the LUT kernels (TL2 on x86_64, TL1 on arm64) for this
                             upstream model shape: bitnet_b1_58-large (default), bitnet_b1_58-3B,
                             Llama3-8B-1.58-100B-tokens; or 'none' (I2_S only, which runs any model)
  --git-ref REF              build this tag/commit of the bundle (or of the --source git checkout)
  --cmake-flag FLAG          extra cmake flag, repeatable (e.g. -DGGML_CUDA=ON, -DGGML_VULKAN=ON)
  --jobs N                   parallel compile jobs (default: number of CPUs)
  --cache-dir DIR            default: ${TABAGENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tabagent}/llama-server
  --print-path               print only the binary path on stdout (logs go to stderr)
  --dry-run                  print the cache key, paths and the cmake commands; build nothing
  --force                    rebuild even when a complete build with the same key exists
  -h, --help                 this help

Environment: CC, CXX (compilers; bitnet defaults to clang, the only one BitNet accepts), CMAKE, NINJA, PYTHON,
TABAGENT_CACHE_DIR, TABAGENT_BITNET_SOURCE (a BitNet .tar.xz or checkout for --variant bitnet).
Exit status: 0 built or found, 2 bad arguments, 3 a required tool is missing, 1 the build failed.
EOF
}

# ---------------------------------------------------------------- arguments
VARIANT="standard"
SOURCE_DIR=""
GIT_REF=""
USER_FLAGS=()
JOBS=""
CACHE_DIR=""
PRINT_PATH=0
DRY_RUN=0
FORCE=0
BITNET_KERNELS=""

need_value() { [ "$2" -ge 2 ] || die 2 "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) need_value "$1" $#; VARIANT="$2"; shift 2 ;;
    --variant=*) VARIANT="${1#*=}"; shift ;;
    --source) need_value "$1" $#; SOURCE_DIR="$2"; shift 2 ;;
    --source=*) SOURCE_DIR="${1#*=}"; shift ;;
    --git-ref) need_value "$1" $#; GIT_REF="$2"; shift 2 ;;
    --git-ref=*) GIT_REF="${1#*=}"; shift ;;
    --cmake-flag) need_value "$1" $#; USER_FLAGS+=("$2"); shift 2 ;;
    --cmake-flag=*) USER_FLAGS+=("${1#*=}"); shift ;;
    --bitnet-kernels) need_value "$1" $#; BITNET_KERNELS="$2"; shift 2 ;;
    --bitnet-kernels=*) BITNET_KERNELS="${1#*=}"; shift ;;
    --jobs | -j) need_value "$1" $#; JOBS="$2"; shift 2 ;;
    --jobs=*) JOBS="${1#*=}"; shift ;;
    --cache-dir) need_value "$1" $#; CACHE_DIR="$2"; shift 2 ;;
    --cache-dir=*) CACHE_DIR="${1#*=}"; shift ;;
    --print-path) PRINT_PATH=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --force) FORCE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done

case "$VARIANT" in
  standard | bitnet) ;;
  *) die 2 "--variant must be 'standard' or 'bitnet', not '$VARIANT'" ;;
esac
# ---------------------------------------------------------------- BitNet kernels
# Upstream's setup_env.py: the LUT kernels are generated per model shape (utils/codegen_tl2.py on x86_64,
# codegen_tl1.py on arm64) and switched on with one cmake flag; I2_S needs no generated code.
BITNET_ARCH=""
BITNET_CODEGEN=""
BITNET_CODEGEN_ARGS=""
BITNET_DEFAULT_FLAGS=()
if [ "$VARIANT" = "bitnet" ]; then
  case "$(uname -m 2>/dev/null || echo unknown)" in
    x86_64 | amd64 | AMD64 | x86 | i686) BITNET_ARCH="x86_64" ;;
    aarch64 | arm64 | ARM64) BITNET_ARCH="arm64" ;;
    *) BITNET_ARCH="other" ;;
  esac
  if [ -z "$BITNET_KERNELS" ]; then
    if [ "$BITNET_ARCH" = "other" ]; then BITNET_KERNELS="none"; else BITNET_KERNELS="bitnet_b1_58-large"; fi
  fi
  # BM, BK, bm per model, as setup_env.py passes them.
  case "$BITNET_ARCH:$BITNET_KERNELS" in
    *:none) ;;
    x86_64:bitnet_b1_58-large) BITNET_CODEGEN_ARGS="--BM 256,128,256 --BK 96,192,96 --bm 32,32,32" ;;
    x86_64:bitnet_b1_58-3B) BITNET_CODEGEN_ARGS="--BM 160,320,320 --BK 96,96,96 --bm 32,32,32" ;;
    x86_64:Llama3-8B-1.58-100B-tokens) BITNET_CODEGEN_ARGS="--BM 256,128,256,128 --BK 96,96,96,96 --bm 32,32,32,32" ;;
    arm64:bitnet_b1_58-large) BITNET_CODEGEN_ARGS="--BM 256,128,256 --BK 128,64,128 --bm 32,64,32" ;;
    arm64:bitnet_b1_58-3B) BITNET_CODEGEN_ARGS="--BM 160,320,320 --BK 64,128,64 --bm 32,64,32" ;;
    arm64:Llama3-8B-1.58-100B-tokens) BITNET_CODEGEN_ARGS="--BM 256,128,256,128 --BK 128,64,128,64 --bm 32,64,32,64" ;;
    other:*) die 2 "--bitnet-kernels '$BITNET_KERNELS': LUT kernels exist for x86_64 (TL2) and arm64 (TL1) only; use 'none' (I2_S)" ;;
    *) die 2 "--bitnet-kernels must be bitnet_b1_58-large, bitnet_b1_58-3B, Llama3-8B-1.58-100B-tokens or none, not '$BITNET_KERNELS'" ;;
  esac
  # The fork is a subproject of BitNet's CMakeLists, so its examples and server are off unless asked for.
  BITNET_DEFAULT_FLAGS=(-DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=ON)
  if [ -n "$BITNET_CODEGEN_ARGS" ]; then
    if [ "$BITNET_ARCH" = "x86_64" ]; then
      BITNET_CODEGEN="utils/codegen_tl2.py"
      BITNET_DEFAULT_FLAGS+=(-DBITNET_X86_TL2=ON)
    else
      BITNET_CODEGEN="utils/codegen_tl1.py"
      BITNET_DEFAULT_FLAGS+=(-DBITNET_ARM_TL1=ON)
    fi
  fi
  # The I2_S and TL2 kernels are AVX2 code behind #if __AVX2__: a portable (non-native) x86 build must ask for it.
  if [ "$BITNET_ARCH" = "x86_64" ]; then
    BITNET_DEFAULT_FLAGS+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)
  fi
elif [ -n "$BITNET_KERNELS" ]; then
  die 2 "--bitnet-kernels is only for --variant bitnet"
fi

if [ -z "$JOBS" ]; then
  JOBS="$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 2)"
fi
case "$JOBS" in
  '' | *[!0-9]* | 0) die 2 "--jobs must be a positive integer, not '$JOBS'" ;;
esac
if [ -z "$CACHE_DIR" ]; then
  CACHE_DIR="${TABAGENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tabagent}/llama-server"
fi
if [ ${#USER_FLAGS[@]} -gt 0 ]; then
  for f in "${USER_FLAGS[@]}"; do
    [ -n "$f" ] || die 2 "--cmake-flag needs a non-empty value"
    case "$f" in
      -G* | -S* | -B*) die 2 "--cmake-flag '$f': the generator, source and build folders are chosen by this script" ;;
    esac
  done
fi

# ---------------------------------------------------------------- portable helpers
sha256_stdin() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum | sed 's/ .*//'
  else shasum -a 256 | sed 's/ .*//'; fi
}
sha256_file() { sha256_stdin <"$1"; }

json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\r'/\\r}"
  s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}
json_array() {
  local first=1 item
  printf '['
  for item in "$@"; do
    [ $first -eq 1 ] || printf ', '
    first=0
    json_str "$item"
  done
  printf ']'
}

# Sets FLAG_NAME to the cmake variable a -D flag sets (-DNAME:TYPE=VALUE → NAME); other flags are their own
# name. A global instead of $(...) output: it runs for every pair of flags, and subshells are slow.
FLAG_NAME=""
flag_name() {
  local f="$1"
  case "$f" in
    -D*)
      f="${f#-D}"
      f="${f%%=*}"
      FLAG_NAME="${f%%:*}"
      ;;
    *) FLAG_NAME="$f" ;;
  esac
}

# Value of a -D flag in FLAGS (last one wins), or empty.
flag_value() {
  local want="$1" f value=""
  for f in "${FLAGS[@]}"; do
    case "$f" in -D*=*) flag_name "$f"; [ "$FLAG_NAME" != "$want" ] || value="${f#*=}" ;; esac
  done
  printf '%s' "$value"
}

# ---------------------------------------------------------------- effective flags
# Later flags replace earlier ones for the same variable, then the list is sorted: the key does not depend on
# the order the flags were given in, and cmake sees exactly what was hashed.
FLAGS=()
add_flag() {
  local new="$1" name i
  flag_name "$new"
  name="$FLAG_NAME"
  if [ ${#FLAGS[@]} -gt 0 ]; then
    for i in "${!FLAGS[@]}"; do
      flag_name "${FLAGS[$i]}"
      if [ "$FLAG_NAME" = "$name" ]; then
        FLAGS[i]="$new"
        return
      fi
    done
  fi
  FLAGS+=("$new")
}
for f in "${DEFAULT_FLAGS[@]}" ${BITNET_DEFAULT_FLAGS[@]+"${BITNET_DEFAULT_FLAGS[@]}"} ${USER_FLAGS[@]+"${USER_FLAGS[@]}"}; do
  add_flag "$f"
done
SORTED=()
while IFS= read -r line; do SORTED+=("$line"); done < <(printf '%s\n' "${FLAGS[@]}" | LC_ALL=C sort)
FLAGS=("${SORTED[@]}")

# ---------------------------------------------------------------- tools
CMAKE_BIN="${CMAKE:-cmake}"
NINJA_BIN="${NINJA:-ninja}"
C_COMPILER="$(flag_value CMAKE_C_COMPILER)"
DEFAULT_CC="cc"
DEFAULT_CXX="c++"
# BitNet's CMakeLists refuses any compiler but clang ("Clang is required for Bitnet.cpp compilation"; ClangCL on
# Windows), so the bitnet variant defaults to it.
if [ "$VARIANT" = "bitnet" ]; then
  DEFAULT_CC="clang"
  DEFAULT_CXX="clang++"
fi
C_COMPILER="${C_COMPILER:-${CC:-$DEFAULT_CC}}"
CXX_COMPILER="$(flag_value CMAKE_CXX_COMPILER)"
CXX_COMPILER="${CXX_COMPILER:-${CXX:-$DEFAULT_CXX}}"

require_tool() {
  local what="$1" bin="$2" hint="$3"
  command -v "$bin" >/dev/null 2>&1 || die 3 "$what not found ('$bin'). $hint"
}
if [ "$VARIANT" = "bitnet" ]; then
  CLANG_HINT="BitNet builds only with clang: install it (Debian/Ubuntu: apt-get install clang; macOS: xcode-select --install; Windows: Visual Studio's clang-cl) or set CC/CXX to clang."
  require_tool "C compiler" "$C_COMPILER" "$CLANG_HINT"
  require_tool "C++ compiler" "$CXX_COMPILER" "$CLANG_HINT"
else
  require_tool "C compiler" "$C_COMPILER" "Install a compiler (Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install) or set CC."
  require_tool "C++ compiler" "$CXX_COMPILER" "Install a compiler (Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install) or set CXX."
fi

first_line_of() { { "$@" 2>&1 || true; } | sed -n 1p; }
last_line_of() { { "$@" 2>&1 || true; } | sed -n '$p'; }
COMPILER_C="$(first_line_of "$C_COMPILER" --version)"
COMPILER_CXX="$(first_line_of "$CXX_COMPILER" --version)"
# A CUDA build also depends on the nvcc release.
CUDA_VERSION=""
case "$(flag_value GGML_CUDA)" in
  ON | on | On | 1 | TRUE | true | YES | yes)
    NVCC="$(flag_value CMAKE_CUDA_COMPILER)"
    NVCC="${NVCC:-${CUDACXX:-nvcc}}"
    if command -v "$NVCC" >/dev/null 2>&1; then CUDA_VERSION="$(last_line_of "$NVCC" --version)"; fi
    ;;
esac

# ---------------------------------------------------------------- source and revision
BUNDLE="$NODE_LLAMA_CPP_DIR/llama/gitRelease.bundle"
RELEASE_TAG=""
SOURCE_KIND=""
REVISION=""
TMP_ROOT=""
cleanup() {
  if [ -n "$TMP_ROOT" ] && [ -d "$TMP_ROOT" ]; then rm -rf "$TMP_ROOT"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

make_tmp_root() {
  if [ -z "$TMP_ROOT" ]; then
    mkdir -p "$CACHE_DIR/.tmp"
    TMP_ROOT="$(mktemp -d "$CACHE_DIR/.tmp/build.XXXXXX")"
  fi
}

git_quiet() { git -c advice.detachedHead=false "$@"; }

# Content hash of a source folder that is not a git checkout: every file but build outputs and VCS data.
content_hash() {
  local hasher=(sha256sum)
  command -v sha256sum >/dev/null 2>&1 || hasher=(shasum -a 256)
  (
    cd "$1"
    find . \( -name .git -o -name 'build' -o -name 'build-*' -o -name node_modules \) -prune -o -type f -print0 \
      | LC_ALL=C sort -z \
      | xargs -0 "${hasher[@]}"
  ) | sha256_stdin
}

# Hash of the uncommitted state of a git checkout: the diff against HEAD plus the untracked files.
dirty_hash() {
  (
    cd "$1"
    git diff HEAD
    git ls-files --others --exclude-standard -z | LC_ALL=C sort -z | while IFS= read -r -d '' f; do
      printf '%s  %s\n' "$f" "$(sha256_file "$f")"
    done
  ) | sha256_stdin
}

BITNET_TARBALL=""
if [ "$VARIANT" = "bitnet" ] && [ -z "$SOURCE_DIR" ]; then
  BITNET_FROM="${TABAGENT_BITNET_SOURCE:-$BITNET_TARBALL_DEFAULT}"
  if [ -d "$BITNET_FROM" ]; then
    SOURCE_DIR="$BITNET_FROM"
  elif [ -f "$BITNET_FROM" ]; then
    BITNET_TARBALL="$(cd "$(dirname "$BITNET_FROM")" && pwd -P)/$(basename "$BITNET_FROM")"
  else
    die 2 "no BitNet source: $BITNET_FROM is missing. Pass --source DIR (a checkout of github.com/microsoft/BitNet with 'git submodule update --init') or set TABAGENT_BITNET_SOURCE to a BitNet .tar.xz"
  fi
fi

if [ -n "$BITNET_TARBALL" ]; then
  SOURCE_KIND="tarball"
  REVISION="tarball-$(sha256_file "$BITNET_TARBALL")"
elif [ -n "$SOURCE_DIR" ]; then
  [ -d "$SOURCE_DIR" ] || die 2 "--source '$SOURCE_DIR' is not a folder"
  SOURCE_DIR="$(cd "$SOURCE_DIR" && pwd -P)"
  [ -f "$SOURCE_DIR/CMakeLists.txt" ] || die 2 "--source '$SOURCE_DIR' has no CMakeLists.txt (expected a llama.cpp checkout)"
  if [ "$VARIANT" = "bitnet" ]; then
    if [ ! -f "$SOURCE_DIR/3rdparty/llama.cpp/CMakeLists.txt" ] || [ ! -f "$SOURCE_DIR/utils/codegen_tl2.py" ]; then
      die 2 "--source '$SOURCE_DIR' is not a BitNet checkout (expected utils/codegen_tl2.py and 3rdparty/llama.cpp; run 'git submodule update --init --recursive')"
    fi
  fi
  TOPLEVEL=""
  if command -v git >/dev/null 2>&1; then
    TOPLEVEL="$(git -C "$SOURCE_DIR" rev-parse --show-toplevel 2>/dev/null || true)"
    [ -z "$TOPLEVEL" ] || TOPLEVEL="$(cd "$TOPLEVEL" && pwd -P)"
  fi
  if [ -n "$GIT_REF" ]; then
    [ "$TOPLEVEL" = "$SOURCE_DIR" ] || die 2 "--git-ref needs --source to be the top of a git checkout"
    SOURCE_KIND="git-ref"
    REVISION="$(git -C "$SOURCE_DIR" rev-parse --verify --quiet "$GIT_REF^{commit}" || true)"
    [ -n "$REVISION" ] || die 2 "--git-ref '$GIT_REF' is not a commit of $SOURCE_DIR"
  elif [ -n "$TOPLEVEL" ] && [ "$TOPLEVEL" = "$SOURCE_DIR" ]; then
    SOURCE_KIND="git-checkout"
    REVISION="$(git -C "$SOURCE_DIR" rev-parse HEAD)"
    # Uncommitted edits and new files (e.g. BitNet's generated kernel headers) change the binary, so they are
    # part of the revision; ignored files (build folders) are not.
    if [ -n "$(git -C "$SOURCE_DIR" status --porcelain 2>/dev/null)" ]; then
      REVISION="$REVISION-dirty-$(dirty_hash "$SOURCE_DIR" | cut -c1-16)"
    fi
  else
    SOURCE_KIND="folder"
    log "hashing the contents of $SOURCE_DIR (not a git checkout)"
    REVISION="content-$(content_hash "$SOURCE_DIR")"
  fi
else
  [ -f "$BUNDLE" ] || die 2 "no llama.cpp source: $BUNDLE is missing (run npm install, or pass --source DIR)"
  require_tool "git" git "git is needed to unpack the llama.cpp bundle shipped in node-llama-cpp."
  SOURCE_KIND="bundle"
  RELEASE_TAG="$(sed -n 's/.*"tag"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$NODE_LLAMA_CPP_DIR/llama/llama.cpp.info.json" 2>/dev/null | sed -n 1p || true)"
  if [ -z "$RELEASE_TAG" ]; then
    RELEASE_TAG="$(sed -n 's/.*"release"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$NODE_LLAMA_CPP_DIR/llama/binariesGithubRelease.json" 2>/dev/null | sed -n 1p || true)"
  fi
  if [ -z "$GIT_REF" ]; then
    REVISION="$(git bundle list-heads "$BUNDLE" HEAD 2>/dev/null | sed -n 's/^\([0-9a-f]\{40,64\}\) .*/\1/p' | sed -n 1p)"
    [ -n "$REVISION" ] || die 1 "cannot read the revision of $BUNDLE"
  fi
fi
# A ref inside the bundle can only be resolved from a clone; the clone is reused by the build.
CLONE_DIR=""
if [ "$SOURCE_KIND" = "bundle" ] && [ -n "$GIT_REF" ]; then
  make_tmp_root
  CLONE_DIR="$TMP_ROOT/src"
  log "unpacking $BUNDLE to resolve '$GIT_REF'"
  git_quiet clone --quiet --no-checkout "$BUNDLE" "$CLONE_DIR"
  REVISION="$(git -C "$CLONE_DIR" rev-parse --verify --quiet "$GIT_REF^{commit}" || true)"
  [ -n "$REVISION" ] || die 2 "--git-ref '$GIT_REF' is not in $BUNDLE (it holds: $(git bundle list-heads "$BUNDLE" | tr '\n' ' '))"
fi

# ---------------------------------------------------------------- cache key
KEY_MATERIAL="$(
  printf 'script-version=%s\n' "$SCRIPT_VERSION"
  printf 'variant=%s\n' "$VARIANT"
  printf 'revision=%s\n' "$REVISION"
  printf 'compiler-c=%s\n' "$COMPILER_C"
  printf 'compiler-cxx=%s\n' "$COMPILER_CXX"
  printf 'cuda=%s\n' "$CUDA_VERSION"
  printf 'flag=%s\n' "${FLAGS[@]}"
  [ "$VARIANT" != "bitnet" ] || printf 'bitnet-kernels=%s:%s\n' "$BITNET_ARCH" "$BITNET_KERNELS"
)"
KEY="$VARIANT-$(printf '%s\n' "$KEY_MATERIAL" | sha256_stdin | cut -c1-20)"
FINAL_DIR="$CACHE_DIR/$KEY"
EXE=""
case "$(uname -s 2>/dev/null || echo unknown)" in MINGW* | MSYS* | CYGWIN*) EXE=".exe" ;; esac
FINAL_BIN="$FINAL_DIR/bin/llama-server$EXE"

is_complete() { [ -f "$FINAL_DIR/build-info.json" ] && [ -x "$FINAL_BIN" ]; }

report_path() {
  if [ $PRINT_PATH -eq 1 ]; then printf '%s\n' "$FINAL_BIN"
  else printf 'llama-server (%s) ready: %s\n' "$VARIANT" "$FINAL_BIN"; fi
}

# Shell-quotes only what needs it, so the printed command stays readable and can be pasted.
quote_cmd() {
  local out="" a
  for a in "$@"; do
    case "$a" in
      '' | *[!A-Za-z0-9_./=:,+@%-]*) out="$out '${a//\'/\'\\\'\'}'" ;;
      *) out="$out $a" ;;
    esac
  done
  printf '%s' "${out# }"
}

TARGETS=(llama-server)
[ "$VARIANT" != "bitnet" ] || TARGETS=(llama-server llama-quantize)

if [ $DRY_RUN -eq 1 ]; then
  SRC_FOR_PRINT="$SOURCE_DIR"
  case "$SOURCE_KIND" in bundle | git-ref | tarball) SRC_FOR_PRINT="<tmp>/src" ;; esac
  [ "$VARIANT" != "bitnet" ] || SRC_FOR_PRINT="<tmp>/src"
  complete="no"
  if is_complete; then complete="yes"; fi
  printf 'key=%s\n' "$KEY"
  printf 'variant=%s\n' "$VARIANT"
  printf 'source-kind=%s\n' "$SOURCE_KIND"
  printf 'source=%s\n' "${BITNET_TARBALL:-${SOURCE_DIR:-$BUNDLE}}"
  printf 'revision=%s\n' "$REVISION"
  printf 'release-tag=%s\n' "$RELEASE_TAG"
  printf 'compiler-cxx=%s\n' "$COMPILER_CXX"
  printf 'cache-dir=%s\n' "$CACHE_DIR"
  printf 'path=%s\n' "$FINAL_BIN"
  printf 'complete=%s\n' "$complete"
  printf 'flag=%s\n' "${FLAGS[@]}"
  if [ "$VARIANT" = "bitnet" ]; then
    printf 'bitnet-kernels=%s\n' "$BITNET_KERNELS"
    # shellcheck disable=SC2086 # the argument string is split on purpose
    [ -z "$BITNET_CODEGEN" ] || printf 'codegen=%s\n' "$(quote_cmd "${PYTHON:-python3}" "$BITNET_CODEGEN" --model "$BITNET_KERNELS" $BITNET_CODEGEN_ARGS)"
  fi
  printf 'configure=%s\n' "$(quote_cmd "$CMAKE_BIN" -S "$SRC_FOR_PRINT" -B "<tmp>/build" -G Ninja "-DCMAKE_MAKE_PROGRAM=$NINJA_BIN" "${FLAGS[@]}")"
  printf 'build=%s\n' "$(quote_cmd "$CMAKE_BIN" --build "<tmp>/build" --target "${TARGETS[@]}" -j "$JOBS")"
  exit 0
fi

if [ $FORCE -eq 0 ] && is_complete; then
  log "cached build $KEY"
  report_path
  exit 0
fi

require_tool "cmake" "$CMAKE_BIN" "Install cmake >= 3.14 (Debian/Ubuntu: apt-get install cmake; macOS: brew install cmake; or pip install cmake) or set CMAKE."
require_tool "ninja" "$NINJA_BIN" "Install ninja (Debian/Ubuntu: apt-get install ninja-build; macOS: brew install ninja; or pip install ninja) or set NINJA."
NINJA_PATH="$(command -v "$NINJA_BIN")"

# ---------------------------------------------------------------- lock
# One build per key at a time; a second caller waits and then finds the finished build.
mkdir -p "$CACHE_DIR/.locks"
LOCK_FILE="$CACHE_DIR/.locks/$KEY.lock"
LOCK_DIR_HELD=""
release_mkdir_lock() { [ -z "$LOCK_DIR_HELD" ] || rm -rf "$LOCK_DIR_HELD"; }
if command -v flock >/dev/null 2>&1; then
  exec 9>"$LOCK_FILE"
  if ! flock -n 9; then
    log "another build of $KEY is running; waiting for it"
    flock 9
  fi
else
  # No flock (macOS): a lock folder holding the owner's pid; a dead owner's lock is taken over.
  waited=0
  until mkdir "$LOCK_FILE.d" 2>/dev/null; do
    owner="$(cat "$LOCK_FILE.d/pid" 2>/dev/null || true)"
    if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
      rm -rf "$LOCK_FILE.d"
      continue
    fi
    [ $waited -eq 1 ] || log "another build of $KEY is running; waiting for it"
    waited=1
    sleep 2
  done
  echo $$ >"$LOCK_FILE.d/pid"
  LOCK_DIR_HELD="$LOCK_FILE.d"
  trap 'release_mkdir_lock; cleanup' EXIT
fi

if [ $FORCE -eq 0 ] && is_complete; then
  log "another process finished $KEY"
  report_path
  exit 0
fi

# ---------------------------------------------------------------- build
make_tmp_root
STARTED_AT="$(date +%s)"
case "$SOURCE_KIND" in
  bundle)
    if [ -z "$CLONE_DIR" ]; then
      CLONE_DIR="$TMP_ROOT/src"
      log "unpacking $BUNDLE ($REVISION)"
      git_quiet clone --quiet --no-checkout "$BUNDLE" "$CLONE_DIR"
    fi
    git_quiet -C "$CLONE_DIR" checkout --quiet "$REVISION"
    SRC="$CLONE_DIR"
    ;;
  git-ref)
    CLONE_DIR="$TMP_ROOT/src"
    log "cloning $SOURCE_DIR at $REVISION"
    git_quiet clone --quiet --no-checkout "$SOURCE_DIR" "$CLONE_DIR"
    git_quiet -C "$CLONE_DIR" checkout --quiet "$REVISION"
    git -C "$CLONE_DIR" submodule update --init --recursive --quiet 2>/dev/null || true
    SRC="$CLONE_DIR"
    ;;
  *) SRC="$SOURCE_DIR" ;;
esac
if [ "$VARIANT" = "bitnet" ]; then
  # Kernel generation writes into include/: it runs on a private copy, never in the caller's checkout.
  if [ "$SOURCE_KIND" = "tarball" ]; then
    log "unpacking $BITNET_TARBALL"
    mkdir -p "$TMP_ROOT/unpack"
    tar -xf "$BITNET_TARBALL" -C "$TMP_ROOT/unpack"
    top="$(find "$TMP_ROOT/unpack" -mindepth 1 -maxdepth 1 -type d | sed -n 1p)"
    if [ -z "$top" ] || [ ! -f "$top/3rdparty/llama.cpp/CMakeLists.txt" ]; then die 1 "$BITNET_TARBALL does not hold a BitNet tree with 3rdparty/llama.cpp"; fi
    mv "$top" "$TMP_ROOT/src"
  elif [ "$SRC" != "$TMP_ROOT/src" ]; then
    mkdir -p "$TMP_ROOT/src"
    (cd "$SRC" && tar -cf - --exclude=./.git --exclude=./build --exclude='./build-*' .) | (cd "$TMP_ROOT/src" && tar -xf -)
  fi
  SRC="$TMP_ROOT/src"
  if [ -n "$BITNET_CODEGEN" ]; then
    PYTHON_BIN="${PYTHON:-python3}"
    require_tool "python" "$PYTHON_BIN" "BitNet's kernel generator is a Python 3 script (standard library only); install python3 or set PYTHON, or pass --bitnet-kernels none."
    log "generating $BITNET_ARCH LUT kernels for $BITNET_KERNELS ($BITNET_CODEGEN)"
    # shellcheck disable=SC2086 # the argument string is split on purpose
    (cd "$SRC" && "$PYTHON_BIN" "$BITNET_CODEGEN" --model "$BITNET_KERNELS" $BITNET_CODEGEN_ARGS) >&2 \
      || die 1 "BitNet kernel generation failed (see the output above)"
  fi
fi
BUILD_DIR="$TMP_ROOT/build"
log "configuring $KEY (source: $SOURCE_KIND, revision $REVISION)"
log "flags: ${FLAGS[*]}"
CC="$C_COMPILER" CXX="$CXX_COMPILER" "$CMAKE_BIN" -S "$SRC" -B "$BUILD_DIR" -G Ninja "-DCMAKE_MAKE_PROGRAM=$NINJA_PATH" "${FLAGS[@]}" >&2 \
  || die 1 "cmake configure failed (see the output above)"
log "building ${TARGETS[*]} with $JOBS jobs"
"$CMAKE_BIN" --build "$BUILD_DIR" --target "${TARGETS[@]}" -j "$JOBS" >&2 || die 1 "the llama-server build failed (see the output above)"

BUILT=""
for candidate in "$BUILD_DIR/bin/llama-server$EXE" "$BUILD_DIR/bin/Release/llama-server$EXE" "$BUILD_DIR/llama-server$EXE"; do
  if [ -f "$candidate" ]; then BUILT="$candidate"; break; fi
done
[ -n "$BUILT" ] || die 1 "the build finished but no llama-server$EXE was found under $BUILD_DIR"

STAGE="$TMP_ROOT/stage"
mkdir -p "$STAGE/bin"
cp "$BUILT" "$STAGE/bin/llama-server$EXE"
chmod 755 "$STAGE/bin/llama-server$EXE"
# Shared libraries only exist when a caller overrides BUILD_SHARED_LIBS=OFF; ship them next to the binary.
for lib in "$(dirname "$BUILT")"/*.so "$(dirname "$BUILT")"/*.so.* "$(dirname "$BUILT")"/*.dylib "$(dirname "$BUILT")"/*.dll; do
  [ -e "$lib" ] || continue
  cp -P "$lib" "$STAGE/bin/"
done
# The variant's own name, as release folders use it (a hard link: no extra space, no symlink support needed).
ln "$STAGE/bin/llama-server$EXE" "$STAGE/bin/llama-server-$VARIANT$EXE" 2>/dev/null \
  || cp "$STAGE/bin/llama-server$EXE" "$STAGE/bin/llama-server-$VARIANT$EXE"
if [ "$VARIANT" = "bitnet" ]; then
  [ -f "$(dirname "$BUILT")/llama-quantize$EXE" ] || die 1 "the build finished but no llama-quantize$EXE was found next to $BUILT"
  cp "$(dirname "$BUILT")/llama-quantize$EXE" "$STAGE/bin/llama-quantize$EXE"
  chmod 755 "$STAGE/bin/llama-quantize$EXE"
  # The generated kernel shapes: a TL1/TL2 model only loads if its matrices match them.
  [ ! -f "$SRC/include/kernel_config.ini" ] || cp "$SRC/include/kernel_config.ini" "$STAGE/kernel_config.ini"
fi

DEPS=()
if command -v ldd >/dev/null 2>&1 && [ -z "$EXE" ]; then
  ldd_out="$(ldd "$STAGE/bin/llama-server" 2>&1 || true)"
  if printf '%s\n' "$ldd_out" | grep -q 'not found'; then
    printf '%s\n' "$ldd_out" >&2
    die 1 "the built llama-server needs libraries that are not found (see ldd above)"
  fi
  while IFS= read -r line; do
    line="$(printf '%s' "$line" | sed 's/^[[:space:]]*//; s/ (0x[0-9a-f]*)$//')"
    case "$line" in '' | *'not a dynamic executable'* | *'statically linked'*) continue ;; esac
    DEPS+=("$line")
  done <<EOF
$ldd_out
EOF
elif command -v otool >/dev/null 2>&1; then
  while IFS= read -r line; do
    DEPS+=("$(printf '%s' "$line" | sed 's/^[[:space:]]*//; s/ (compatibility.*//')")
  done < <(otool -L "$STAGE/bin/llama-server" | sed 1d)
fi

VERSION_OUT=""
if command -v timeout >/dev/null 2>&1; then
  VERSION_OUT="$(timeout 30 "$STAGE/bin/llama-server$EXE" --version 2>&1 </dev/null || true)"
else
  VERSION_OUT="$("$STAGE/bin/llama-server$EXE" --version 2>&1 </dev/null || true)"
fi
BINARY_SHA="$(sha256_file "$STAGE/bin/llama-server$EXE")"
FINISHED_AT="$(date +%s)"

{
  printf '{\n'
  printf '  "schema": 1,\n'
  printf '  "scriptVersion": %s,\n' "$(json_str "$SCRIPT_VERSION")"
  printf '  "key": %s,\n' "$(json_str "$KEY")"
  printf '  "variant": %s,\n' "$(json_str "$VARIANT")"
  printf '  "source": {"kind": %s, "path": %s, "gitRef": %s, "releaseTag": %s},\n' \
    "$(json_str "$SOURCE_KIND")" "$(json_str "${BITNET_TARBALL:-${SOURCE_DIR:-$BUNDLE}}")" "$(json_str "$GIT_REF")" "$(json_str "$RELEASE_TAG")"
  printf '  "revision": %s,\n' "$(json_str "$REVISION")"
  printf '  "cmakeFlags": %s,\n' "$(json_array "${FLAGS[@]}")"
  printf '  "bitnetKernels": %s,\n' "$(json_str "$BITNET_KERNELS")"
  printf '  "compiler": {"c": %s, "cxx": %s, "cuda": %s},\n' "$(json_str "$COMPILER_C")" "$(json_str "$COMPILER_CXX")" "$(json_str "$CUDA_VERSION")"
  printf '  "platform": %s,\n' "$(json_str "$(uname -sm 2>/dev/null || echo unknown)")"
  printf '  "date": %s,\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
  printf '  "buildSeconds": %s,\n' "$((FINISHED_AT - STARTED_AT))"
  printf '  "binary": %s,\n' "$(json_str "bin/llama-server$EXE")"
  printf '  "sha256": %s,\n' "$(json_str "$BINARY_SHA")"
  printf '  "sizeBytes": %s,\n' "$(wc -c <"$STAGE/bin/llama-server$EXE" | tr -d ' ')"
  printf '  "dynamicLibraries": %s,\n' "$(json_array ${DEPS[@]+"${DEPS[@]}"})"
  printf '  "versionOutput": %s\n' "$(json_str "$VERSION_OUT")"
  printf '}\n'
} >"$STAGE/build-info.json"

# The rename is the commit point: before it the key folder does not exist, after it the build is complete.
if [ -e "$FINAL_DIR" ]; then rm -rf "$FINAL_DIR"; fi
mv "$STAGE" "$FINAL_DIR"
log "built $KEY in $((FINISHED_AT - STARTED_AT)) s"
report_path
