#!/usr/bin/env bash
# Builds tabagent into DEST the way CI does: copy the source tree, `npm ci` (which runs `prepare`, the build), then
# `npm run build` again explicitly so the step is visible and never skipped. Used by the Dockerfile's builder
# stage and by deploy/systemd/install.sh; test/deploy/dockerScripts.test.ts runs it for real.
#
#   deploy/docker/build-app.sh [--source DIR] --dest DIR [--dry-run]
#
# DEST must not exist or be empty. devDependencies stay installed (typescript is needed to build, and
# native/build-llama-server.sh needs node-llama-cpp's llama.cpp bundle): run deploy/docker/prune-runtime.sh after.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$(cd "$SCRIPT_DIR/../.." && pwd)"
DEST=""
DRY_RUN=0

die() {
  printf 'build-app: error: %s\n' "$2" >&2
  exit "$1"
}
usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --source) [ $# -ge 2 ] || die 2 "--source needs a value"; SOURCE="$2"; shift 2 ;;
    --dest) [ $# -ge 2 ] || die 2 "--dest needs a value"; DEST="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$DEST" ] || die 2 "--dest DIR is required"
[ -f "$SOURCE/package.json" ] || die 2 "'$SOURCE' is not the tabagent project (no package.json)"
[ -f "$SOURCE/package-lock.json" ] || die 2 "'$SOURCE' has no package-lock.json (npm ci needs it)"
SOURCE="$(cd "$SOURCE" && pwd)"

# What never goes into a build: VCS data, local installs and outputs, test fixtures and reports.
EXCLUDES=(--exclude=./.git --exclude=./node_modules --exclude=./dist --exclude=./.fixtures --exclude=./coverage
  --exclude=./.ci-results.json --exclude='*.log')

run() {
  printf '+ %s\n' "$*" >&2
  [ "$DRY_RUN" -eq 1 ] || "$@"
}
# npm runs in DEST itself, so the project's .npmrc and package.json's allowScripts apply (as they do for `npm ci` in a
# checkout). npm 10 (Node.js 20's, the image's) ignores allowScripts and would run onnxruntime-node's install script,
# which downloads CUDA provider libraries from NuGet: the script skips that with this variable (cuda12 fetches them).
export ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}"
in_dest() {
  printf '+ (cd %s && %s)\n' "$DEST" "$*" >&2
  [ "$DRY_RUN" -eq 1 ] || (cd "$DEST" && "$@")
}

if [ "$DRY_RUN" -eq 0 ]; then
  command -v node >/dev/null 2>&1 || die 3 "node is not installed (Node.js >= 20.19 is required; deploy/docker/install-node.sh installs it)"
  command -v npm >/dev/null 2>&1 || die 3 "npm is not installed (it comes with Node.js)"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
    || die 3 "Node.js $(node --version) is too old: 20.19 or newer is required"
  if [ -e "$DEST" ] && [ -n "$(ls -A "$DEST")" ]; then die 2 "--dest '$DEST' exists and is not empty"; fi
fi

run mkdir -p "$DEST"
printf '+ tar -C %s %s -cf - . | tar -C %s -xf -\n' "$SOURCE" "${EXCLUDES[*]}" "$DEST" >&2
if [ "$DRY_RUN" -eq 0 ]; then
  tar -C "$SOURCE" "${EXCLUDES[@]}" -cf - . | tar -C "$DEST" --no-same-owner -xf -
fi
# The same commands CI runs (.ci/run): a clean install from the lock file, then the build.
in_dest npm ci --no-audit --no-fund --prefer-offline
in_dest npm run build
if [ "$DRY_RUN" -eq 0 ]; then
  [ -f "$DEST/dist/src/cli/main.js" ] || die 1 "the build finished but $DEST/dist/src/cli/main.js is missing"
  node "$DEST/bin/tabagent" --version >/dev/null || die 1 "$DEST/bin/tabagent --version failed"
fi
printf 'build-app: built %s\n' "$DEST" >&2
