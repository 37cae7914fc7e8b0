# shellcheck shell=bash
# The steps the Go builders share (e2e/controlplane, e2e/helm, e2e/jaeger, bench/peers/consul):
# logging, reading a module version from go.mod, the cache check and build lock, the Go
# toolchain check and build settings, and the atomic install of a bin dir. Sourced by each
# build.sh after `set -euo pipefail`, with GB_NAME set to its log prefix ("[$GB_NAME/build]").

log() { printf '[%s/build] %s\n' "$GB_NAME" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Version of a required module, read from a go.mod (no network, no module graph).
modver() {
  awk -v m="$1" '
    { sub(/^[ \t]*require[ \t]+/, "") ; sub(/^[ \t]+/, "") }
    $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }
  ' "$2"
}

# gb_exit_if_built <path to print> <test command...>: unless FORCE_REBUILD=1, when the test
# passes the build is there: say so, print the path (the last line of stdout) and exit 0.
gb_exit_if_built() {
  local out=$1
  shift
  if [[ ${FORCE_REBUILD:-} != 1 ]] && "$@"; then
    log "up to date: $out"
    echo "$out"
    exit 0
  fi
}

# gb_lock_or_exit_if_built <version dir> <path to print> <test command...>: the cache check,
# then serialise concurrent builds of the same version (e.g. parallel CI jobs) with flock on
# fd 9, then the check again (someone else may have finished the build while we waited).
gb_lock_or_exit_if_built() {
  local vdir=$1
  shift
  gb_exit_if_built "$@"
  mkdir -p "$vdir"
  exec 9>"$vdir/.lock"
  if command -v flock >/dev/null 2>&1; then
    log "waiting for build lock $vdir/.lock"
    flock 9
  fi
  gb_exit_if_built "$@"
}

# gb_go_env <min Go, e.g. 1.25> [<why, for the error>]: needs go in PATH; sets GOV (e.g.
# go1.26.8); with a reason, dies on a Go older than the minimum. Then the build settings:
# GOTOOLCHAIN=local (never download a toolchain: offline CI), GOFLAGS fixed so a caller's
# GOFLAGS (e.g. -mod=mod) can't change go.sum; P (go build -p), NICE (a command prefix).
# shellcheck disable=SC2034 # GOV, P and NICE are for the sourcing script
gb_go_env() {
  command -v go >/dev/null 2>&1 || die "go not found in PATH (need Go >= $1)"
  GOV=$(go env GOVERSION)
  if [[ -n ${2:-} ]] && ! printf '%s\n' "go$1" "$GOV" | sort -V -C; then
    die "need Go >= $1 ($2), found $GOV"
  fi
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
  P=${BUILD_PARALLEL:-2}
  NICE=(nice -n 10)
  command -v nice >/dev/null 2>&1 || NICE=()
}

# gb_tmp_bin <dir>: TMP=<dir>, emptied, and removed if the script exits before gb_install_bin.
gb_tmp_bin() {
  TMP=$1
  rm -rf "$TMP"
  mkdir -p "$TMP"
  trap 'rm -rf "$TMP"' EXIT
}

# gb_install_bin <bin dir>: replace it with $TMP in one rename.
gb_install_bin() {
  rm -rf "$1"
  mv "$TMP" "$1"
  trap - EXIT
}

# gb_go_build <module dir> <go build args...>: go build in that module with the settings of
# gb_go_env (-p $P, niced, no stdin, output to stderr). The command line is the one each
# builder ran before, so Go's build cache and the binaries' cache paths stay valid.
gb_go_build() {
  local dir=$1
  shift
  (cd "$dir" && "${NICE[@]}" go build -p "$P" "$@") </dev/null >&2
}

# gb_buildinfo <file> <start, epoch seconds> <KEY=value...>: writes the BUILDINFO file: the
# given lines, then GO_VERSION and BUILD_SECONDS.
gb_buildinfo() {
  local file=$1 start=$2
  shift 2
  {
    printf '%s\n' "$@"
    echo "GO_VERSION=$GOV"
    echo "BUILD_SECONDS=$(($(date +%s) - start))"
  } >"$file"
}
