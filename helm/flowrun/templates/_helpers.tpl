{{/* Names, labels and shared values of the flowrun chart. */}}

{{- define "flowrun.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-flowrun, or just <release> when it already contains the chart's name. */}}
{{- define "flowrun.fullname" -}}
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

{{- define "flowrun.controllerName" -}}
{{- printf "%s-controller" (include "flowrun.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flowrun.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "flowrun.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flowrun
{{- end -}}

{{- define "flowrun.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flowrun.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "flowrun.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flowrun.controllerName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The username the controller authenticates as: the admission policies exempt it. */}}
{{- define "flowrun.controllerUsername" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "flowrun.serviceAccountName" .) -}}
{{- end -}}

{{/* The Lease of leader election; the chart creates it so the controller needs no create. */}}
{{- define "flowrun.leaseName" -}}
{{- include "flowrun.controllerName" . -}}
{{- end -}}

{{- define "flowrun.postgresqlName" -}}
{{- printf "%s-postgresql" (include "flowrun.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret holding the database URL and its key. */}}
{{- define "flowrun.databaseSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "flowrun.postgresqlName" . -}}
{{- else -}}
{{- required "database.existingSecret is required (or set postgresql.enabled=true to try flowrun out)" .Values.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "flowrun.databaseSecretKey" -}}
{{- if .Values.postgresql.enabled -}}url{{- else -}}{{ .Values.database.secretKey }}{{- end -}}
{{- end -}}

{{- define "flowrun.priceTableName" -}}
{{- printf "%s-prices" (include "flowrun.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "flowrun.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}
{{- end -}}

{{/* Security context of every container the chart runs: passes Pod Security "restricted". */}}
{{- define "flowrun.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "flowrun.queryServiceName" -}}
{{- printf "%s-query" (include "flowrun.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
