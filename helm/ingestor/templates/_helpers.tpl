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

{{/*
The keys of the configuration the chart sets itself, as YAML: `metrics.host` and `metrics.port` (the container
port, the probes, the Service and the monitors use `metrics.port`) and, for a file dead letter, `dead_letter.path`
(where the dead-letter volume is mounted). They win over the same keys in `config`; NOTES.txt names each one
replaced ("ingestor.replacedNotes").
*/}}
{{- define "ingestor.chartSet" -}}
metrics:
  host: 0.0.0.0
  port: {{ int .Values.metrics.port }}
{{- if eq (default "file" (default dict .Values.config.dead_letter).type) "file" }}
dead_letter:
  path: /var/lib/ingestor/dead-letter
{{- end }}
{{- end }}

{{/* The ingestor configuration as rendered into the ConfigMap: `config` with the keys of "ingestor.chartSet". */}}
{{- define "ingestor.config" -}}
{{- include "ingestor.refusals" . }}
{{- $config := deepCopy .Values.config }}
{{- if eq (default "kafka" $config.source.type) "eventhubs" }}
{{- /* Helm merges the user's source into the default (Kafka) one: drop the Kafka keys the defaults carry. */}}
{{- $_ := set $config "source" (omit $config.source "bootstrap_servers" "topics" "group_id") }}
{{- else if not (hasKey $config.source "auth") }}
{{- /* Event Hubs' Kafka endpoint needs auth: workload identity unless the configuration says otherwise. */}}
{{- if regexMatch "\\.servicebus\\." (join "," (default list $config.source.bootstrap_servers)) }}
{{- $_ := set $config.source "auth" (dict "type" "entra") }}
{{- end }}
{{- end }}
{{- $chartSet := include "ingestor.chartSet" . | fromYaml }}
{{- range $section, $keys := $chartSet }}
{{- $_ := set $config $section (merge $keys (default dict (get $config $section))) }}
{{- end }}
{{- $deadLetter := $config.dead_letter }}
{{- if eq (default "file" $deadLetter.type) "file" }}
{{- $volume := include "ingestor.deadLetterVolumeBytes" . | int64 }}
{{- if hasKey $deadLetter "max_total_bytes" }}
{{- if ge (int64 $deadLetter.max_total_bytes) $volume }}
{{- fail (printf "config.dead_letter.max_total_bytes %d is not below the dead-letter volume's %d bytes: the volume would fill before the ingestor pauses. Lower it, or leave it out and the chart sets 80%% of the volume." (int64 $deadLetter.max_total_bytes) $volume) }}
{{- end }}
{{- else }}
{{- /* 80% of the volume: room for the filesystem's own overhead and the write that finds the cap reached. */}}
{{- $_ := set $deadLetter "max_total_bytes" (div (mul $volume 4) 5) }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Why the chart sets each key of "ingestor.chartSet", and what to do instead: for NOTES.txt and refusals. */}}
{{- define "ingestor.chartSetWhy" -}}
metrics.host: "the kubelet's probes and Prometheus reach the pod from outside it; remove config.metrics.host"
metrics.port: "the container port, the probes, the Service and the monitors use it; set metrics.port instead of config.metrics.port"
dead_letter.path: "the chart mounts the dead-letter volume there; remove config.dead_letter.path"
{{- end }}

