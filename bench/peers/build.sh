#!/usr/bin/env bash
# Build (or find in the cache) every peer of `npm run bench` (bench/peers.js):
# etcd from the e2e control plane's build, Consul from bench/peers/consul.
# A peer that fails to build is reported and left out (the bench then skips it
# with the reason); the script fails only when none is available.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
log() { printf '[peers/build] %s\n' "$*" >&2; }

ok=0
if "$ROOT/e2e/controlplane/build.sh" >/dev/null; then
  ok=$((ok + 1))
else
  log "etcd (e2e/controlplane/build.sh) did not build: the bench will skip it"
fi
if "$HERE/consul/build.sh" >/dev/null; then
  ok=$((ok + 1))
else
  log "consul (bench/peers/consul/build.sh) did not build: the bench will skip it"
fi
[[ $ok -gt 0 ]] || { log "ERROR: no peer could be built"; exit 1; }
