#!/usr/bin/env bash
# Creates the transformers sidecar's Python venv in the runtime image (run as root in the Dockerfile's runtime
# stage, after python3 and python3-venv are installed): native/setup-python.sh, the script CI and
# `tabagent setup python` run, with the venv under a fixed data folder that the daemon finds via TABAGENT_DATA_DIR.
# Then checks that the sidecar's modules import, and makes the folder readable (not writable) by everyone.
#
#   deploy/docker/install-python.sh [--app DIR] [--data-dir DIR] [--cuda | --cpu] [--dry-run]
#
# Defaults: /opt/tabagent, /opt/tabagent-data, --cuda (PyPI's Linux torch: the CUDA build).
set -euo pipefail

APP="/opt/tabagent"
DATA_DIR="/opt/tabagent-data"
VARIANT="--cuda"
DRY_RUN=0
die() {
  printf 'install-python: error: %s\n' "$2" >&2
  exit "$1"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --app) [ $# -ge 2 ] || die 2 "--app needs a value"; APP="$2"; shift 2 ;;
    --data-dir) [ $# -ge 2 ] || die 2 "--data-dir needs a value"; DATA_DIR="$2"; shift 2 ;;
    --cuda | --cpu) VARIANT="$1"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done
[ -x "$APP/native/setup-python.sh" ] || die 2 "$APP/native/setup-python.sh not found (is --app the installed tabagent?)"

run() {
  printf '+ %s\n' "$*" >&2
  [ "$DRY_RUN" -eq 1 ] || "$@"
}

if [ "$DRY_RUN" -eq 1 ]; then
  # setup-python.sh's own dry run installs nothing: it prints the venv folder, the key and the pip commands.
  printf '+ %s\n' "$APP/native/setup-python.sh $VARIANT --data-dir $DATA_DIR --dry-run" >&2
  exec "$APP/native/setup-python.sh" "$VARIANT" --data-dir "$DATA_DIR" --dry-run
fi
venv="$("$APP/native/setup-python.sh" "$VARIANT" --data-dir "$DATA_DIR" --print-path)"
run env PYTHONPATH="$APP/native/python" "$venv/bin/python" -c 'import tabagent_sidecar.server, tabagent_sidecar.generator, tabagent_sidecar.embedder'
# pip's cache is not needed at runtime; the venv must not be writable by the daemon's user.
run rm -rf /root/.cache/pip
run chmod -R a+rX,go-w "$DATA_DIR"
printf '%s\n' "$venv"
