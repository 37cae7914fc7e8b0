{{/* The operator's object name (Deployment, ServiceAccount, Service, ClusterRole, ...). */}}
{{- define "maxine.fullname" -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object gets: the selector label of manifests/ plus Helm's bookkeeping. */}}
{{- define "maxine.labels" -}}
app.kubernetes.io/name: {{ include "maxine.fullname" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pod selector: the same label as manifests/ (a Deployment's selector is immutable). */}}
{{- define "maxine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "maxine.fullname" . }}
{{- end -}}

{{- define "maxine.image" -}}
{{- printf "%s:%s" .repository (.tag | default .appVersion) -}}
{{- end -}}

{{/* The operator's in-cluster URL, as injected sidecars reach it. */}}
{{- define "maxine.serviceHost" -}}
{{- printf "%s.%s.svc" (include "maxine.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/*
The operator's flags. A flag is given only when its value differs from the operator's own
default (operator/config.ts), so the default values render the args of manifests/deployment.yaml;
e2e/helm/chart.e2e.test.ts checks that values.yaml's defaults are the operator's.
*/}}
{{- define "maxine.flag" -}}
{{- $name := index . 0 -}}{{- $value := index . 1 -}}{{- $default := index . 2 -}}
{{- /* YAML numbers arrive as float64: print 1000000, not 1e+06. */ -}}
{{- if kindIs "float64" $value }}{{ $value = int64 $value }}{{ end -}}
{{- if ne (toString $value) (toString $default) }}
- --{{ $name }}
- {{ toString $value | quote }}
{{- end -}}
{{- end -}}

{{- define "maxine.args" -}}
{{- $v := .Values -}}
{{- $fullname := include "maxine.fullname" . -}}
{{- $host := include "maxine.serviceHost" . -}}
- --mode
- kubernetes
- --host
- 0.0.0.0
- --port
- '7710'
{{- include "maxine.flag" (list "log-level" $v.operator.logLevel "info") }}
{{- include "maxine.flag" (list "allow-undeclared" $v.operator.allowUndeclared false) }}
{{- include "maxine.flag" (list "intention-default" $v.operator.intentionDefault "allow") }}
{{- include "maxine.flag" (list "policy-namespaces" (join "," ($v.operator.policyNamespaces | default (list .Release.Namespace))) "maxine-system") }}
{{- include "maxine.flag" (list "lease-name" $fullname "maxine-operator") }}
{{- include "maxine.flag" (list "webhook" $v.webhook.enabled true) }}
{{- include "maxine.flag" (list "webhook-dns-names" (printf "%s,%s.%s" $host $host $v.mesh.clusterDomain) "maxine-operator.maxine-system.svc,maxine-operator.maxine-system.svc.cluster.local") }}
{{- include "maxine.flag" (list "sidecar-image" (include "maxine.image" (merge (dict "appVersion" .Chart.AppVersion) $v.webhook.sidecarImage)) "ghcr.io/maxine-registry/sidecar:0.1.0") }}
{{- include "maxine.flag" (list "sidecar-operator-url" (printf "http://%s:7710" $host) "http://maxine-operator.maxine-system.svc:7710") }}
{{- include "maxine.flag" (list "audit-max-size" $v.audit.maxSize "10m") }}
{{- include "maxine.flag" (list "audit-keep" $v.audit.keep 10) }}
{{- include "maxine.flag" (list "default-ttl-seconds" $v.store.defaultTtlSeconds 30) }}
{{- include "maxine.flag" (list "remove-after-seconds" $v.store.removeAfterSeconds 90) }}
{{- include "maxine.flag" (list "mesh-apply" $v.mesh.apply true) }}
{{- include "maxine.flag" (list "mesh-resync-ms" $v.mesh.resyncMs 300000) }}
{{- include "maxine.flag" (list "cluster-domain" $v.mesh.clusterDomain "cluster.local") }}
{{- include "maxine.flag" (list "mesh-trust-domain" $v.mesh.trustDomain "cluster.local") }}
{{- include "maxine.flag" (list "linkerd-identity-domain" $v.mesh.linkerdIdentityDomain "cluster.local") }}
{{- range $v.operator.extraArgs }}
- {{ toString . | quote }}
{{- end }}
{{- end -}}
