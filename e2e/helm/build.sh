#!/usr/bin/env bash
# Build the helm CLI (helm.sh/helm/v3/cmd/helm) that the chart tests run, from the
# Go module in this directory, into a versioned cache directory outside the repo:
#
#   ${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}/helm/<version>/bin/helm
#
# If the binary is already there it exits at once. The last line of stdout is
# always the binary's path, so callers can do:  HELM=$(e2e/helm/build.sh | tail -n1)
# All progress and compiler output goes to stderr. Safe for CI (no prompts, no
# stdin), idempotent, and serialised with flock against concurrent runs.
#
# go.mod pins every k8s.io module helm uses to the control plane's versions
# (e2e/controlplane/go.mod), so on a machine that has just built the control
# plane Go's build cache already holds most of those packages (decision 0029).
#
# Env knobs:
#   MAXINE_CACHE_DIR   cache root (default $HOME/.cache/maxine)
#   BUILD_PARALLEL     go build -p value (default 2: the machines have 2 cores)
#   FORCE_REBUILD=1    rebuild even if the binary exists
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GB_NAME=helm
# shellcheck source=e2e/lib/go-build.sh
source "$HERE/../lib/go-build.sh" # log, die, modver, gb_*
MODULE=helm.sh/helm/v3

VERSION=$(modver "$MODULE" "$HERE/go.mod")
K8S_VERSION=$(modver k8s.io/client-go "$HERE/go.mod") # v0.34.12
[[ -n $VERSION && -n $K8S_VERSION ]] ||
  die "could not read versions from $HERE/go.mod (helm='$VERSION' client-go='$K8S_VERSION')"

CACHE_ROOT=${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}
VDIR="$CACHE_ROOT/helm/$VERSION"
BIN="$VDIR/bin"
OUT="$BIN/helm"

# Exit at once if built; else take the build lock and check again.
gb_lock_or_exit_if_built "$VDIR" "$OUT" test -x "$OUT"

# Go >= 1.25, GOV, and the build settings (the same flags as the control plane's
# build, so their compiled packages are shared).
gb_go_env 1.25 "the control plane's k8s.io modules have 'go 1.25'"

# Stamp the versions the way upstream's Makefile does, so `helm version` reports
# $VERSION and the chart capabilities report the Kubernetes minor helm was built with.
K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
LDFLAGS="-s -w -X $MODULE/internal/version.version=$VERSION -X $MODULE/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  LDFLAGS+=" -X $MODULE/$pkg.k8sVersionMajor=1 -X $MODULE/$pkg.k8sVersionMinor=$K8S_MINOR"
done

gb_tmp_bin "$VDIR/bin.tmp"

log "building helm $VERSION (k8s.io $K8S_VERSION) with $GOV (-p $P) into $OUT"
start=$(date +%s)
gb_go_build "$HERE" -ldflags "$LDFLAGS" -o "$TMP/helm" "$MODULE/cmd/helm"
[[ -x $TMP/helm ]] || die "missing helm after build"

gb_buildinfo "$TMP/BUILDINFO" "$start" "HELM_VERSION=$VERSION" "K8S_MODULES_VERSION=$K8S_VERSION"

gb_install_bin "$BIN"
log "built in $(($(date +%s) - start))s: $(ls -l "$OUT")"
echo "$OUT"
