#!/usr/bin/env bash
# Maxine on kind, for machines with Docker: build both images, load them into a kind cluster,
# install the Helm chart, and smoke-test it (apply examples/, register an instance with a
# ServiceAccount token, discover it through the operator). CI has no Docker: there a test lints
# this file (test/shellcheck.test.ts) and nothing runs it. By hand:
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
CONTEXT="kind-$CLUSTER"
k() { kubectl --context "$CONTEXT" "$@"; }
if [[ $KEEP == 0 ]]; then
  trap 'kind delete cluster --name "$CLUSTER"' EXIT
fi

log "loading the images into $CLUSTER"
kind load docker-image --name "$CLUSTER" "maxine/operator:$TAG" "maxine/sidecar:$TAG"

log "helm upgrade --install maxine charts/maxine"
"$HELM" upgrade --install maxine "$ROOT/charts/maxine" --kube-context "$CONTEXT" \
  --namespace "$NS" --create-namespace --wait --timeout 5m \
  --set image.repository=maxine/operator --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set webhook.sidecarImage.repository=maxine/sidecar --set webhook.sidecarImage.tag="$TAG"

log "smoke test: examples/, a registration and a discovery through the operator"
k apply -f "$ROOT/examples/"
k wait --for=condition=Ready msvc --all -n shop --timeout=120s
k -n shop create serviceaccount web --dry-run=client -o yaml | k apply -f -
TOKEN=$(k -n shop create token web --audience maxine.io)

k -n "$NS" port-forward svc/maxine-operator "$PORT:7710" >/dev/null &
PF=$!
if [[ $KEEP == 0 ]]; then
  trap 'kill "$PF" 2>/dev/null || true; kind delete cluster --name "$CLUSTER"' EXIT
else
  trap 'kill "$PF" 2>/dev/null || true' EXIT
fi
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

curl -fsS -XPOST "http://127.0.0.1:$PORT/api/v1/instances" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"service":"web","namespace":"shop","host":"10.0.0.7","port":8080}' >/dev/null
answer=$(curl -fsS "http://127.0.0.1:$PORT/api/v1/discover/shop/web" -H "authorization: Bearer $TOKEN")
case $answer in
  *'"host":"10.0.0.7"'*) log "ok: discovered shop/web through the operator: $answer" ;;
  *) die "discovery of shop/web answered: $answer" ;;
esac
