#!/usr/bin/env bash
# Prepares the runtime image (run as root in the Dockerfile's runtime stage, after the COPY --from=builder lines):
#  - links /opt/node/bin/node into /usr/local/bin (so `node` and `/usr/bin/env node` work for every user);
#  - creates the unprivileged user and group the daemon runs as (no login shell, home = the cache volume);
#  - creates the volume folders (/models, /cache) owned by that user, so named volumes start writable;
#  - checks that the daemon and llama-server start (`--version`).
#
#   deploy/docker/setup-runtime.sh [--user NAME] [--uid N] [--models DIR] [--cache DIR] [--dry-run]
#
# Defaults: tabagent, 10001, /models, /cache. A fixed uid lets bind-mounted host folders be chowned to match.
set -euo pipefail

USER_NAME="tabagent"
USER_ID="10001"
MODELS="/models"
CACHE="/cache"
DRY_RUN=0
die() {
  printf 'setup-runtime: error: %s\n' "$2" >&2
  exit "$1"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --user) [ $# -ge 2 ] || die 2 "--user needs a value"; USER_NAME="$2"; shift 2 ;;
    --uid) [ $# -ge 2 ] || die 2 "--uid needs a value"; USER_ID="$2"; shift 2 ;;
    --models) [ $# -ge 2 ] || die 2 "--models needs a value"; MODELS="$2"; shift 2 ;;
    --cache) [ $# -ge 2 ] || die 2 "--cache needs a value"; CACHE="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done
case "$USER_ID" in '' | *[!0-9]*) die 2 "--uid must be a number, not '$USER_ID'" ;; esac
[ "$DRY_RUN" -eq 1 ] || [ "$(id -u)" -eq 0 ] || die 2 "run as root (or with --dry-run)"

run() {
  printf '+ %s\n' "$*" >&2
  [ "$DRY_RUN" -eq 1 ] || "$@"
}

for bin in node npm npx; do
  if [ -e "/opt/node/bin/$bin" ] || [ "$DRY_RUN" -eq 1 ]; then run ln -sf "/opt/node/bin/$bin" "/usr/local/bin/$bin"; fi
done
if [ "$DRY_RUN" -eq 1 ] || ! getent group "$USER_NAME" >/dev/null; then run groupadd --system --gid "$USER_ID" "$USER_NAME"; fi
if [ "$DRY_RUN" -eq 1 ] || ! getent passwd "$USER_NAME" >/dev/null; then
  run useradd --system --uid "$USER_ID" --gid "$USER_NAME" --home-dir "$CACHE" --no-create-home \
    --shell /usr/sbin/nologin --comment "tabagent daemon" "$USER_NAME"
fi
run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$MODELS" "$CACHE"
run node /opt/tabagent/bin/tabagent --version
if [ -x /opt/llama-server/bin/llama-server ] || [ "$DRY_RUN" -eq 1 ]; then
  # The CUDA build needs libcuda.so.1, which only the NVIDIA runtime provides when a container starts: at image
  # build time only check that every other library resolves.
  printf '+ ldd /opt/llama-server/bin/llama-server (everything but libcuda.so.1 must resolve)\n' >&2
  if [ "$DRY_RUN" -eq 0 ]; then
    missing="$(ldd /opt/llama-server/bin/llama-server | grep 'not found' | grep -v 'libcuda\.so\.1' || true)"
    [ -z "$missing" ] || die 1 "llama-server needs libraries the runtime image lacks: $missing"
  fi
fi
printf 'setup-runtime: ready (user %s, uid %s; volumes %s %s)\n' "$USER_NAME" "$USER_ID" "$MODELS" "$CACHE" >&2
