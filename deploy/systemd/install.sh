#!/usr/bin/env bash
# Installs tabagent as a systemd service. Idempotent: run it again to upgrade; config files are never overwritten.
#
#   sudo deploy/systemd/install.sh [--prefix DIR] [--models-dir DIR] [--source DIR] [--skip-build] [--dry-run]
#
#   --prefix DIR      where the built daemon goes (default /opt/tabagent)
#   --models-dir DIR  the models folder: created if missing, written into the default config and the unit's
#                     ReadWritePaths= (default /srv/tabagent/models)
#   --source DIR      the project checkout to build (default: the one this script is in)
#   --skip-build      keep the daemon already in --prefix; only (re)install the user, config, folders and unit
#   --dry-run         print every step and the unit it would install; change nothing (no root needed)
#
# Steps: the system user and group `tabagent` (no login, home /var/lib/tabagent); a clean build in a staging
# folder next to --prefix with the scripts CI and the Docker image use (deploy/docker/build-app.sh: npm ci + npm run
# build, then deploy/docker/prune-runtime.sh: npm prune --omit=dev), swapped into --prefix only once it has
# succeeded, owned by root; /etc/tabagent/tabagent.json and /etc/tabagent/tabagent.env when missing; the models
# folder; /etc/systemd/system/tabagent.service; `systemctl daemon-reload`. It never starts or restarts the service.
# Needs: bash, node >= 20.19 and npm on systemd's PATH, useradd/groupadd, tar. No prompts (safe with no stdin).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$(cd "$SCRIPT_DIR/../.." && pwd)"
PREFIX="/opt/tabagent"
MODELS_DIR="/srv/tabagent/models"
SKIP_BUILD=0
DRY_RUN=0

SERVICE_USER="tabagent"
CONFIG_DIR="/etc/tabagent"
UNIT_PATH="/etc/systemd/system/tabagent.service"
STATE_DIR="/var/lib/tabagent"
# The PATH systemd gives services: ExecStart's /usr/bin/env must find node there.
SYSTEMD_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

die() {
  printf 'install: error: %s\n' "$2" >&2
  exit "$1"
}
warn() { printf 'install: warning: %s\n' "$*" >&2; }
usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die 2 "--prefix needs a value"; PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --models-dir) [ $# -ge 2 ] || die 2 "--models-dir needs a value"; MODELS_DIR="$2"; shift 2 ;;
    --models-dir=*) MODELS_DIR="${1#*=}"; shift ;;
    --source) [ $# -ge 2 ] || die 2 "--source needs a value"; SOURCE="$2"; shift 2 ;;
    --source=*) SOURCE="${1#*=}"; shift ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done

