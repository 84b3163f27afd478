{{/* The release's full name, at most 63 characters. */}}
{{- define "thermostat.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "thermostat.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "thermostat.labels" -}}
{{ include "thermostat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "thermostat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "thermostat.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "thermostat.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The operator's generated rules: a dict with "namespaced" and "cluster" lists. */}}
{{- define "thermostat.rules" -}}
{{- .Files.Get "files/operator-rules.yaml" | fromYaml | toYaml -}}
{{- end -}}

{{/* Runtime pods' label selector (render/identity.py: selector_labels). */}}
{{- define "thermostat.runtimeSelector" -}}
matchLabels:
  app.kubernetes.io/component: runtime
matchExpressions:
  - key: thermostat.dev/routedmodel
    operator: Exists
{{- end -}}

{{- define "thermostat.namespaceSelector" -}}
{{- if .Values.watch.namespaces -}}
matchNames: {{- toYaml .Values.watch.namespaces | nindent 2 }}
{{- else -}}
any: true
{{- end -}}
{{- end -}}

{{/* prometheus-operator relabelings (camelCase) as Prometheus relabel_configs (snake_case). */}}
{{- define "thermostat.relabelConfigs" -}}
{{- $keys := dict "sourceLabels" "source_labels" "targetLabel" "target_label" "separator" "separator" "regex" "regex" "modulus" "modulus" "replacement" "replacement" "action" "action" -}}
{{- $out := list -}}
{{- range . -}}
{{- $rule := dict -}}
{{- range $key, $value := . -}}
{{- $name := get $keys $key | required (printf "monitoring relabelings: unknown key %q (use %s)" $key (keys $keys | sortAlpha | join ", ")) -}}
{{- if eq $key "action" -}}
{{- $_ := set $rule $name (lower $value) -}}
{{- else -}}
{{- $_ := set $rule $name $value -}}
{{- end -}}
{{- end -}}
{{- $out = append $out $rule -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* How many operator replicas: replicaCount, or 2 with HA and 1 without. Several need peering. */}}
{{- define "thermostat.replicas" -}}
{{- $replicas := .Values.replicaCount | default (ternary 2 1 .Values.ha.enabled) | int -}}
{{- if and (gt $replicas 1) (not .Values.ha.enabled) -}}
{{- fail (printf "replicaCount %d needs ha.enabled=true: without peering every replica would act; set replicaCount to 1 or enable ha" $replicas) -}}
{{- end -}}
{{- if and .Values.ha.enabled .Values.watch.namespaces -}}
{{- fail "ha.enabled with watch.namespaces is not supported yet (Kopf would need a KopfPeering in each namespace): set ha.enabled=false (one replica) or watch every namespace" -}}
{{- end -}}
{{- $replicas -}}
{{- end -}}

{{/* The ClusterKopfPeering the replicas share (cluster-scoped: one per release). */}}
{{- define "thermostat.peeringName" -}}
{{- default (include "thermostat.fullname" .) .Values.ha.peeringName -}}
{{- end -}}
