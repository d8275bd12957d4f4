#!/usr/bin/env bash
# Installs an official Node.js release (the linux tarball from nodejs.org) into PREFIX, checked against the
# release's SHASUMS256.txt, and links node/npm/npx into LINK_DIR. Used by the Dockerfile's builder stage (the
# runtime stage copies PREFIX from there); test/deploy/dockerScripts.test.ts runs it against a local fake
# release server.
#
#   deploy/docker/install-node.sh [--version V] [--prefix DIR] [--link-dir DIR] [--dist-url URL] [--dry-run]
#
# Defaults: --version $NODE_VERSION or 20.20.2, --prefix /opt/node, --link-dir /usr/local/bin ("" = no links),
# --dist-url $NODE_DIST_URL or https://nodejs.org/dist. Needs curl or wget, tar, xz and sha256sum.
set -euo pipefail

VERSION="${NODE_VERSION:-20.20.2}"
PREFIX="/opt/node"
LINK_DIR="/usr/local/bin"
DIST_URL="${NODE_DIST_URL:-https://nodejs.org/dist}"
DRY_RUN=0

die() {
  printf 'install-node: error: %s\n' "$2" >&2
  exit "$1"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --version) [ $# -ge 2 ] || die 2 "--version needs a value"; VERSION="$2"; shift 2 ;;
    --prefix) [ $# -ge 2 ] || die 2 "--prefix needs a value"; PREFIX="$2"; shift 2 ;;
    --link-dir) [ $# -ge 2 ] || die 2 "--link-dir needs a value"; LINK_DIR="$2"; shift 2 ;;
    --dist-url) [ $# -ge 2 ] || die 2 "--dist-url needs a value"; DIST_URL="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done
VERSION="${VERSION#v}"
case "$VERSION" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) die 2 "--version must look like 20.20.2, not '$VERSION'" ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) ARCH="x64" ;;
  aarch64 | arm64) ARCH="arm64" ;;
  *) die 2 "no Node.js tarball for this machine ($(uname -m))" ;;
esac
NAME="node-v$VERSION-linux-$ARCH"
BASE="${DIST_URL%/}/v$VERSION"

printf 'install-node: %s from %s into %s\n' "$NAME" "$BASE" "$PREFIX" >&2
if [ "$DRY_RUN" -eq 1 ]; then
  printf '+ download %s/SHASUMS256.txt and %s/%s.tar.xz\n' "$BASE" "$BASE" "$NAME" >&2
  printf '+ sha256sum -c (the %s.tar.xz line)\n' "$NAME" >&2
  printf '+ tar -xJf %s.tar.xz -C %s --strip-components=1\n' "$NAME" "$PREFIX" >&2
  [ -z "$LINK_DIR" ] || printf '+ ln -sf %s/bin/{node,npm,npx} %s/\n' "$PREFIX" "$LINK_DIR" >&2
  exit 0
fi

for tool in tar xz sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die 3 "$tool is missing (Debian/Ubuntu: apt-get install -y xz-utils coreutils tar)"
done
if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 3 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -O "$2" "$1"; }
else
  die 3 "curl or wget is needed (Debian/Ubuntu: apt-get install -y curl ca-certificates)"
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fetch "$BASE/SHASUMS256.txt" "$TMP/SHASUMS256.txt" || die 1 "cannot download $BASE/SHASUMS256.txt"
fetch "$BASE/$NAME.tar.xz" "$TMP/$NAME.tar.xz" || die 1 "cannot download $BASE/$NAME.tar.xz"
grep "  $NAME.tar.xz\$" "$TMP/SHASUMS256.txt" >"$TMP/expected" || die 1 "SHASUMS256.txt has no line for $NAME.tar.xz"
(cd "$TMP" && sha256sum -c --status expected) || die 1 "checksum mismatch for $NAME.tar.xz"

mkdir -p "$PREFIX"
tar -xJf "$TMP/$NAME.tar.xz" -C "$PREFIX" --strip-components=1 --no-same-owner
if [ -n "$LINK_DIR" ]; then
  mkdir -p "$LINK_DIR"
  for bin in node npm npx; do
    if [ -e "$PREFIX/bin/$bin" ]; then ln -sf "$PREFIX/bin/$bin" "$LINK_DIR/$bin"; fi
  done
fi
got="$("$PREFIX/bin/node" --version)"
[ "$got" = "v$VERSION" ] || die 1 "installed node reports $got, expected v$VERSION"
printf 'install-node: node %s installed in %s\n' "$got" "$PREFIX" >&2