{{/* One NOTES.txt line for each key of `config` that "ingestor.chartSet" replaces with a different value. */}}
{{- define "ingestor.replacedNotes" -}}
{{- $why := include "ingestor.chartSetWhy" . | fromYaml }}
{{- range $section, $keys := include "ingestor.chartSet" . | fromYaml }}
{{- $given := default dict (get $.Values.config $section) }}
{{- range $key, $value := $keys }}
{{- if and (hasKey $given $key) (ne (toString (get $given $key)) (toString $value)) }}
{{- $name := printf "%s.%s" $section $key }}
NOTE: config.{{ $name }} {{ get $given $key }} is replaced by the chart's {{ $value }} ({{ get $why $name }}).
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Refusals of values that cannot work, each a sentence that says what to change and why. values.schema.json checks
only the types and the known keys (Helm's messages for those are clear). Included by "ingestor.config" and
NOTES.txt, so that it runs before anything else uses the values.
*/}}
{{- define "ingestor.refusals" -}}
{{- $v := .Values }}
{{- /* [key, value, least, most (nil: no most), what the value is] */}}
{{- $ranges := list
  (list "replicaCount" $v.replicaCount 0 nil "the pods to run when autoscaling is off")
  (list "partitionCount" $v.partitionCount 1 2000 "the partition count of your event hub")
  (list "metrics.port" $v.metrics.port 1 65535 "the TCP port of /metrics, /healthz and /readyz")
  (list "terminationGracePeriodSeconds" $v.terminationGracePeriodSeconds 1 nil "the seconds Kubernetes waits after SIGTERM")
  (list "livenessProbe.periodSeconds" $v.livenessProbe.periodSeconds 1 nil "seconds between checks")
  (list "livenessProbe.failureThreshold" $v.livenessProbe.failureThreshold 1 nil "failed checks before a restart")
  (list "readinessProbe.periodSeconds" $v.readinessProbe.periodSeconds 1 nil "seconds between checks")
  (list "readinessProbe.failureThreshold" $v.readinessProbe.failureThreshold 1 nil "failed checks before the pod is not ready")
  (list "startupProbe.periodSeconds" $v.startupProbe.periodSeconds 1 nil "seconds between checks")
  (list "startupProbe.failureThreshold" $v.startupProbe.failureThreshold 1 nil "checks before the start counts as failed")
  (list "autoscaling.minReplicas" $v.autoscaling.minReplicas 0 nil "the fewest pods")
  (list "autoscaling.maxReplicas" $v.autoscaling.maxReplicas 1 nil "the most pods")
  (list "autoscaling.hpa.targetCPUUtilizationPercentage" $v.autoscaling.hpa.targetCPUUtilizationPercentage 1 100 "a percentage of the CPU request")
  (list "autoscaling.keda.lagThreshold" $v.autoscaling.keda.lagThreshold 1 nil "messages of lag per pod")
  (list "autoscaling.keda.activationLagThreshold" $v.autoscaling.keda.activationLagThreshold 0 nil "messages of lag")
  (list "autoscaling.keda.pollingInterval" $v.autoscaling.keda.pollingInterval 1 nil "seconds between KEDA's checks")
  (list "autoscaling.keda.cooldownPeriod" $v.autoscaling.keda.cooldownPeriod 1 nil "seconds before scaling back in")
  (list "prometheusRule.lagMessages" $v.prometheusRule.lagMessages 1 nil "messages of lag")
}}
{{- range $ranges }}
{{- $key := index . 0 }}
{{- $value := index . 1 }}
{{- $least := index . 2 }}
{{- $most := index . 3 }}
{{- $expected := printf "at least %d" $least }}
{{- if not (kindIs "invalid" $most) }}
{{- $expected = printf "from %d to %d" $least $most }}
{{- end }}
{{- if kindIs "invalid" $value }}
{{- fail (printf "%s is not set: it must be a whole number %s (%s)." $key $expected (index . 4)) }}
{{- else if or (lt (float64 $value) (float64 $least)) (and (not (kindIs "invalid" $most)) (gt (float64 $value) (float64 $most))) }}
{{- fail (printf "%s is %d: it must be %s (%s)." $key (int64 $value) $expected (index . 4)) }}
{{- end }}
{{- end }}
{{- if gt (int $v.replicaCount) (int $v.partitionCount) }}
{{- fail (printf "replicaCount %d is more than partitionCount %d: pods beyond the partition count get no partitions and stay not ready. Lower replicaCount, or set partitionCount to your event hub's partition count." (int $v.replicaCount) (int $v.partitionCount)) }}
{{- end }}
{{- if and (ne $v.autoscaling.mode "none") (gt (int $v.autoscaling.minReplicas) (int (include "ingestor.maxReplicas" .))) }}
{{- fail (printf "autoscaling.minReplicas %d is more than the most pods autoscaling may run, %s (autoscaling.maxReplicas, at most partitionCount): lower it." (int $v.autoscaling.minReplicas) (include "ingestor.maxReplicas" .)) }}
{{- end }}
{{- $grace := 30 }}
{{- if hasKey $v.config "shutdown_grace_secs" }}
{{- $grace = $v.config.shutdown_grace_secs }}
{{- end }}
{{- if ge (float64 $grace) (float64 $v.terminationGracePeriodSeconds) }}
{{- fail (printf "config.shutdown_grace_secs %v is not below terminationGracePeriodSeconds %d: Kubernetes would kill a pod before it has flushed, uploaded and committed. Lower config.shutdown_grace_secs, or raise terminationGracePeriodSeconds above it." $grace (int $v.terminationGracePeriodSeconds)) }}
{{- end }}
{{- if not $v.image.repository }}
{{- fail "image.repository is empty: name the image you built from the repository's Dockerfile, e.g. myregistry.azurecr.io/defender-ingestor." }}
{{- end }}
{{- range $key, $size := dict "deadLetter.persistence.size" $v.deadLetter.persistence.size "deadLetter.ephemeralSizeLimit" $v.deadLetter.ephemeralSizeLimit }}
{{- if not (regexMatch "^[1-9][0-9]*(Ki|Mi|Gi|Ti)$" (toString $size)) }}
{{- fail (printf "%s is %q: write a whole number and Ki, Mi, Gi or Ti, e.g. 10Gi (the chart computes the dead letter's cap from it)." $key (toString $size)) }}
{{- end }}
{{- end }}
{{- $deadLetter := default dict $v.config.dead_letter }}
{{- if and (hasKey $deadLetter "max_total_bytes") (lt (float64 $deadLetter.max_total_bytes) 1048576.0) }}
{{- fail (printf "config.dead_letter.max_total_bytes %d is below 1048576 (1 MiB), the least the ingestor takes: raise it, or leave it out and the chart sets 80%% of the dead-letter volume." (int64 $deadLetter.max_total_bytes)) }}
{{- end }}
{{- if not (regexMatch "^https?://" (toString $v.autoscaling.keda.serverAddress)) }}
{{- fail (printf "autoscaling.keda.serverAddress %q is not a URL: write it as KEDA reaches your Prometheus, e.g. http://prometheus-operated.monitoring.svc:9090." $v.autoscaling.keda.serverAddress) }}
{{- end }}
{{- $policy := $v.networkPolicy }}
{{- if and (not $policy.metricsFrom.namespace) (not $policy.metricsFrom.namespaceSelector) }}
{{- fail "networkPolicy.metricsFrom.namespace is empty: name the namespace of your Prometheus, or set networkPolicy.metricsFrom.namespaceSelector." }}
{{- end }}
{{- range $key := list "eventHubsCidrs" "httpsCidrs" }}
{{- $cidrs := get $policy $key }}
{{- if not $cidrs }}
{{- fail (printf "networkPolicy.%s is empty: list at least one address range in CIDR notation, e.g. 0.0.0.0/0 for any address." $key) }}
{{- end }}
{{- range $i, $cidr := $cidrs }}
{{- if not (regexMatch "^[0-9a-fA-F.:]+/[0-9]{1,3}$" (toString $cidr)) }}
{{- fail (printf "networkPolicy.%s[%d] %q is not an address range: write it in CIDR notation, e.g. 10.20.0.0/24 (a NetworkPolicy knows addresses, not host names: take the ranges of the Azure service tag or of your private endpoints' subnet)." $key $i (toString $cidr)) }}
{{- end }}
{{- end }}
{{- end }}
{{- /* Secrets: never inline, in config or env; provision's `${INGESTOR_...}` placeholder only with its Secret. */}}
{{- $fromSecrets := list }}
{{- range $v.env }}
{{- if .valueFrom }}
{{- $fromSecrets = append $fromSecrets .name }}
{{- end }}
{{- end }}
{{- $secretEnvs := dict }}
{{- range $valueKey, $secret := include "ingestor.secretEnv" . | fromYaml }}
{{- $_ := set $secretEnvs $secret.env $valueKey }}
{{- $given := get $v.existingSecret $valueKey }}
{{- if and $given (not $v.existingSecret.name) }}
{{- fail (printf "existingSecret.%s is set but existingSecret.name is empty: name the Secret that holds the key %q." $valueKey $given) }}
{{- end }}
{{- $node := $v.config }}
{{- range splitList "." $secret.path }}
{{- if kindIs "map" $node }}
{{- $node = get $node . }}
{{- else }}
{{- $node = "" }}
{{- end }}
{{- end }}
{{- if eq (toString $node) (printf "${%s}" $secret.env) }}
{{- if not (or $given (has $secret.env $fromSecrets)) }}
{{- fail (printf "config.%s is ${%s}, the placeholder provision writes in place of the secret: set existingSecret.name and existingSecret.%s to the Secret that holds it, and the pod gets it as %s." $secret.path $secret.env $valueKey $secret.env) }}
{{- end }}
{{- else if and $node (not (kindIs "map" $node)) }}
{{- fail (printf "config.%s holds a secret, and config is rendered into a ConfigMap that whoever may read the namespace's ConfigMaps can read: remove it from config, put it in a Secret and set existingSecret.name and existingSecret.%s (the pod gets it as %s)." $secret.path $valueKey $secret.env) }}
{{- end }}
{{- end }}
{{- $chartEnvs := dict }}
{{- $why := include "ingestor.chartSetWhy" . | fromYaml }}
{{- range $section, $keys := include "ingestor.chartSet" . | fromYaml }}
{{- range $key, $_ := $keys }}
{{- $_ := set $chartEnvs (printf "INGESTOR_%s__%s" (upper $section) (upper $key)) (printf "%s.%s" $section $key) }}
{{- end }}
{{- end }}
{{- range $i, $item := $v.env }}
{{- with get $chartEnvs $item.name }}
{{- fail (printf "env[%d] %s would override config.%s, which the chart sets itself (%s): remove it from env." $i $item.name . (get $why .)) }}
{{- end }}
{{- if and (hasKey $secretEnvs $item.name) (hasKey $item "value") }}
{{- fail (printf "env[%d] %s has a literal value, and a secret in the pod spec can be read by whoever may read the StatefulSet: take it from a Secret with valueFrom.secretKeyRef, or set existingSecret.name and existingSecret.%s." $i $item.name (get $secretEnvs $item.name)) }}
{{- end }}
{{- end }}
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
{{- fail "deadLetter.persistence.enabled is false with a file dead letter: its entries would be lost with the pod. Keep the claim, use config.dead_letter.type kafka, or set deadLetter.ephemeralLosesDataWithThePod true to accept the loss." }}
{{- end }}
{{- end }}

