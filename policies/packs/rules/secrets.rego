# Secrets: no credentials as literal environment variable values.
#
# A value is reported when it looks like a credential whatever its name
# (private keys, JWTs, well-known token formats, URLs with a password), or
# when the variable's name says it holds one (DB_PASSWORD, API_KEY,
# GITHUB_TOKEN, CLIENT_SECRET, ...) and the value is a literal rather than a
# file path, a $(VAR) reference or a boolean. The value itself never
# appears in a message.

package tollgate.compliance

import rego.v1

# Every literal, non-empty env value of the pod, flattened once for the
# three rules below.
literal_env := [{"list": list, "i": i, "c": c, "j": j, "e": e} |
	some list, cs in pod_containers
	some i, c in cs
	some j, e in object.get(c, "env", [])
	is_string(e.value)
	e.value != ""
]

violation contains v if {
	input.rules["env-plaintext-secret"]
	some x in literal_env
	strings.any_prefix_match(x.e.value, credential_prefixes)
	credential(x.e.value)
	v := env_violation(x, credential_text)
}

violation contains v if {
	input.rules["env-plaintext-secret"]
	some x in literal_env
	contains(x.e.value, "@")
	url_with_password(x.e.value)
	v := env_violation(x, credential_text)
}

violation contains v if {
	input.rules["env-plaintext-secret"]
	some x in literal_env
	strings.any_suffix_match(concat("", ["_", upper(x.e.name)]), secret_suffixes)
	not startswith(x.e.value, "/")
	not startswith(x.e.value, "$(")
	not lower(x.e.value) in {"true", "false", "yes", "no", "on", "off", "enabled", "disabled"}
	not credential(x.e.value)
	not url_with_password(x.e.value)
	v := env_violation(x, "looks like a secret (its name says it holds one)")
}

credential_text := "looks like a credential (a private key, a token or key in a well-known format, or a URL with a password)"

env_violation(x, reason) := {
	"rule": "env-plaintext-secret",
	"path": sprintf("%s.env[%d].value", [container_path(x.list, x.i), x.j]),
	"container": x.c.name,
	"msg": sprintf(
		"container %q sets env %s to a literal value that %s; move it to a Secret and use valueFrom.secretKeyRef, then rotate it (manifests are widely readable)",
		[x.c.name, x.e.name, reason],
	),
}

# A value in a known credential format (candidates start with one of
# credential_prefixes; the pattern confirms them).
credential(value) if regex.match(credential_pattern, value)

url_with_password(value) if {
	contains(value, "://")
	regex.match(`^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@`, value)
}

# Private keys, JWTs, AWS access keys, GitHub, GitLab, Slack,
# OpenAI/Anthropic, Stripe and Google API keys.
credential_prefixes := {
	"-----BEGIN", "eyJ", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
	"glpat-", "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "sk-", "sk_live_", "rk_live_", "AIza",
}

credential_pattern := concat("|", [
	`^-----BEGIN [A-Z ]*PRIVATE KEY-----`,
	`^eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*$`,
	`^(?:AKIA|ASIA)[0-9A-Z]{16}$`,
	`^gh[pousr]_[A-Za-z0-9]{30,}$`,
	`^github_pat_[A-Za-z0-9_]{30,}$`,
	`^glpat-[A-Za-z0-9_-]{20,}$`,
	`^xox[abprs]-[A-Za-z0-9-]{10,}$`,
	`^sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}$`,
	`^(?:sk|rk)_live_[A-Za-z0-9]{16,}$`,
	`^AIza[0-9A-Za-z_-]{35}$`,
])

# "_" + the upper-cased name ends with one of these exactly when the name's
# last word says it holds a secret: DB_PASSWORD and OPENAI_API_KEY match,
# MAX_TOKENS and PASSWORD_MIN_LENGTH do not.
secret_suffixes := {
	"_PASSWORD", "_PASSWD", "_PASSPHRASE", "_PWD", "_SECRET", "_TOKEN",
	"_APIKEY", "_API_KEY", "_ACCESSKEY", "_ACCESS_KEY", "_SECRETKEY", "_SECRET_KEY",
	"_PRIVATEKEY", "_PRIVATE_KEY", "_CLIENTSECRET", "_CLIENT_SECRET",
	"_CREDENTIAL", "_CREDENTIALS", "_AUTHTOKEN", "_AUTH_TOKEN", "_BEARER",
}
