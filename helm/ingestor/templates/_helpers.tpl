{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "ingestor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name of every object of this chart. */}}
{{- define "ingestor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ingestor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "ingestor.labels" -}}
helm.sh/chart: {{ include "ingestor.chart" . }}
{{ include "ingestor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: defender-ingestor
{{- end }}

{{/* Labels that select the pods (immutable on a Deployment: never add to them). */}}
{{- define "ingestor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingestor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ingestor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ingestor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The most pods autoscaling may run: maxReplicas, never more than the partition count. */}}
{{- define "ingestor.maxReplicas" -}}
{{- min .Values.autoscaling.maxReplicas .Values.partitionCount }}
{{- end }}

{{/* The ingestor configuration as rendered into the ConfigMap (metrics port and dead-letter path from values). */}}
{{- define "ingestor.config" -}}
{{- $config := deepCopy .Values.config }}
{{- if eq (default "kafka" $config.source.type) "eventhubs" }}
{{- /* Helm merges the user's source into the default (Kafka) one: drop the Kafka keys the defaults carry. */}}
{{- $_ := set $config "source" (omit $config.source "bootstrap_servers" "topics" "group_id" "tls" "auth") }}
{{- end }}
{{- $_ := set $config "metrics" (dict "host" "0.0.0.0" "port" (int .Values.metrics.port)) }}
{{- $deadLetter := default dict $config.dead_letter }}
{{- if eq (default "file" $deadLetter.type) "file" }}
{{- $_ := set $deadLetter "path" "/var/lib/ingestor/dead-letter" }}
{{- end }}
{{- $_ := set $config "dead_letter" $deadLetter }}
{{- toYaml $config }}
{{- end }}

{{/*
PromQL label matchers for this release's pods: `namespace` and `pod`, the labels every ServiceMonitor or PodMonitor
scrape attaches. Deployment pods are `<fullname>-<pod-template-hash>-<suffix>`; the pattern refuses
`<fullname>-<more>-<hash>-<suffix>`, so a release whose name extends this one's is not matched.
*/}}
{{- define "ingestor.podSelector" -}}
{{- printf "namespace=%q, pod=~%q" .Release.Namespace (printf "%s-([a-z0-9]+-)?[a-z0-9]+" (include "ingestor.fullname" .)) }}
{{- end }}
