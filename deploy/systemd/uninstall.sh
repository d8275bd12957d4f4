#!/usr/bin/env bash
# Removes what deploy/systemd/install.sh installed. Idempotent; no prompts.
#
#   sudo deploy/systemd/uninstall.sh [--prefix DIR] [--purge] [--dry-run]
#
#   --prefix DIR  where the daemon was installed (default /opt/tabagent)
#   --purge       also remove /etc/tabagent (config and API keys), /var/lib/tabagent, /var/cache/tabagent (the
#                 llama-server and Hugging Face caches), unit drop-ins, and the tabagent user and group
#   --dry-run     print every step; change nothing (no root needed)
#
# Always: stops and disables tabagent.service, removes its unit file and --prefix. The models folder is never
# removed (it holds your models): delete it yourself if you want it gone.
set -euo pipefail

PREFIX="/opt/tabagent"
PURGE=0
DRY_RUN=0
SERVICE_USER="tabagent"
UNIT_PATH="/etc/systemd/system/tabagent.service"

die() {
  printf 'uninstall: error: %s\n' "$2" >&2
  exit "$1"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die 2 "--prefix needs a value"; PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --purge) PURGE=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done
case "$PREFIX" in /?*) ;; *) die 2 "--prefix must be an absolute path, not '$PREFIX'" ;; esac
PREFIX="${PREFIX%/}"
if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die 2 "run as root (sudo $0 ...), or with --dry-run to see what it would do"
fi

run() {
  printf '+ %s\n' "$*"
  [ "$DRY_RUN" -eq 1 ] || "$@"
}
[ "$DRY_RUN" -eq 0 ] || printf '# dry run: nothing is changed\n'

# This file may be inside --prefix: removing it while it runs is fine, bash keeps reading the open file.
if [ -d /run/systemd/system ]; then
  if systemctl list-unit-files tabagent.service >/dev/null 2>&1; then
    # Stopping waits for the daemon's graceful shutdown (up to the unit's TimeoutStopSec).
    run systemctl disable --now tabagent.service || true
  fi
else
  printf '# systemd is not running here: nothing to stop\n'
fi
if [ -e "$UNIT_PATH" ]; then run rm -f "$UNIT_PATH"; fi
if [ "$PURGE" -eq 1 ] && [ -d "$UNIT_PATH.d" ]; then run rm -rf "$UNIT_PATH.d"; fi
if [ -d /run/systemd/system ]; then
  run systemctl daemon-reload
  run systemctl reset-failed tabagent.service 2>/dev/null || true
fi

if [ -e "$PREFIX" ]; then
  if [ -f "$PREFIX/bin/tabagent" ] && grep -q '"name": *"tabagent"' "$PREFIX/package.json" 2>/dev/null; then
    run rm -rf "$PREFIX" "$PREFIX.new" "$PREFIX.old"
  else
    die 2 "'$PREFIX' does not look like a tabagent install (no bin/tabagent); not removing it"
  fi
fi

if [ "$PURGE" -eq 1 ]; then
  for dir in /etc/tabagent /var/lib/tabagent /var/cache/tabagent; do
    if [ -e "$dir" ]; then run rm -rf "$dir"; fi
  done
  if getent passwd "$SERVICE_USER" >/dev/null 2>&1; then run userdel "$SERVICE_USER"; fi
  if getent group "$SERVICE_USER" >/dev/null 2>&1; then run groupdel "$SERVICE_USER"; fi
else
  printf '# kept: /etc/tabagent, /var/lib/tabagent, /var/cache/tabagent and the %s user (--purge removes them)\n' "$SERVICE_USER"
fi
printf '# the models folder is never removed\n'
printf 'tabagent %s.\n' "$([ "$DRY_RUN" -eq 1 ] && echo "would be uninstalled" || echo "is uninstalled")"
