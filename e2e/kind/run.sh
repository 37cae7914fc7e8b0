#!/usr/bin/env bash
# Maxine on kind, for machines with Docker: build both images, load them into a kind cluster,
# install the Helm chart, and smoke-test it (smoke-test.sh: apply examples/, register an instance with a
# ServiceAccount token, discover it through the operator). CI has no Docker: there shellcheck
# lints this file (test/shellcheck.test.ts), and smoke-test.sh runs against the e2e control plane
# (e2e/kind/smoke-test.e2e.test.ts). By hand:
#
#   bash e2e/kind/run.sh            # creates the kind cluster "maxine" if it is missing
#   KEEP=0 bash e2e/kind/run.sh     # and deletes it at the end
#
# Needs docker, kind and kubectl on the PATH; helm comes from e2e/helm/build.sh (Go >= 1.25)
# unless HELM names one. Env knobs: CLUSTER (default maxine), TAG (default dev), KEEP (default 1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=${CLUSTER:-maxine}
TAG=${TAG:-dev}
KEEP=${KEEP:-1}
NS=maxine-system
PORT=17710

log() { printf '[kind] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found in PATH"
done
HELM=${HELM:-$(bash "$ROOT/e2e/helm/build.sh" | tail -n1)}

log "building maxine/operator:$TAG and maxine/sidecar:$TAG"
docker build -f "$ROOT/Dockerfile.operator" -t "maxine/operator:$TAG" "$ROOT"
docker build -f "$ROOT/Dockerfile.sidecar" -t "maxine/sidecar:$TAG" "$ROOT"

if ! kind get clusters | grep -qx "$CLUSTER"; then
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 120s
fi
# kubectl and helm talk to this cluster only, whatever the current context is.
KUBECONFIG=$(mktemp)
export KUBECONFIG
PF=
cleanup() {
  if [[ -n $PF ]]; then kill "$PF" 2>/dev/null || true; fi
  rm -f "$KUBECONFIG"
  if [[ $KEEP == 0 ]]; then kind delete cluster --name "$CLUSTER"; fi
}
trap cleanup EXIT
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"

log "loading the images into $CLUSTER"
kind load docker-image --name "$CLUSTER" "maxine/operator:$TAG" "maxine/sidecar:$TAG"

log "helm upgrade --install maxine charts/maxine"
"$HELM" upgrade --install maxine "$ROOT/charts/maxine" \
  --namespace "$NS" --create-namespace --wait --timeout 5m \
  --set image.repository=maxine/operator --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set webhook.sidecarImage.repository=maxine/sidecar --set webhook.sidecarImage.tag="$TAG"

kubectl -n "$NS" port-forward svc/maxine-operator "$PORT:7710" >/dev/null &
PF=$!

log "smoke test: examples/, a registration and a discovery through the operator"
bash "$ROOT/e2e/kind/smoke-test.sh" "http://127.0.0.1:$PORT"
