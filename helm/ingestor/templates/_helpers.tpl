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

{{/* Labels that select the pods (immutable on a StatefulSet: never add to them). */}}
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
{{- $volume := include "ingestor.deadLetterVolumeBytes" . | int64 }}
{{- if hasKey $deadLetter "max_total_bytes" }}
{{- if ge (int64 $deadLetter.max_total_bytes) $volume }}
{{- fail (printf "config.dead_letter.max_total_bytes %v must be below the dead-letter volume's %d bytes, or the volume fills before the ingestor pauses" $deadLetter.max_total_bytes $volume) }}
{{- end }}
{{- else }}
{{- /* 80% of the volume: room for the filesystem's own overhead and the write that finds the cap reached. */}}
{{- $_ := set $deadLetter "max_total_bytes" (div (mul $volume 4) 5) }}
{{- end }}
{{- end }}
{{- $_ := set $config "dead_letter" $deadLetter }}
{{- toYaml $config }}
{{- end }}

{{/*
PromQL label matchers for this release's pods: `namespace` and `pod`, the labels every ServiceMonitor or PodMonitor
scrape attaches. StatefulSet pods are `<fullname>-<ordinal>`; the pattern refuses `<fullname>-<more>-<ordinal>`,
so a release whose name extends this one's is not matched.
*/}}
{{- define "ingestor.podSelector" -}}
{{- printf "namespace=%q, pod=~%q" .Release.Namespace (printf "%s-[0-9]+" (include "ingestor.fullname" .)) }}
{{- end }}

{{/*
Where the file dead letter lives: `claim` (a PersistentVolumeClaim per pod, the default), `ephemeral` (an emptyDir,
only with deadLetter.ephemeralLosesDataWithThePod), or empty when the dead letter is a Kafka topic (no volume).
*/}}
{{- define "ingestor.deadLetterVolume" -}}
{{- $type := default "file" (default dict .Values.config.dead_letter).type }}
{{- if ne $type "file" }}
{{- else if .Values.deadLetter.ephemeralLosesDataWithThePod }}ephemeral
{{- else if .Values.deadLetter.persistence.enabled }}claim
{{- else }}
{{- fail "deadLetter.persistence.enabled is false with a file dead letter: its entries would be lost with the pod. Keep the claim, use config.dead_letter.type kafka, or set deadLetter.ephemeralLosesDataWithThePod true to accept the loss" }}
{{- end }}
{{- end }}

{{/* Bytes of the file dead letter's volume: the claim's size, or the emptyDir's sizeLimit. */}}
{{- define "ingestor.deadLetterVolumeBytes" -}}
{{- $size := ternary .Values.deadLetter.ephemeralSizeLimit .Values.deadLetter.persistence.size (eq (include "ingestor.deadLetterVolume" .) "ephemeral") }}
{{- include "ingestor.quantityBytes" $size }}
{{- end }}

{{/* Bytes of a quantity written as an integer and Ki, Mi, Gi or Ti (values.schema.json allows nothing else). */}}
{{- define "ingestor.quantityBytes" -}}
{{- $number := regexFind "^[0-9]+" . }}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- mul (int64 $number) (get $units (trimPrefix $number .)) }}
{{- end }}

{{/*
Each secret the configuration can hold (ingestor/config.py, the `Secret` fields): the existingSecret value naming
its key in the Secret, and the environment variable that carries it. values.schema.json refuses them in `config`.
*/}}
{{- define "ingestor.secretEnv" -}}
connectionStringKey: INGESTOR_SOURCE__AUTH__CONNECTION_STRING
amqpConnectionStringKey: INGESTOR_SOURCE__CONNECTION_STRING
checkpointStoreConnectionStringKey: INGESTOR_SOURCE__CHECKPOINT_STORE__CONNECTION_STRING
staticTokenKey: INGESTOR_SINK__CREDENTIAL__TOKEN
{{- end }}
