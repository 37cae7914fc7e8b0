#!/usr/bin/env bash
# Build the e2e control-plane binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok) from the Go modules in this directory
# into a versioned cache directory outside the repo:
#
#   ${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}/controlplane/<k8s>-<etcd>-<kwok>/bin/
#
# If every binary is already there it exits at once. The last line of stdout
# is always the bin dir, so callers can do:  BIN=$(e2e/controlplane/build.sh | tail -n1)
# All progress and compiler output goes to stderr. Safe for CI (no prompts,
# no stdin), idempotent, and serialised with flock against concurrent runs.
#
# Env knobs:
#   MAXINE_CACHE_DIR   cache root (default $HOME/.cache/maxine)
#   BUILD_PARALLEL     go build -p value (default 2: the machines have 2 cores)
#   FORCE_REBUILD=1    rebuild even if the binaries exist
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GB_NAME=controlplane
# shellcheck source=e2e/lib/go-build.sh
source "$HERE/../lib/go-build.sh" # log, die, modver, gb_*
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)

K8S_VERSION=$(modver k8s.io/kubernetes "$HERE/go.mod")
ETCD_VERSION=$(modver go.etcd.io/etcd/server/v3 "$HERE/go.mod")
KWOK_VERSION=$(modver sigs.k8s.io/kwok "$HERE/kwok/go.mod")
[[ -n $K8S_VERSION && -n $ETCD_VERSION && -n $KWOK_VERSION ]] ||
  die "could not read versions from go.mod files (k8s='$K8S_VERSION' etcd='$ETCD_VERSION' kwok='$KWOK_VERSION')"

CACHE_ROOT=${MAXINE_CACHE_DIR:-$HOME/.cache/maxine}
VDIR="$CACHE_ROOT/controlplane/${K8S_VERSION}-${ETCD_VERSION}-${KWOK_VERSION}"
BIN="$VDIR/bin"

have_all() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x $BIN/$b ]] || return 1; done
}

# Exit at once if built; else take the build lock and check again.
gb_lock_or_exit_if_built "$VDIR" "$BIN" have_all

# Go >= 1.25, GOV, and the build settings (GOTOOLCHAIN=local, fixed GOFLAGS, P, NICE).
gb_go_env 1.25 "k8s.io/kubernetes $K8S_VERSION has 'go 1.25.0'"

K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
# Stamp the version the same way upstream's hack/lib/version.sh does, so
# `kube-apiserver --version`, /version and kubectl report v1.34.x instead of
# "v0.0.0-master+$Format:%H$".
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR -X $pkg.gitTreeState=clean"
done

gb_tmp_bin "$VDIR/bin.tmp"

log "building k8s $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION with $GOV (-p $P) into $BIN"
start=$(date +%s)

step() { # step <label> <module dir> <go build args...>
  local label=$1 dir=$2 t0
  shift 2
  t0=$(date +%s)
  log "go build $label ..."
  gb_go_build "$dir" "$@"
  log "  $label done in $(($(date +%s) - t0))s"
}

# One invocation for the four k8s programs: shared packages compile once.
step "kube-apiserver kube-controller-manager kube-scheduler kubectl" "$HERE" \
  -ldflags "$K8S_LDFLAGS" -o "$TMP/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl
# etcd's main package is the module root of go.etcd.io/etcd/server/v3 (it would
# be named "server" without -o). `go install ...@v3.6.x` does not work because
# etcd's server/go.mod has relative replaces; building it from our module does.
step etcd "$HERE" -ldflags "-s -w" -o "$TMP/etcd" go.etcd.io/etcd/server/v3
step kwok "$HERE/kwok" -ldflags "-s -w" -o "$TMP/kwok" sigs.k8s.io/kwok/cmd/kwok

for b in "${BINARIES[@]}"; do [[ -x $TMP/$b ]] || die "missing $b after build"; done

gb_buildinfo "$TMP/BUILDINFO" "$start" \
  "K8S_VERSION=$K8S_VERSION" "ETCD_VERSION=$ETCD_VERSION" "KWOK_VERSION=$KWOK_VERSION"

gb_install_bin "$BIN"
log "built in $(($(date +%s) - start))s:"
(cd "$BIN" && ls -l "${BINARIES[@]}") >&2
echo "$BIN"
