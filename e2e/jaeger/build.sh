#!/usr/bin/env bash
# Build the Jaeger v2 all-in-one binary (github.com/jaegertracing/jaeger/cmd/jaeger)
# that the tracing integration test exports spans to, from the Go module in this
# directory, into a versioned cache directory outside the repo:
#
#   ${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}/jaeger/<version>/jaeger
#
# If the binary is already there it exits at once. The last line of stdout is
# always the binary's path, so callers can do:  JAEGER=$(e2e/jaeger/build.sh | tail -n1)
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
MODULE=github.com/jaegertracing/jaeger

log() { printf '[jaeger/build] %s\n' "$*" >&2; }
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

CACHE_ROOT=${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}
VDIR="$CACHE_ROOT/jaeger/$VERSION"
OUT="$VDIR/jaeger"

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

command -v go >/dev/null 2>&1 || die "go not found in PATH (need Go >= 1.25)"
GOV=$(go env GOVERSION) # e.g. go1.26.8
if ! printf '%s\n' go1.25 "$GOV" | sort -V -C; then
  die "need Go >= 1.25 (jaeger $VERSION wants toolchain go1.25), found $GOV"
fi

# Build settings. GOTOOLCHAIN=local: never download a toolchain (offline CI);
# GOFLAGS fixed so a caller's GOFLAGS (e.g. -mod=mod) can't change go.sum.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
P=${BUILD_PARALLEL:-2}
NICE=(nice -n 10)
command -v nice >/dev/null 2>&1 || NICE=()

# Stamp the version the way upstream's scripts/makefiles/BuildInfo.mk does, so
# `jaeger version` reports it instead of an empty string.
LDFLAGS="-s -w -X $MODULE/internal/version.latestVersion=$VERSION"

TMP="$VDIR/jaeger.tmp"
rm -f "$TMP"
trap 'rm -f "$TMP"' EXIT

log "building jaeger $VERSION with $GOV (-p $P) into $OUT"
start=$(date +%s)
(cd "$HERE" && "${NICE[@]}" go build -p "$P" -ldflags "$LDFLAGS" -o "$TMP" "$MODULE/cmd/jaeger") </dev/null >&2
[[ -x $TMP ]] || die "missing $TMP after build"

{
  echo "JAEGER_VERSION=$VERSION"
  echo "GO_VERSION=$GOV"
  echo "BUILD_SECONDS=$(($(date +%s) - start))"
} >"$VDIR/BUILDINFO"

mv -f "$TMP" "$OUT"
trap - EXIT
log "built in $(($(date +%s) - start))s: $(ls -l "$OUT")"
echo "$OUT"
