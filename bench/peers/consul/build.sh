#!/usr/bin/env bash
# Build HashiCorp Consul, the peer that `npm run bench` measures beside Maxine
# (bench/peers.js, decision 0028), from the Go module in this directory into a
# versioned cache directory outside the repo:
#
#   ${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}/consul/<version>/bin/consul
#
# Only an MPL-2.0 Consul (<= v1.16; from v1.17 on it is under the BSL) is built,
# and never with the consul/envoyextensions or consul/troubleshoot modules
# (v1.14.x, the last line that does not require them): the script refuses a
# go.mod that says otherwise.
#
# If the binary is already there it exits at once. The last line of stdout is
# always the binary's path, so callers can do:
#   CONSUL=$(bench/peers/consul/build.sh | tail -n1)
# All progress and compiler output goes to stderr. Safe for CI (no prompts, no
# stdin), idempotent, and serialised with flock against concurrent runs. The Go
# module cache stays where `go env GOMODCACHE` says (outside the repo).
#
# Env knobs:
#   MAXINE_CACHE_DIR   cache root (default $HOME/.cache/maxine)
#   BUILD_PARALLEL     go build -p value (default 2: the machines have 2 cores)
#   FORCE_REBUILD=1    rebuild even if the binary exists
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODULE=github.com/hashicorp/consul

log() { printf '[consul/build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Version of a required module, read from go.mod (no network, no module graph).
modver() {
  awk -v m="$1" '
    { sub(/^[ \t]*require[ \t]+/, "") ; sub(/^[ \t]+/, "") }
    $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }
  ' "$2"
}

VERSION=$(modver "$MODULE" "$HERE/go.mod")
[[ -n $VERSION ]] || die "could not read the $MODULE version from $HERE/go.mod"

# Licence guard (decision 0028): MPL-2.0 releases only, without the two modules
# the project's tool list marks not-to-use.
MINOR=$(echo "$VERSION" | cut -d. -f2)
[[ $VERSION == v1.* && $MINOR -le 16 ]] ||
  die "consul $VERSION is not an MPL-2.0 release (v1.17 and later are under the BSL)"
if grep -Eq "$MODULE/(envoyextensions|troubleshoot)[[:space:]]" "$HERE/go.mod" "$HERE/go.sum"; then
  die "go.mod/go.sum name consul/envoyextensions or consul/troubleshoot (not to use)"
fi

CACHE_ROOT=${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}
VDIR="$CACHE_ROOT/consul/$VERSION"
BIN="$VDIR/bin"
OUT="$BIN/consul"

if [[ ${FORCE_REBUILD:-} != 1 && -x $OUT ]]; then
  log "up to date: $OUT"
  echo "$OUT"
  exit 0
fi

mkdir -p "$VDIR"
# Serialise concurrent builds of the same version (e.g. parallel CI jobs).
exec 9>"$VDIR/.lock"
if command -v flock >/dev/null 2>&1; then
  log "waiting for build lock $VDIR/.lock"
  flock 9
fi
# Someone else may have finished the build while we waited.
if [[ ${FORCE_REBUILD:-} != 1 && -x $OUT ]]; then
  log "up to date: $OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "go not found in PATH (need Go >= 1.20)"
GOV=$(go env GOVERSION) # e.g. go1.26.8

# Build settings. GOTOOLCHAIN=local: never download a toolchain (offline CI);
# GOFLAGS fixed so a caller's GOFLAGS (e.g. -mod=mod) can't change go.sum.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
P=${BUILD_PARALLEL:-2}
NICE=(nice -n 10)
command -v nice >/dev/null 2>&1 || NICE=()

TMP="$VDIR/bin.tmp"
rm -rf "$TMP"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

log "building consul $VERSION with $GOV (-p $P) into $OUT"
start=$(date +%s)
# Consul's main package is its module root (it would be named "consul" anyway).
(cd "$HERE" && "${NICE[@]}" go build -p "$P" -ldflags "-s -w" -o "$TMP/consul" "$MODULE") </dev/null >&2
[[ -x $TMP/consul ]] || die "missing $TMP/consul after build"

{
  echo "CONSUL_VERSION=$VERSION"
  echo "GO_VERSION=$GOV"
  echo "BUILD_SECONDS=$(($(date +%s) - start))"
} >"$TMP/BUILDINFO"

rm -rf "$BIN"
mv "$TMP" "$BIN"
trap - EXIT
log "built in $(($(date +%s) - start))s: $(ls -l "$OUT")"
echo "$OUT"
