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
GB_NAME=consul
# shellcheck source=e2e/lib/go-build.sh
source "$HERE/../../../e2e/lib/go-build.sh" # log, die, modver, gb_*
MODULE=github.com/hashicorp/consul

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

# Exit at once if built; else take the build lock and check again.
gb_lock_or_exit_if_built "$VDIR" "$OUT" test -x "$OUT"

# Go (>= 1.20), GOV, and the build settings (GOTOOLCHAIN=local, fixed GOFLAGS, P, NICE).
gb_go_env 1.20

gb_tmp_bin "$VDIR/bin.tmp"

log "building consul $VERSION with $GOV (-p $P) into $OUT"
start=$(date +%s)
# Consul's main package is its module root (it would be named "consul" anyway).
gb_go_build "$HERE" -ldflags "-s -w" -o "$TMP/consul" "$MODULE"
[[ -x $TMP/consul ]] || die "missing $TMP/consul after build"

gb_buildinfo "$TMP/BUILDINFO" "$start" "CONSUL_VERSION=$VERSION"

gb_install_bin "$BIN"
log "built in $(($(date +%s) - start))s: $(ls -l "$OUT")"
echo "$OUT"