# ---------------------------------------------------------------- checks
check_abs_dir_arg() {
  case "$2" in
    /*) ;;
    *) die 2 "$1 must be an absolute path, not '$2'" ;;
  esac
  case "$2" in
    *[[:space:]]* | *'#'* | *'%'* | *'&'* | *\\*) die 2 "$1 '$2': spaces, '#', '%', '&' and '\\' are not supported here" ;;
  esac
  case "${2%/}" in
    '' | /bin | /boot | /dev | /etc | /home | /lib | /lib64 | /media | /mnt | /opt | /proc | /root | /run | /sbin | /srv | /sys | /tmp \
      | /usr | /usr/bin | /usr/lib | /usr/lib64 | /usr/local | /usr/local/bin | /usr/local/lib | /usr/sbin | /usr/share \
      | /var | /var/cache | /var/lib | /var/tmp)
      die 2 "$1 '$2' is a system folder; pick a folder of its own (e.g. /opt/tabagent)" ;;
  esac
}
check_abs_dir_arg --prefix "$PREFIX"
check_abs_dir_arg --models-dir "$MODELS_DIR"
PREFIX="${PREFIX%/}"
MODELS_DIR="${MODELS_DIR%/}"
if [ ! -f "$SOURCE/package.json" ] || [ ! -f "$SOURCE/deploy/systemd/tabagent.service" ]; then
  die 2 "--source '$SOURCE' is not a tabagent checkout (no package.json / deploy/systemd/tabagent.service)"
fi
SOURCE="$(cd "$SOURCE" && pwd)"

if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die 2 "run as root (sudo $0 ...), or with --dry-run to see what it would do"
fi

NODE_BIN="$(PATH="$SYSTEMD_PATH" command -v node || true)"
if [ -z "$NODE_BIN" ]; then
  msg="node is not on systemd's PATH ($SYSTEMD_PATH): install Node.js >= 20.19 system-wide (e.g. deploy/docker/install-node.sh, which links /usr/local/bin/node)"
  if [ "$DRY_RUN" -eq 1 ]; then warn "$msg"; else die 3 "$msg"; fi
elif ! "$NODE_BIN" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  msg="$NODE_BIN is Node.js $("$NODE_BIN" --version); tabagent needs 20.19 or newer"
  if [ "$DRY_RUN" -eq 1 ]; then warn "$msg"; else die 3 "$msg"; fi
fi
if [ "$SKIP_BUILD" -eq 0 ] && ! PATH="$SYSTEMD_PATH:$PATH" command -v npm >/dev/null 2>&1; then
  if [ "$DRY_RUN" -eq 1 ]; then warn "npm is missing (it comes with Node.js)"; else die 3 "npm is missing (it comes with Node.js)"; fi
fi

# An existing --prefix must be an earlier install: never replace an unrelated folder.
is_tabagent_tree() { [ -f "$1/bin/tabagent" ] && grep -q '"name": *"tabagent"' "$1/package.json" 2>/dev/null; }
if [ -e "$PREFIX" ] && ! is_tabagent_tree "$PREFIX" && [ -n "$(ls -A "$PREFIX" 2>/dev/null)" ]; then
  die 2 "--prefix '$PREFIX' exists and is not a tabagent install; refusing to replace it"
fi
if [ "$SKIP_BUILD" -eq 1 ] && ! is_tabagent_tree "$PREFIX" && [ "$DRY_RUN" -eq 0 ]; then
  die 2 "--skip-build: there is no tabagent install in '$PREFIX' yet"
fi

# ---------------------------------------------------------------- helpers
quote() {
  local out="" a
  for a in "$@"; do
    case "$a" in
      '' | *[!A-Za-z0-9_./=:,+@%-]*) out="$out '${a//\'/\'\\\'\'}'" ;;
      *) out="$out $a" ;;
    esac
  done
  printf '%s' "${out# }"
}
run() {
  printf '+ %s\n' "$(quote "$@")"
  [ "$DRY_RUN" -eq 1 ] || "$@"
}
SYSTEMD_RUNNING=0
[ -d /run/systemd/system ] && SYSTEMD_RUNNING=1

render_unit() {
  sed -e "s#/opt/tabagent#$PREFIX#g" -e "s#/srv/tabagent/models#$MODELS_DIR#g" "$SOURCE/deploy/systemd/tabagent.service"
}
render_config() {
  sed -e "s#/srv/tabagent/models#$MODELS_DIR#g" "$SOURCE/deploy/systemd/tabagent.json"
}

TMP="$(mktemp -d)"
STAGE="$PREFIX.new"
OLD="$PREFIX.old"
cleanup() {
  rm -rf "$TMP"
  if [ "$DRY_RUN" -eq 0 ] && [ -e "$STAGE" ]; then rm -rf "$STAGE"; fi
}
trap cleanup EXIT

[ "$DRY_RUN" -eq 0 ] || printf '# dry run: nothing is changed\n'
printf '# tabagent: %s -> %s (models: %s)\n' "$SOURCE" "$PREFIX" "$MODELS_DIR"

# ---------------------------------------------------------------- user
printf '# system user and group %s\n' "$SERVICE_USER"
if ! getent group "$SERVICE_USER" >/dev/null 2>&1; then
  run groupadd --system "$SERVICE_USER"
fi
if ! getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
  run useradd --system --gid "$SERVICE_USER" --home-dir "$STATE_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "tabagent daemon" "$SERVICE_USER"
fi

# ---------------------------------------------------------------- the daemon
if [ "$SKIP_BUILD" -eq 0 ]; then
  printf '# build in %s (npm ci, npm run build, npm prune --omit=dev), then swap it into %s\n' "$STAGE" "$PREFIX"
  if [ -e "$STAGE" ]; then run rm -rf "$STAGE"; fi
  run mkdir -p "$(dirname "$PREFIX")"
  run "$SOURCE/deploy/docker/build-app.sh" --source "$SOURCE" --dest "$STAGE"
  if [ "$DRY_RUN" -eq 1 ]; then
    # What build-app.sh would run (its --dry-run changes nothing).
    "$SOURCE/deploy/docker/build-app.sh" --source "$SOURCE" --dest "$STAGE" --dry-run 2>&1 | sed 's/^/#   /'
  fi
  run "$SOURCE/deploy/docker/prune-runtime.sh" "$STAGE"
  # Code is root's: the service can read it, never change it.
  run chown -R root:root "$STAGE"
  run chmod -R u=rwX,go=rX "$STAGE"
  HAD_PREFIX=0
  if [ -e "$PREFIX" ] || [ -L "$PREFIX" ]; then
    HAD_PREFIX=1
    if [ -e "$OLD" ]; then run rm -rf "$OLD"; fi
    run mv "$PREFIX" "$OLD"
  fi
  run mv "$STAGE" "$PREFIX"
  if [ "$HAD_PREFIX" -eq 1 ]; then run rm -rf "$OLD"; fi
else
  printf '# --skip-build: keeping %s\n' "$PREFIX"
fi

# ---------------------------------------------------------------- config and folders
printf '# config in %s (existing files are kept)\n' "$CONFIG_DIR"
run install -d -m 0755 "$CONFIG_DIR"
if [ -e "$CONFIG_DIR/tabagent.json" ]; then
  printf '# keeping %s\n' "$CONFIG_DIR/tabagent.json"
else
  render_config >"$TMP/tabagent.json"
  run install -m 0644 -o root -g root "$TMP/tabagent.json" "$CONFIG_DIR/tabagent.json"
fi
if [ -e "$CONFIG_DIR/tabagent.env" ]; then
  printf '# keeping %s\n' "$CONFIG_DIR/tabagent.env"
else
  # It may hold API keys. systemd reads it as root before starting the daemon, so root alone may read it.
  run install -m 0600 -o root -g root "$SOURCE/deploy/systemd/tabagent.env" "$CONFIG_DIR/tabagent.env"
fi
if [ -d "$MODELS_DIR" ]; then
  printf '# keeping %s\n' "$MODELS_DIR"
else
  run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$MODELS_DIR"
fi

# ---------------------------------------------------------------- unit
printf '# unit %s\n' "$UNIT_PATH"
render_unit >"$TMP/tabagent.service"
if [ "$DRY_RUN" -eq 1 ]; then
  printf '# --- %s would be:\n' "$UNIT_PATH"
  grep -v '^#' "$TMP/tabagent.service" | grep -v '^$' | sed 's/^/#   /'
fi
run install -D -m 0644 -o root -g root "$TMP/tabagent.service" "$UNIT_PATH"
if [ "$SYSTEMD_RUNNING" -eq 1 ]; then
  run systemctl daemon-reload
else
  printf '# systemd is not running here (no /run/systemd/system): skipping systemctl daemon-reload\n'
fi

# ---------------------------------------------------------------- next steps
ACTIVE=0
if [ "$SYSTEMD_RUNNING" -eq 1 ] && systemctl is-active --quiet tabagent.service 2>/dev/null; then ACTIVE=1; fi
DONE="is installed"
[ "$DRY_RUN" -eq 0 ] || DONE="would be installed"
cat <<EOF

tabagent $DONE in $PREFIX.
  Models:   put GGUF files (or model folders) in $MODELS_DIR
  Config:   $CONFIG_DIR/tabagent.json (settings), $CONFIG_DIR/tabagent.env (TABAGENT_API_KEYS, HF_TOKEN, ...)
  Start:    systemctl enable --now tabagent
  Status:   systemctl status tabagent; curl http://127.0.0.1:8471/health
  Logs:     journalctl -u tabagent -f -o cat
  Remove:   $PREFIX/deploy/systemd/uninstall.sh [--purge]
EOF
if [ "$ACTIVE" -eq 1 ]; then
  printf '\nThe service is running the previous version: systemctl restart tabagent\n'
fi
