#!/usr/bin/env bash
# Turns a tree built by deploy/docker/build-app.sh into what runs in production:
#  - `npm prune --omit=dev`: devDependencies (typescript, vitest, tsx, openai, ...) are removed;
#  - node-llama-cpp prebuilt binaries for other CPU architectures are removed (about 30 MB on x64);
#  - top-level entries other than the runtime's (bin, dist, node_modules, package*.json, docs, native, deploy,
#    README.md, LICENSE) are removed: sources (but the web page's assets in src/server/web), tests, benchmarks'
#    sources, tsconfig files.
#
#   deploy/docker/prune-runtime.sh [--dry-run] DIR
#
# Run it after anything that needs devDependencies or node-llama-cpp's llama.cpp bundle (the llama-server build):
# the bundle stays, but typescript does not.
set -euo pipefail

DIR=""
DRY_RUN=0
die() {
  printf 'prune-runtime: error: %s\n' "$2" >&2
  exit "$1"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die 2 "unknown option '$1' (see --help)" ;;
    *) [ -z "$DIR" ] || die 2 "only one DIR"; DIR="$1"; shift ;;
  esac
done
[ -n "$DIR" ] || die 2 "DIR is required (the folder build-app.sh built)"
[ -f "$DIR/dist/src/cli/main.js" ] || die 2 "'$DIR' is not a built tabagent tree (run deploy/docker/build-app.sh first)"
DIR="$(cd "$DIR" && pwd)"

KEEP=" bin dist node_modules package.json package-lock.json README.md LICENSE docs native deploy "

run() {
  printf '+ %s\n' "$*" >&2
  [ "$DRY_RUN" -eq 1 ] || "$@"
}

printf '+ (cd %s && npm prune --omit=dev --no-audit --no-fund)\n' "$DIR" >&2
[ "$DRY_RUN" -eq 1 ] || (cd "$DIR" && npm prune --omit=dev --no-audit --no-fund)

# node-llama-cpp's optional dependencies include prebuilt binaries for every Linux CPU architecture; only this
# machine's are ever loaded.
ARCH="$(node -p process.arch)"
for pkg in "$DIR"/node_modules/@node-llama-cpp/*; do
  [ -d "$pkg" ] || continue
  name="$(basename "$pkg")"
  case "$name" in
    linux-"$ARCH" | linux-"$ARCH"-*) ;;
    linux-* | mac-* | win-*) run rm -rf "$pkg" ;;
  esac
done

for entry in "$DIR"/* "$DIR"/.[!.]*; do
  [ -e "$entry" ] || continue
  name="$(basename "$entry")"
  case "$KEEP" in *" $name "*) continue ;; esac
  if [ "$name" = src ]; then
    # The daemon serves its web page from these files (src/server/web/*.html, .js, .css): they stay, the rest goes.
    for sub in "$entry"/*; do [ "$(basename "$sub")" = server ] || run rm -rf "$sub"; done
    for sub in "$entry"/server/*; do [ "$(basename "$sub")" = web ] || run rm -rf "$sub"; done
    for sub in "$entry"/server/web/*.ts; do [ -e "$sub" ] && run rm -f "$sub"; done
    continue
  fi
  run rm -rf "$entry"
done
if [ "$DRY_RUN" -eq 0 ]; then
  node "$DIR/bin/tabagent" --version >/dev/null || die 1 "$DIR/bin/tabagent --version fails after pruning"
fi
printf 'prune-runtime: pruned %s\n' "$DIR" >&2
