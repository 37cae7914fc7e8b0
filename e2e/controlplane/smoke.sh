#!/usr/bin/env bash
# Smoke check for the e2e control plane, and the reference for the TypeScript
# test helper: every flag and every certificate below is what the helper should
# reproduce.
#
#   e2e/controlplane/smoke.sh          # builds (or reuses) the binaries, then runs
#   BIN=/path/to/bin smoke.sh          # use an existing bin dir, skip build.sh
#   KEEP_WORKDIR=1 smoke.sh            # keep the temp dir (certs, kubeconfigs, logs)
#
# Phases:
#   1. PKI with openssl: CA, apiserver serving cert, admin client cert,
#      ServiceAccount signing key, static token file.
#   2. etcd, then kube-apiserver; wait for /readyz; `kubectl get ns`.
#   3. kube-controller-manager, kube-scheduler, kwok + one fake Node; a
#      Deployment with 2 replicas must reach 2 Running+Ready pods with pod IPs,
#      and a Service over them must get an EndpointSlice with 2 ready endpoints.
# Everything listens on 127.0.0.1 only; all state lives in a mktemp dir that
# the EXIT trap removes after stopping every process this script started.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[smoke %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

if [[ -z ${BIN:-} ]]; then
  BIN=$("$HERE/build.sh" </dev/null | tail -n1)
fi
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl; do
  [[ -x $BIN/$b ]] || { log "missing $BIN/$b (run build.sh)"; exit 1; }
done
KUBECTL="$BIN/kubectl"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/maxine-cp.XXXXXX")
PKI="$WORK/pki"
LOGS="$WORK/logs"
mkdir -p "$PKI" "$LOGS"
PIDS=()   # started processes, in start order
NAMES=()
OK=0

