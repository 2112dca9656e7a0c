//! Validation of `deployscope.dev/*` annotation values. Each validator
//! returns `None` for a valid value, or what is wrong with it.

use super::{Key, Tier};

/// Longest value accepted for free-text keys (owner, oncall).
const MAX_TEXT: usize = 253;
/// Longest DNS-1123 subdomain.
const MAX_SUBDOMAIN: usize = 253;
/// Longest DNS-1123 label.
const MAX_LABEL: usize = 63;

/// What is wrong with `value` for `key`, or `None` when it is valid.
pub(crate) fn problem(key: Key, value: &str) -> Option<String> {
    if value.trim().is_empty() {
        return Some("is empty".into());
    }
    if value.chars().any(char::is_control) {
        return Some("contains control characters".into());
    }
    match key {
        Key::Owner | Key::Oncall => text(value),
        Key::Tier => match value.parse::<Tier>() {
            Ok(_) => None,
            Err(_) => Some(format!(
                "{value:?} is not a tier; use one of critical, standard, best-effort"
            )),
        },
        Key::GitopsRepo => repository(value),
        Key::GitopsPath => relative_path(value),
        Key::Runbook | Key::Dashboard => http_url(value),
        Key::DependsOn => dependency_list(value),
        Key::Ignore => match value {
            "true" | "false" => None,
            _ => Some(format!(
                "{value:?} is not a boolean; use \"true\" or \"false\""
            )),
        },
    }
}

fn text(value: &str) -> Option<String> {
    if value.chars().count() > MAX_TEXT {
        return Some(format!("is longer than {MAX_TEXT} characters"));
    }
    if value != value.trim() {
        return Some("has leading or trailing spaces".into());
    }
    None
}

/// An http(s) URL with a host, without spaces.
fn http_url(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Some(format!("{value:?} is not an http(s) URL"));
    };
    if value.chars().any(char::is_whitespace) {
        return Some(format!("{value:?} contains spaces"));
    }
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default();
    let host_name = host.split(':').next().unwrap_or_default();
    if host_name.is_empty() && !host.starts_with('[') {
        return Some(format!("{value:?} has no host"));
    }
    None
}

/// A repository reference: a URL (`https://`, `ssh://`, `git://`), an scp-like
/// `user@host:path`, or `host/path` with a dotted host.
fn repository(value: &str) -> Option<String> {
    if value.chars().any(char::is_whitespace) {
        return Some(format!("{value:?} contains spaces"));
    }
    let bad = || {
        Some(format!(
            "{value:?} is not a repository; use e.g. github.com/org/infra or https://github.com/org/infra.git"
        ))
    };
    if let Some((scheme, rest)) = value.split_once("://") {
        let known = ["https", "http", "ssh", "git"];
        if !known.contains(&scheme.to_ascii_lowercase().as_str()) {
            return bad();
        }
        let host = rest.split('/').next().unwrap_or_default();
        let has_path = rest.split_once('/').is_some_and(|(_, p)| !p.is_empty());
        return if host.is_empty() || !has_path {
            bad()
        } else {
            None
        };
    }
    if let Some((user_host, path)) = value.split_once(':') {
        // scp-like: git@github.com:org/infra.git
        let host = user_host.rsplit('@').next().unwrap_or_default();
        return if host.contains('.') && !path.is_empty() && !path.starts_with('/') {
            None
        } else {
            bad()
        };
    }
    match value.split_once('/') {
        Some((host, path)) if host.contains('.') && !path.is_empty() => None,
        _ => bad(),
    }
}

/// A relative path inside a repository: not absolute, no `..`, forward
/// slashes.
fn relative_path(value: &str) -> Option<String> {
    if value.starts_with('/') {
        return Some(format!(
            "{value:?} is absolute; give the path relative to the repository root, e.g. clusters/prod/payments/"
        ));
    }
    if value.contains('\\') {
        return Some(format!("{value:?} uses backslashes; use forward slashes"));
    }
    if value.split('/').any(|seg| seg == "..") {
        return Some(format!(
            "{value:?} leaves the repository with \"..\"; give the path from the repository root"
        ));
    }
    if value != value.trim() {
        return Some("has leading or trailing spaces".into());
    }
    None
}

