{{/*
Named templates shared by the chart. The chart's templates use only this
subset of Helm's template language: actions, if/else/with/range/define,
variables, and the functions include, required, fail, default, quote,
toYaml, nindent, indent, trunc, trimSuffix, contains, printf, eq, ne, and,
or, not, empty, hasKey, len, gt, int, has, dict, b64enc, sha256sum. The render tests (tests/chart.rs)
implement exactly this subset; keep new templates within it.
*/}}

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
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ default .Chart.AppVersion .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- end -}}

{{/* namespaceSelector of both webhooks. */}}
{{- define "tollgate.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      - {{ .Release.Namespace }}
      {{- range .Values.webhook.excludedNamespaces }}
      {{- if ne . $.Release.Namespace }}
      - {{ . }}
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
  namespace: {{ $root.Release.Namespace }}
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
{{- end -}}

{{/* The plural of Tollgate's custom resource (crds/). */}}
{{- define "tollgate.crdPlural" -}}
tollgatepolicies
{{- end -}}