cleanup() {
  local rc=$? i pid deadline
  # Stop in reverse start order: kwok, scheduler, KCM, apiserver, etcd.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "${NAMES[i]} (pid $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if ((OK != 1)); then
    for f in "$LOGS"/*.log; do
      [[ -f $f ]] || continue
      echo "----- last 25 lines of $f" >&2
      tail -n 25 "$f" >&2
    done
  fi
  if [[ ${KEEP_WORKDIR:-} == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
USED_PORTS=" "
free_port() { # a port nobody listens on; 20000-32767 stays below the ephemeral range
  local p
  while :; do
    p=$((20000 + RANDOM % 12768))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS+="$p "
      echo "$p"
      return
    fi
  done
}

start() { # start <name> <cmd...>; stdout+stderr to $LOGS/<name>.log
  local name=$1
  shift
  "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
  log "started $name (pid $!)"
}

alive() { # alive <name>: fail if that process has exited
  local i
  for i in "${!NAMES[@]}"; do
    if [[ ${NAMES[i]} == "$1" ]] && ! kill -0 "${PIDS[i]}" 2>/dev/null; then
      log "$1 exited early"
      return 1
    fi
  done
}

wait_until() { # wait_until <timeout s> <description> <process name> <cmd...>
  local timeout=$1 what=$2 proc=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    alive "$proc" || exit 1
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      exit 1
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- 1. PKI
t_pki=$(now)
# CA (self-signed, 1 day). It signs the apiserver serving cert and the client
# certs, and is given to the apiserver as --client-ca-file. EC P-256 keys are
# quick to generate and accepted everywhere in Go and Node.
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 1 -subj "/CN=maxine-e2e-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

sign() { # sign <name> <subject> <extensions>: key + CSR + CA-signed cert
  local name=$1 subj=$2 ext=$3
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" -subj "$subj" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 1 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
}

# Serving cert: Go clients ignore the CN, so the SANs must cover every name
# and IP the apiserver is reached by (127.0.0.1 from the host; the first
# service IP and kubernetes.default.svc for in-cluster style clients).
SERVICE_CIDR=10.96.0.0/16   # ClusterIPs; nothing routes them (no kube-proxy)
SERVICE_FIRST_IP=10.96.0.1
sign apiserver "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:$SERVICE_FIRST_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"

# Admin client cert: CN = user name, O = group. system:masters bypasses RBAC.
# Used by kubectl and by KCM, scheduler and kwok in this test setup.
sign admin "/O=system:masters/CN=maxine-e2e-admin" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

# ServiceAccount token signing key (RSA, as kubeadm does). The private key is
# --service-account-signing-key-file; the public key is
# --service-account-key-file (verification) and the KCM gets the private key
# as --service-account-private-key-file.
openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null

# Static bearer token (alternative credential, simplest for Node clients).
# Format: token,user,uid,"group1,group2"
ADMIN_TOKEN=$(openssl rand -hex 24)
echo "$ADMIN_TOKEN,maxine-e2e-token-admin,maxine-e2e-token-admin,\"system:masters\"" >"$PKI/tokens.csv"
log "PKI ready in $(since "$t_pki")s"

b64() { base64 -w0 <"$1"; }
write_kubeconfig() { # write_kubeconfig <file> <user yaml lines...>
  local file=$1
  shift
  {
    cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: maxine-e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: maxine-e2e-admin
  user:
EOF
    printf '    %s\n' "$@"
    cat <<EOF
contexts:
- name: maxine-e2e
  context:
    cluster: maxine-e2e
    user: maxine-e2e-admin
current-context: maxine-e2e
EOF
  } >"$file"
}

# ---------------------------------------------------------------- 2. etcd + apiserver
ETCD_PORT=$(free_port)
ETCD_PEER_PORT=$(free_port)
API_PORT=$(free_port)
ETCD_URL="http://127.0.0.1:$ETCD_PORT"
KUBECONFIG_CERT="$WORK/admin.kubeconfig"
KUBECONFIG_TOKEN="$WORK/token.kubeconfig"
write_kubeconfig "$KUBECONFIG_CERT" \
  "client-certificate-data: $(b64 "$PKI/admin.crt")" \
  "client-key-data: $(b64 "$PKI/admin.key")"
write_kubeconfig "$KUBECONFIG_TOKEN" "token: $ADMIN_TOKEN"

t0=$(now)
# Single-member etcd on loopback. --unsafe-no-fsync: test data, much faster.
# initial-* flags keep member name/peer URL consistent with the chosen port.
start etcd "$BIN/etcd" \
  --name=maxine-e2e \
  --data-dir="$WORK/etcd" \
  --listen-client-urls="$ETCD_URL" \
  --advertise-client-urls="$ETCD_URL" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="maxine-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster-state=new \
  --unsafe-no-fsync=true \
  --log-level=warn
wait_until 30 "etcd /health" etcd \
  sh -c "curl -fsS '$ETCD_URL/health' | grep -q '\"health\":\"true\"'"
t_etcd=$(since "$t0")
log "etcd healthy after ${t_etcd}s"

# kube-apiserver flags (see README.md for the why of each):
#   --etcd-servers                 the etcd above (plain http on loopback)
#   --bind-address/--secure-port   listen on 127.0.0.1:<free port> only
#   --advertise-address=127.0.0.1  without it the apiserver needs a default route
#   --tls-cert-file/--tls-private-key-file  serving cert signed by our CA
#   --client-ca-file               accept client certs signed by our CA
#   --token-auth-file              static bearer token (alternative credential)
#   --service-account-*            issuer + signing key are mandatory
#   --service-cluster-ip-range     ClusterIP range; must not overlap kwok's --cidr
#   --authorization-mode=Node,RBAC production-like; system:masters bypasses it
#   --endpoint-reconciler-type=none  the default "lease" reconciler would try to
#                                  publish 127.0.0.1 as the endpoint of the
#                                  "kubernetes" Service, which validation rejects
#                                  (loopback) every 10 s
#   --cert-dir                     never written with explicit TLS files; set so
#                                  nothing defaults to /var/run/kubernetes
t1=$(now)
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="$ETCD_URL" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$API_PORT" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --token-auth-file="$PKI/tokens.csv" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-account-key-file="$PKI/sa.pub" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC \
  --allow-privileged=true \
  --endpoint-reconciler-type=none \
  --cert-dir="$WORK/apiserver-certs" \
  --profiling=false
# /readyz with the admin cert (anonymous may be 403 until RBAC bootstrap is done).
wait_until 90 "kube-apiserver /readyz" kube-apiserver \
  curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
  "https://127.0.0.1:$API_PORT/readyz"
t_api=$(since "$t1")
t_total=$(since "$t0")
log "kube-apiserver /readyz OK after ${t_api}s (etcd start -> apiserver ready: ${t_total}s)"

log "kubectl version / get ns (client cert kubeconfig):"
"$KUBECTL" --kubeconfig="$KUBECONFIG_CERT" version >&2
"$KUBECTL" --kubeconfig="$KUBECONFIG_CERT" get ns >&2
log "kubectl auth whoami (token kubeconfig):"
"$KUBECTL" --kubeconfig="$KUBECONFIG_TOKEN" auth whoami >&2

# ---------------------------------------------------------------- 3. KCM, scheduler, kwok
t2=$(now)
# --secure-port=0: no HTTPS endpoint (no cert, no delegated authn, no port).
# --controllers=*: default set (incl. deployment, replicaset, endpointslice,
#   serviceaccount, namespace, garbagecollector, nodelifecycle).
# --service-account-private-key-file: enables the SA token controller.
# --root-ca-file: CA published in every namespace as kube-root-ca.crt.
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$KUBECONFIG_CERT" \
  --leader-elect=false \
  --secure-port=0 \
  --controllers='*' \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt"
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$KUBECONFIG_CERT" \
  --leader-elect=false \
  --secure-port=0
# kwok: fakes kubelets for Nodes it manages. --manage-all-nodes: every Node is
# fake (there are no real ones). Pod IPs are handed out from --cidr starting
# at the given address (a Node's spec.podCIDR would take precedence, and kwok
# would start at its network address, e.g. 10.244.0.0). Node addresses come
# from --node-ip. Nothing ever dials these IPs: there is no real network.
# HOME is pointed at an empty dir because kwok always loads ~/.kwok/kwok.yaml
# if it exists, which would make the run depend on the developer's machine.
mkdir -p "$WORK/kwok-home"
start kwok env HOME="$WORK/kwok-home" "$BIN/kwok" \
  --kubeconfig="$KUBECONFIG_CERT" \
  --manage-all-nodes=true \
  --cidr=10.244.0.1/16 \
  --node-ip=127.0.0.1

cat >"$WORK/node.yaml" <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
"$KUBECTL" --kubeconfig="$KUBECONFIG_CERT" apply -f "$WORK/node.yaml" >&2

cat >"$WORK/app.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      containers:
      - name: app
        image: registry.k8s.io/pause:3.10   # never pulled: kwok only fakes status
        ports:
        - {name: http, containerPort: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: smoke
  namespace: default
spec:
  selector: {app: smoke}
  ports:
  - {name: http, port: 80, targetPort: http}
EOF

K() { "$KUBECTL" --kubeconfig="$KUBECONFIG_CERT" "$@"; }

wait_until 60 "node kwok-node-0 Ready" kwok \
  sh -c "'$KUBECTL' --kubeconfig='$KUBECONFIG_CERT' get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
log "node Ready after $(since "$t2")s"
# The ServiceAccount admission plugin rejects pods until the serviceaccount
# controller has created "default"; wait so the ReplicaSet does not back off.
wait_until 60 "serviceaccount default/default" kube-controller-manager \
  "$KUBECTL" --kubeconfig="$KUBECONFIG_CERT" -n default get serviceaccount default

t3=$(now)
K apply -f "$WORK/app.yaml" >&2
pods_ok() {
  local out
  out=$(K -n default get pods -l app=smoke -o jsonpath='{range .items[*]}{.status.phase}/{.status.conditions[?(@.type=="Ready")].status}/{.status.podIP}{"\n"}{end}')
  [[ $(grep -cE '^Running/True/[0-9]' <<<"$out") -eq 2 ]]
}
wait_until 120 "2 Running+Ready pods" kube-controller-manager pods_ok
t_pods=$(since "$t3")
K -n default get pods -l app=smoke -o wide >&2
log "deployment smoke: 2/2 pods Running+Ready with IPs after ${t_pods}s"

slices_ok() {
  local out
  out=$(K -n default get endpointslices -l kubernetes.io/service-name=smoke \
    -o jsonpath='{range .items[*].endpoints[*]}{.addresses[0]}/{.conditions.ready}{"\n"}{end}')
  [[ $(grep -cE '^[0-9.]+/true$' <<<"$out") -eq 2 ]]
}
wait_until 60 "EndpointSlice with 2 ready endpoints" kube-controller-manager slices_ok
K -n default get endpointslices -l kubernetes.io/service-name=smoke >&2
log "service smoke: EndpointSlice has 2 ready endpoints"

# Deleting the namespace-scoped objects exercises GC (needs the KCM).
K -n default delete deployment smoke --wait=false >&2
wait_until 60 "pods garbage-collected" kube-controller-manager \
  sh -c "[ -z \"\$('$KUBECTL' --kubeconfig='$KUBECONFIG_CERT' -n default get pods -l app=smoke -o name)\" ]"
log "deployment deleted, pods gone"

OK=1
cat <<EOF
SMOKE OK
etcd_ready_s=$t_etcd
apiserver_ready_s=$t_api
etcd_start_to_apiserver_ready_s=$t_total
deployment_2_pods_ready_s=$t_pods
EOF