/// A comma list of DNS-1123 names (spaces after commas allowed).
fn dependency_list(value: &str) -> Option<String> {
    let bad: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|name| !dns1123_subdomain(name))
        .map(|name| format!("{name:?}"))
        .collect();
    if bad.is_empty() {
        None
    } else {
        Some(format!(
            "{} {} not DNS-1123 name{} (lower-case letters, digits, '-' and '.'; no empty entries)",
            bad.join(", "),
            if bad.len() == 1 { "is" } else { "are" },
            if bad.len() == 1 { "" } else { "s" }
        ))
    }
}

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, 253 characters at
/// most (a single label, like a Service name, is one).
pub(crate) fn dns1123_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_SUBDOMAIN && name.split('.').all(dns1123_label)
}

/// A DNS-1123 label: 1 to 63 lower-case alphanumerics or '-', starting and
/// ending alphanumeric.
fn dns1123_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(key: Key, value: &str) -> bool {
        problem(key, value).is_none()
    }

    #[test]
    fn urls() {
        assert!(ok(Key::Runbook, "https://wiki.internal/auth-runbook"));
        assert!(ok(Key::Dashboard, "http://grafana:3000/d/x?var=1#p"));
        assert!(ok(Key::Runbook, "HTTPS://Wiki.Example.com"));
        assert!(!ok(Key::Runbook, "wiki.internal/runbook"));
        assert!(!ok(Key::Runbook, "ftp://wiki"));
        assert!(!ok(Key::Runbook, "https:///path"));
        assert!(!ok(Key::Runbook, "https://wiki/a b"));
        assert!(!ok(Key::Dashboard, "javascript:alert(1)"));
    }

    #[test]
    fn repositories() {
        for good in [
            "github.com/org/infra",
            "https://github.com/org/infra.git",
            "ssh://git@gitlab.example.com/org/infra.git",
            "git@github.com:org/infra.git",
        ] {
            assert!(ok(Key::GitopsRepo, good), "{good}");
        }
        for bad in [
            "infra",
            "org/infra",
            "https://github.com",
            "file:///etc/passwd",
            "git@github.com:",
            "a b/c",
        ] {
            assert!(!ok(Key::GitopsRepo, bad), "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert!(ok(Key::GitopsPath, "clusters/prod/auth/"));
        assert!(ok(Key::GitopsPath, "./apps"));
        assert!(ok(Key::GitopsPath, "a..b/c"));
        assert!(!ok(Key::GitopsPath, "/clusters/prod"));
        assert!(!ok(Key::GitopsPath, "clusters/../../etc"));
        assert!(!ok(Key::GitopsPath, ".."));
        assert!(!ok(Key::GitopsPath, "clusters\\prod"));
    }

    #[test]
    fn dependencies() {
        assert!(ok(Key::DependsOn, "postgres-platform,redis-shared"));
        assert!(ok(Key::DependsOn, "postgres-platform, redis.shared"));
        assert!(!ok(Key::DependsOn, "Postgres"));
        assert!(!ok(Key::DependsOn, "a,,b"));
        assert!(!ok(Key::DependsOn, "a,"));
        assert!(!ok(Key::DependsOn, "-a"));
        assert!(!ok(Key::DependsOn, &"a".repeat(64)));
        let msg = problem(Key::DependsOn, "ok,Bad,also_bad").unwrap();
        assert!(msg.contains("\"Bad\", \"also_bad\" are not"), "{msg}");
    }

    #[test]
    fn enums_and_text() {
        assert!(ok(Key::Tier, "best-effort"));
        assert!(!ok(Key::Tier, "gold"));
        assert!(!ok(Key::Tier, "Critical"));
        assert!(ok(Key::Ignore, "false"));
        assert!(!ok(Key::Ignore, "yes"));
        assert!(ok(Key::Owner, "team-platform"));
        assert!(!ok(Key::Owner, "  "));
        assert!(!ok(Key::Owner, " team"));
        assert!(!ok(Key::Oncall, "a\nb"));
        assert!(!ok(Key::Owner, &"x".repeat(254)));
    }
}
