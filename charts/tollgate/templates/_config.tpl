{{/*
The config file (apiVersion tollgate.dev/v1alpha1, kind TollgateConfig) the
webhook reads from /etc/tollgate/config.yaml. Sections the values leave
empty are omitted, so the binary's defaults apply.
*/}}
{{- define "tollgate.configFile" -}}
apiVersion: tollgate.dev/v1alpha1
kind: TollgateConfig
webhook:
  listen: 0.0.0.0:{{ .Values.webhook.port }}
  metricsListen: 0.0.0.0:{{ .Values.webhook.metricsPort }}
  stateDir: /var/lib/tollgate/state
  tls:
    {{- if include "tollgate.selfManagedCerts" . }}
    dnsNames:
      {{- $svc := include "tollgate.webhookName" . }}
      - {{ $svc }}.{{ .Release.Namespace }}.svc
      - {{ $svc }}.{{ .Release.Namespace }}.svc.cluster.local
    {{- else }}
    certFile: /var/run/tollgate/tls/tls.crt
    keyFile: /var/run/tollgate/tls/tls.key
    {{- end }}
  shutdownGrace: {{ .Values.webhook.shutdownGrace }}
  auditFailurePolicy: {{ .Values.webhook.auditFailurePolicy }}
  auditTimeout: {{ .Values.webhook.auditTimeout }}
  {{- with .Values.webhook.limits }}
  limits:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- with .Values.policy }}
policy:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.audit.config }}
audit:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.injection.enabled }}
injection:
  {{- $given := .Values.injection.config }}
  {{- if not (hasKey $given "image") }}
  image: {{ include "tollgate.image" . }}
  {{- end }}
  {{- if not (hasKey $given "imagePullPolicy") }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- end }}
  {{- if not (hasKey $given "excludedNamespaces") }}
  excludedNamespaces:
    - {{ .Release.Namespace | quote }}
  {{- end }}
  {{- with $given }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- if .Values.cluster.enabled }}
cluster:
  {{- $given := .Values.cluster.config }}
  {{- if not (hasKey $given "certificates") }}
  # The objects the chart creates and the RBAC names.
  certificates:
    {{- if include "tollgate.selfManagedCerts" . }}
    mode: self-managed
    {{- else }}
    # The serving certificate comes from mounted files (cert-manager or a
    # given Secret): nothing to manage.
    mode: cert-manager
    {{- end }}
    secretName: {{ include "tollgate.tlsSecretName" . }}
    serviceName: {{ include "tollgate.webhookName" . }}
    mutatingWebhookConfigurations:
      - {{ include "tollgate.webhookConfigurationName" . }}
    validatingWebhookConfigurations:
      - {{ include "tollgate.webhookConfigurationName" . }}
    leaseName: {{ include "tollgate.leaseName" . }}
  {{- end }}
  {{- with $given }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}
