{{/* Named templates shared by the chart. */}}

{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The webhook's Service, Deployment and PodDisruptionBudget. */}}
{{- define "tollgate.webhookName" -}}
{{- printf "%s-webhook" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret holding the serving certificate. */}}
{{- define "tollgate.tlsSecretName" -}}
{{- if .Values.certificates.existingSecret -}}
{{- .Values.certificates.existingSecret -}}
{{- else -}}
{{- printf "%s-webhook-tls" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Lease the replicas coordinate through. */}}
{{- define "tollgate.leaseName" -}}
{{- printf "%s-webhook-certificates" (include "tollgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Both webhook configurations (cluster-scoped) carry this name. */}}
{{- define "tollgate.webhookConfigurationName" -}}
{{- include "tollgate.fullname" . -}}
{{- end -}}

{{/* "true" when the webhook creates and rotates its own certificate. */}}
{{- define "tollgate.selfManagedCerts" -}}
{{- if and (not .Values.certManager.enabled) (not .Values.certificates.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The webhook configurations' annotations: cert-manager's CA injection
(when it issues the certificate) and commonAnnotations. */}}
{{- define "tollgate.webhookConfigurationAnnotations" -}}
{{- $ann := deepCopy (default (dict) .Values.commonAnnotations) -}}
{{- if .Values.certManager.enabled -}}
{{- $_ := set $ann "cert-manager.io/inject-ca-from" (printf "%s/%s" .Release.Namespace (include "tollgate.webhookName" .)) -}}
{{- end -}}
{{- with $ann }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* The Deployment's annotations: the DeployScope ownership ones, then
commonAnnotations (which may add the ones tier critical requires). */}}
{{- define "tollgate.deploymentAnnotations" -}}
{{- $owner := required "ownership.owner is required: Tollgate's policy requires deployscope.dev/owner on every workload" .Values.ownership.owner -}}
{{- $tier := required "ownership.tier is required: Tollgate's policy requires deployscope.dev/tier on every workload" .Values.ownership.tier -}}
{{- $own := dict "deployscope.dev/owner" $owner "deployscope.dev/tier" $tier -}}
{{- toYaml (merge (deepCopy (default (dict) .Values.commonAnnotations)) $own) -}}
{{- end -}}

{{/* Labels of the `helm test` pod (not selected by the Deployment). */}}
{{- define "tollgate.testLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/component: test
{{- end -}}

{{/* namespaceSelector of both webhooks. */}}
{{- define "tollgate.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      - {{ .Release.Namespace | quote }}
      {{- if ne .Release.Namespace "kube-system" }}
      - "kube-system"
      {{- end }}
      {{- range .Values.webhook.excludedNamespaces }}
      {{- if not (has . (list $.Release.Namespace "kube-system")) }}
      - {{ . | quote }}
      {{- end }}
      {{- end }}
{{- with .Values.webhook.namespaceSelectorExpressions }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* clientConfig of a webhook; the argument is a dict with "root" and "path". */}}
{{- define "tollgate.clientConfig" -}}
{{- $root := .root -}}
service:
  name: {{ include "tollgate.webhookName" $root }}
  namespace: {{ $root.Release.Namespace | quote }}
  path: {{ .path }}
  port: {{ $root.Values.service.port }}
{{- if and (not $root.Values.certManager.enabled) $root.Values.certificates.existingSecret }}
caBundle: {{ required "certificates.caBundle (base64 PEM of the CA) is required with certificates.existingSecret" $root.Values.certificates.caBundle }}
{{- end }}
{{- end -}}

{{/* Checks that hold for every rendering. */}}
{{- define "tollgate.validate" -}}
{{- if and (not .Values.cluster.enabled) (include "tollgate.selfManagedCerts" .) -}}
{{- fail "the webhook needs a serving certificate: set cluster.enabled=true (self-managed), certManager.enabled=true, or certificates.existingSecret with certificates.caBundle" -}}
{{- end -}}
{{- if and .Values.audit.enabled .Values.audit.persistence.enabled (not (has "ReadWriteMany" .Values.audit.persistence.accessModes)) (gt (int .Values.replicaCount) 1) -}}
{{- fail "audit.persistence: replicas on different nodes cannot share a ReadWriteOnce claim; set audit.persistence.accessModes to [ReadWriteMany] or replicaCount to 1" -}}
{{- end -}}
{{- if and .Values.certManager.enabled .Values.certificates.existingSecret -}}
{{- fail "certManager.enabled and certificates.existingSecret are exclusive: choose one source of the serving certificate" -}}
{{- end -}}
{{- range $key, $_ := .Values.commonLabels -}}
{{- if or (hasPrefix "app.kubernetes.io/" $key) (eq $key "helm.sh/chart") -}}
{{- fail (printf "commonLabels: %s is set by the chart (app.kubernetes.io/* and helm.sh/chart select and describe its objects); choose another key" $key) -}}
{{- end -}}
{{- end -}}
{{- range $key, $_ := .Values.podLabels -}}
{{- if has $key (list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component") -}}
{{- fail (printf "podLabels: %s is the Deployment's selector label; choose another key" $key) -}}
{{- end -}}
{{- end -}}
{{- if hasKey .Values.podAnnotations "checksum/config" -}}
{{- fail "podAnnotations: checksum/config is the chart's own (it rolls the pods when the config changes)" -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if has .name (list "POD_NAME" "POD_NAMESPACE") -}}
{{- fail (printf "extraEnv: %s is set by the chart (the audit directory and the in-cluster namespace come from it)" .name) -}}
{{- end -}}
{{- end -}}
{{- if eq (int .Values.webhook.port) (int .Values.webhook.metricsPort) -}}
{{- fail "webhook.port and webhook.metricsPort must differ: one container port cannot serve both" -}}
{{- end -}}
{{- range .Values.webhook.matchConditions -}}
{{- if eq .name "spec-changing-subresources-only" -}}
{{- fail "webhook.matchConditions: the name spec-changing-subresources-only is the chart's own; choose another" -}}
{{- end -}}
{{- end -}}
{{- $names := list -}}
{{- range .Values.webhook.matchConditions -}}
{{- if has .name $names -}}
{{- fail (printf "webhook.matchConditions: the name %s is used twice" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- $grace := include "tollgate.seconds" .Values.webhook.shutdownGrace | int -}}
{{- $needed := add $grace (int .Values.preStopSleepSeconds) -}}
{{- if gt $needed (int .Values.terminationGracePeriodSeconds) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least preStopSleepSeconds plus webhook.shutdownGrace (%d s), or in-flight admissions are killed" (int .Values.terminationGracePeriodSeconds) $needed) -}}
{{- end -}}
{{- end -}}

{{/* A duration of the schema's form (500ms, 10s, 5m, 1h) in whole seconds, rounded up. */}}
{{- define "tollgate.seconds" -}}
{{- $d := toString . -}}
{{- if hasSuffix "ms" $d -}}
{{- div (add (trimSuffix "ms" $d | int) 999) 1000 -}}
{{- else if hasSuffix "s" $d -}}
{{- trimSuffix "s" $d | int -}}
{{- else if hasSuffix "m" $d -}}
{{- mul (trimSuffix "m" $d | int) 60 -}}
{{- else if hasSuffix "h" $d -}}
{{- mul (trimSuffix "h" $d | int) 3600 -}}
{{- else -}}
{{- fail (printf "not a duration: %s" $d) -}}
{{- end -}}
{{- end -}}

{{/* The plural of Tollgate's custom resource (crds/). */}}
{{- define "tollgate.crdPlural" -}}
tollgatepolicies
{{- end -}}
