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
GB_NAME=jaeger
# shellcheck source=e2e/lib/go-build.sh
source "$HERE/../lib/go-build.sh" # log, die, modver, gb_*
MODULE=github.com/jaegertracing/jaeger

VERSION=$(modver "$MODULE" "$HERE/go.mod")
[[ -n $VERSION ]] || die "could not read the $MODULE version from $HERE/go.mod"

CACHE_ROOT=${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}
VDIR="$CACHE_ROOT/jaeger/$VERSION"
OUT="$VDIR/jaeger"

# Exit at once if built; else take the build lock and check again.
gb_lock_or_exit_if_built "$VDIR" "$OUT" test -x "$OUT"

# Go >= 1.25, GOV, and the build settings (GOTOOLCHAIN=local, fixed GOFLAGS, P, NICE).
gb_go_env 1.25 "jaeger $VERSION wants toolchain go1.25"

# Stamp the version the way upstream's scripts/makefiles/BuildInfo.mk does, so
# `jaeger version` reports it instead of an empty string.
LDFLAGS="-s -w -X $MODULE/internal/version.latestVersion=$VERSION"

TMP="$VDIR/jaeger.tmp"
rm -f "$TMP"
trap 'rm -f "$TMP"' EXIT

log "building jaeger $VERSION with $GOV (-p $P) into $OUT"
start=$(date +%s)
gb_go_build "$HERE" -ldflags "$LDFLAGS" -o "$TMP" "$MODULE/cmd/jaeger"
[[ -x $TMP ]] || die "missing $TMP after build"

gb_buildinfo "$VDIR/BUILDINFO" "$start" "JAEGER_VERSION=$VERSION"

mv -f "$TMP" "$OUT"
trap - EXIT
log "built in $(($(date +%s) - start))s: $(ls -l "$OUT")"
echo "$OUT"