{{/* Bytes of the file dead letter's volume: the claim's size, or the emptyDir's sizeLimit. */}}
{{- define "ingestor.deadLetterVolumeBytes" -}}
{{- $size := ternary .Values.deadLetter.ephemeralSizeLimit .Values.deadLetter.persistence.size (eq (include "ingestor.deadLetterVolume" .) "ephemeral") }}
{{- include "ingestor.quantityBytes" $size }}
{{- end }}

{{/* Bytes of a quantity written as an integer and Ki, Mi, Gi or Ti ("ingestor.refusals" allows nothing else). */}}
{{- define "ingestor.quantityBytes" -}}
{{- $number := regexFind "^[0-9]+" . }}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- mul (int64 $number) (get $units (trimPrefix $number .)) }}
{{- end }}

{{/*
Each secret the configuration can hold (ingestor/config.py, the `Secret` fields): the existingSecret value naming
its key in the Secret, its key in `config`, and the environment variable that carries it. "ingestor.refusals"
refuses them in `config` and as literal `env` values.
*/}}
{{- define "ingestor.secretEnv" -}}
connectionStringKey: {path: source.auth.connection_string, env: INGESTOR_SOURCE__AUTH__CONNECTION_STRING}
amqpConnectionStringKey: {path: source.connection_string, env: INGESTOR_SOURCE__CONNECTION_STRING}
checkpointStoreConnectionStringKey: {path: source.checkpoint_store.connection_string, env: INGESTOR_SOURCE__CHECKPOINT_STORE__CONNECTION_STRING}
staticTokenKey: {path: sink.credential.token, env: INGESTOR_SINK__CREDENTIAL__TOKEN}
{{- end }}
