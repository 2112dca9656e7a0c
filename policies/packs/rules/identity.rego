# Workload identity: service account tokens only when needed, never the
# shared default service account.

package tollgate.compliance

import rego.v1

token_reason_annotation := "compliance.tollgate.dev/automount-token-reason"

violation contains v if {
	input.rules["service-account-token"]
	input.pod
	object.get(spec, "automountServiceAccountToken", null) != false
	not has_reason(token_reason_annotation)
	v := {
		"rule": "service-account-token",
		"path": concat("", [input.podPath, "spec.automountServiceAccountToken"]),
		"container": "",
		"msg": sprintf(
			"the pod mounts a service account token%s; set %sspec.automountServiceAccountToken: false, or, if it calls the Kubernetes API, annotate it with %s: <why>",
			[token_state, input.podPath, token_reason_annotation],
		),
	}
}

token_state := " (automountServiceAccountToken is true)" if {
	spec.automountServiceAccountToken == true
} else := " (automountServiceAccountToken is unset, so the service account's default applies)"

violation contains v if {
	input.rules["default-service-account"]
	input.pod
	account := service_account
	account in {"", "default"}
	v := {
		"rule": "default-service-account",
		"path": concat("", [input.podPath, "spec.serviceAccountName"]),
		"container": "",
		"msg": sprintf(
			"the pod runs as the namespace's shared default service account%s; create a ServiceAccount for this workload and set %sspec.serviceAccountName to it",
			[account_state(account), input.podPath],
		),
	}
}

# serviceAccountName, else the deprecated serviceAccount, else "".
service_account := spec.serviceAccountName if {
	is_string(spec.serviceAccountName)
	spec.serviceAccountName != ""
} else := spec.serviceAccount if {
	is_string(spec.serviceAccount)
} else := ""

account_state("") := " (serviceAccountName is unset)"

account_state("default") := " (serviceAccountName: default)"
