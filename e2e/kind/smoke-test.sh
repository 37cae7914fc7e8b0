#!/usr/bin/env bash
# The smoke test of an installed Maxine, as run.sh runs it on kind: apply examples/, wait until
# the operator marks the shop's services Ready, register an instance of shop/web with the web
# ServiceAccount's token (examples/acls.yaml lets it) and discover it through the operator.
#
#   bash e2e/kind/smoke-test.sh OPERATOR_URL     # e.g. http://127.0.0.1:17710 (a port-forward)
#
# SMOKE_READY_TRIES (default 50): how many times /readyz is asked, 0.2 s apart, before going on.
#
# kubectl talks to the cluster KUBECONFIG names. e2e/kind/smoke-test.e2e.test.ts runs this script
# against the e2e control plane and an operator in kubernetes mode.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
URL=${1:?usage: smoke-test.sh OPERATOR_URL}

log() { printf '[smoke] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

kubectl apply -f "$ROOT/examples/" >&2
kubectl wait --for=condition=Ready msvc --all -n shop --timeout=120s >&2
kubectl -n shop create serviceaccount web --dry-run=client -o yaml | kubectl apply -f - >&2
TOKEN=$(kubectl -n shop create token web --audience maxine.io)

for _ in $(seq 1 "${SMOKE_READY_TRIES:-50}"); do
  curl -fsS "$URL/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

curl -fsS -XPOST "$URL/api/v1/instances" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"service":"web","namespace":"shop","host":"10.0.0.7","port":8080}' >/dev/null ||
  die "registering an instance of shop/web failed"
answer=$(curl -sS "$URL/api/v1/discover/shop/web" -H "authorization: Bearer $TOKEN")
case $answer in
  *'"host":"10.0.0.7"'*) log "ok: discovered shop/web through the operator: $answer" ;;
  *) die "discovery of shop/web answered: $answer" ;;
esac
