//! Proxy escapes in an agent's environment: variables other than the
//! injected `HTTP(S)_PROXY`/`NO_PROXY` that tell common clients to send
//! their traffic somewhere else or to read settings that can. The
//! injected ones are checked for their values by [`super::bypass`]; here
//! any other variable whose name mentions a proxy (`ALL_PROXY`,
//! `grpc_proxy`, `no_grpc_proxy`, `PIP_PROXY`, `npm_config_https_proxy`,
//! `GIT_PROXY_COMMAND`, mixed-case spellings that Python reads, ...), git
//! configuration from the environment (`GIT_CONFIG_*`), JVM options that
//! set proxy properties or read argument files, and variables that point
//! clients at another configuration file (`CURL_HOME`, `WGETRC`,
//! `PIP_CONFIG_FILE`, `npm_config_userconfig`) are refused. `envFrom`
//! imports names nobody sees at admission, so namespaces that enforce
//! injection refuse it on agents.
//!
//! An image's own files (a `.curlrc`, `.npmrc`, `.gitconfig` baked in) are
//! beyond admission: with a hostile image only transparent capture holds.

use k8s_openapi::api::core::v1::Container;

use super::bypass::Problem;
use super::template::PROXY_ENV;

/// JVM option variables: a proxy property or an `@argfile` in them
/// reroutes Java clients.
const JVM_OPTIONS: [&str; 6] = [
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "JAVA_OPTS",
    "MAVEN_OPTS",
    "GRADLE_OPTS",
];

/// Variables naming a configuration file (or the directory of one) a
/// client reads its proxy from (compared ignoring case).
const CONFIG_FILES: [&str; 8] = [
    "CURL_HOME",
    "WGETRC",
    "SYSTEM_WGETRC",
    "PIP_CONFIG_FILE",
    "NPM_CONFIG_USERCONFIG",
    "NPM_CONFIG_GLOBALCONFIG",
    "YARN_RC_FILENAME",
    "BUNDLE_CONFIG",
];

/// Every escape in container `c` (at `at`); `enforced` also refuses
/// `envFrom`.
pub fn check(at: &str, c: &Container, enforced: bool, out: &mut Vec<Problem>) {
    for (j, e) in c.env.iter().flatten().enumerate() {
        let name = e.name.as_str();
        if let Some(why) = escape(name, e.value.as_deref(), e.value_from.is_some()) {
            out.push(Problem {
                rule: "proxyEscapeEnv",
                path: format!("{at}.env[{j}]"),
                container: Some(c.name.clone()),
                message: format!(
                    "container {:?} sets {name}, which {why}, so its traffic could go around the sidecar; remove {name} from the container's env",
                    c.name
                ),
            });
        }
    }
    if enforced && c.env_from.as_ref().is_some_and(|v| !v.is_empty()) {
        out.push(Problem {
            rule: "envFrom",
            path: format!("{at}.envFrom"),
            container: Some(c.name.clone()),
            message: format!(
                "container {:?} imports environment variables with envFrom, whose names (ALL_PROXY, grpc_proxy, GIT_CONFIG_*, ...) cannot be checked at admission, and its namespace enforces injection; list the variables in env (valueFrom a ConfigMap or Secret key is fine) instead of envFrom",
                c.name
            ),
        });
    }
}

/// Why `name` (with this value) is an escape, if it is one.
fn escape(name: &str, value: Option<&str>, from_ref: bool) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if upper.contains("PROXY") && !PROXY_ENV.contains(&name) {
        return Some("names a proxy (or hosts that skip it) that some clients read");
    }
    if upper.starts_with("GIT_CONFIG") && upper != "GIT_CONFIG_NOSYSTEM" {
        return Some("configures git from the environment (http.proxy, includes)");
    }
    if CONFIG_FILES.contains(&upper.as_str()) {
        return Some("points a client at a configuration file that can set a proxy");
    }
    if JVM_OPTIONS.contains(&name) {
        if from_ref {
            return Some("is JVM options read from elsewhere, which can set proxy properties");
        }
        let v = value.unwrap_or("").to_ascii_lowercase();
        if v.contains("proxy") {
            return Some("sets JVM proxy properties");
        }
        if v.contains('@') {
            return Some("reads JVM options from an argument file, which can set proxy properties");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn every_spelling_of_a_proxy_variable_is_an_escape_but_the_injected_ones() {
        for name in [
            "ALL_PROXY",
            "all_proxy",
            "grpc_proxy",
            "GRPC_PROXY",
            "no_grpc_proxy",
            "PIP_PROXY",
            "npm_config_https_proxy",
            "NPM_CONFIG_PROXY",
            "npm_config_noproxy",
            "Https_Proxy",
            "GIT_PROXY_COMMAND",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "GIT_CONFIG_PARAMETERS",
            "GIT_CONFIG_GLOBAL",
            "CURL_HOME",
            "wgetrc",
            "npm_config_userconfig",
        ] {
            assert!(escape(name, Some("x"), false).is_some(), "{name}");
        }
        for name in [
            "HTTP_PROXY",
            "https_proxy",
            "NO_PROXY",
            "GIT_CONFIG_NOSYSTEM",
            "HOME",
            "JAVA_HOME",
        ] {
            assert!(escape(name, Some("x"), false).is_none(), "{name}");
        }
        let jvm = |v: &str| escape("JAVA_TOOL_OPTIONS", Some(v), false).is_some();
        assert!(jvm("-Dhttps.proxyHost=203.0.113.9 -Dhttps.proxyPort=80"));
        assert!(jvm("-DsocksProxyHost=evil"));
        assert!(jvm("@/tmp/opts"));
        assert!(!jvm("-Xmx512m"));
        assert!(escape("JDK_JAVA_OPTIONS", None, true).is_some());
    }
}
