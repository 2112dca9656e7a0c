//! Secret redaction: every event is scrubbed before it is written, so the
//! journal, the archive and every SIEM only ever hold `[REDACTED]` where a
//! bearer token, API key, JWT, private key or password was.
//!
//! Two mechanisms, both recorded in [`Event::redactions`] by kind:
//! - **patterns** over every free-text field (target, reason, attribute
//!   strings): `Authorization` headers, bearer tokens, JWTs, PEM private keys,
//!   passwords in URLs, secret query/form parameters, JSON text with secret
//!   fields, and the token formats of common providers (OpenAI, Anthropic,
//!   AWS, GitHub, GitLab, Slack, Google, Stripe, Hugging Face, npm, SendGrid);
//! - **field names** in attribute maps: the value of any key that names a
//!   secret (`password`, `client_secret`, `x-api-key`, `id_token`,
//!   `cookie`, ...) is replaced whatever its type. Counters such as
//!   `max_tokens` are not secrets and are kept.
//!
//! Redaction is one-way by design: nothing is kept that could restore a
//! secret, not even a hash of it.

use std::collections::BTreeSet;

use regex::{Regex, RegexSet};
use serde_json::{Map, Value};

use crate::Event;
use crate::config::RedactionSettings;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Attribute nesting deeper than this is replaced as a whole (and recorded
/// as `depth-limit`), so a hostile producer input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// One pattern: its kind (as recorded), the expression, and the
/// replacement (`$1` keeps a non-secret prefix such as `Bearer `).
struct Rule {
    kind: &'static str,
    regex: Regex,
    replacement: &'static str,
}

/// Key names that hold secrets, as they appear in query strings, form
/// bodies, environment assignments and header lines: any name ending in
/// one of the long forms (`DB_PASSWORD`, `x_auth_token`,
/// `X-Goog-Signature`, `AWS_SECRET_ACCESS_KEY`), or one of the short names
/// exactly (`key`, `code`, `sig`, `pwd`, `auth`).
macro_rules! secret_name {
    () => {
        concat!(
            r"(?:[A-Za-z0-9_.\-]*(?:token|secret|password|passwd|passphrase|pwd|api[_-]?key",
            r"|access[_-]?key|private[_-]?key|signature|credential|session[_-]?id|assertion|auth)",
            r"|key|code|sig|pass|jwt)"
        )
    };
}

/// The built-in patterns, in the order they are applied. Earlier rules win
/// over later ones on the same text (a JWT after `Bearer ` is recorded as a
/// bearer token). Replaced values never start with `[`, so text already
/// redacted is left alone and redaction is idempotent.
const PATTERNS: &[(&str, &str, &str)] = &[
    (
        "private-key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
        "[REDACTED:private-key]",
    ),
    (
        "authorization-header",
        r#"(?i)\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(?:basic|bearer|token|digest|splunk|apikey|negotiate)\s+)?[^\s"',;&\[][^\s"',;&]*"#,
        "${1}[REDACTED]",
    ),
    (
        "secret-header",
        concat!(
            r#"(?i)(^|[\s"'{(,;])("#,
            secret_name!(),
            r#"|cookie|set-cookie)(\s*:[ \t]*(?:(?:basic|bearer|token|digest|apikey)[ \t]+)?)[^\s"',;\[][^\r\n"',]*"#
        ),
        "${1}${2}${3}[REDACTED]",
    ),
    (
        "bearer-token",
        r"(?i)\b((?:bearer|token)\s+)[A-Za-z0-9\-._~+/]{16,}=*|\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*",
        "${1}${2}[REDACTED]",
    ),
    (
        "jwt",
        r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        "[REDACTED:jwt]",
    ),
    (
        "url-password",
        r"\b([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]+:)[^\s/?#@\[][^\s/?#@]*@",
        "${1}[REDACTED]@",
    ),
    (
        "api-key",
        // Provider formats are matched inside identifiers too
        // (`deploy_AKIA...`); the `sk-`/`sk_` families, which occur inside
        // ordinary words (`task-`, `risk_`), only after a non-alphanumeric.
        concat!(
            r"(^|[^A-Za-z0-9])(?:sk-ant-[A-Za-z0-9_\-]{20,}",
            r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
            r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})",
            r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
            r"|gh[pousr]_[A-Za-z0-9]{36,}",
            r"|github_pat_[A-Za-z0-9_]{22,}",
            r"|glpat-[A-Za-z0-9_\-]{20,}",
            r"|xox[abposr]-[A-Za-z0-9\-]{10,}",
            r"|AIza[0-9A-Za-z_\-]{35}",
            r"|hf_[A-Za-z0-9]{30,}",
            r"|npm_[A-Za-z0-9]{36}",
            r"|SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"
        ),
        "${1}[REDACTED:api-key]",
    ),
    (
        "secret-parameter",
        concat!(
            r#"(?i)(^|[?&;,\s"'{(#])("#,
            secret_name!(),
            r#"=)[^&\s"'#;,\[][^&\s"'#;,]*"#
        ),
        "${1}${2}[REDACTED]",
    ),
    (
        "json-secret-field",
        r#"(?i)("[A-Za-z0-9_\-]*(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|private[_-]?key|credential|authorization|cookie|signature)"\s*:\s*)"(?:[^"\\\[]|\\.)(?:[^"\\]|\\.)*""#,
        r#"${1}"[REDACTED]""#,
    ),
];

/// Normalised key names (lower-case, alphanumerics only) whose values are
/// secrets. A key matches when its normalised form ends with one of these,
/// so `x-api-key`, `client_secret` and `csrfToken` match while
/// `max_tokens` (ends in `tokens`) does not.
const SECRET_KEY_SUFFIXES: &[&str] = &[
    "password",
    "pwd",
    "auth",
    "signature",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "authorization",
    "cookie",
    "credential",
    "credentials",
    "sessionid",
];

/// Scrubs secrets from events. Build once and share; it is immutable.
pub struct Redactor {
    set: RegexSet,
    rules: Vec<Rule>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Redactor {
    /// The built-in rules plus `extra` patterns (each `(kind, regex)`,
    /// replaced with `[REDACTED:kind]`), from the configuration.
    pub fn new(extra: &[(String, String)]) -> Result<Redactor, regex::Error> {
        let mut rules = Vec::with_capacity(PATTERNS.len() + extra.len());
        for (kind, pattern, replacement) in PATTERNS {
            rules.push(Rule {
                kind,
                regex: Regex::new(pattern)?,
                replacement,
            });
        }
        for (kind, pattern) in extra {
            // Leaked once per configured pattern at start-up: the kind and
            // replacement live as long as the process, like the built-ins.
            let kind: &'static str = Box::leak(kind.clone().into_boxed_str());
            let replacement: &'static str =
                Box::leak(format!("[REDACTED:{kind}]").into_boxed_str());
            rules.push(Rule {
                kind,
                regex: Regex::new(pattern)?,
                replacement,
            });
        }
        let set = RegexSet::new(rules.iter().map(|r| r.regex.as_str()))?;
        Ok(Redactor { set, rules })
    }

    /// The built-in rules plus the configured `audit.redaction.patterns`:
    /// the one redactor every recorder (journal, JSON lines, `audit tail`)
    /// builds from the same configuration.
    pub fn from_settings(settings: &RedactionSettings) -> Result<Redactor, regex::Error> {
        let extra: Vec<(String, String)> = settings
            .patterns
            .iter()
            .map(|p| (p.kind.clone(), p.regex.clone()))
            .collect();
        Redactor::new(&extra)
    }

    /// Redacts `text`, adding the kinds found to `kinds`. Returns `None`
    /// when nothing matched (the common case, one scan).
    ///
    /// Text with percent-escapes (a query string, a form body) is also
    /// judged decoded, up to [`MAX_DECODE_ROUNDS`] times over, since
    /// `DB_PASSWORD%3Dhunter2` is the same secret; when the decoded form
    /// holds one, the decoded form is what is kept, redacted.
    pub fn redact_text(&self, text: &str, kinds: &mut BTreeSet<String>) -> Option<String> {
        if text.contains('%') {
            let mut decoded = std::borrow::Cow::Borrowed(text);
            for _ in 0..MAX_DECODE_ROUNDS {
                match percent_decode(&decoded) {
                    Some(next) => decoded = std::borrow::Cow::Owned(next),
                    None => break,
                }
            }
            if decoded != text && self.set.is_match(&decoded) {
                let decoded = decoded.into_owned();
                return Some(self.redact_plain(&decoded, kinds).unwrap_or(decoded));
            }
        }
        self.redact_plain(text, kinds)
    }

    fn redact_plain(&self, text: &str, kinds: &mut BTreeSet<String>) -> Option<String> {
        let matches = self.set.matches(text);
        if !matches.matched_any() {
            return None;
        }
        let mut out = text.to_owned();
        for index in matches.iter() {
            let Some(rule) = self.rules.get(index) else {
                continue;
            };
            // An earlier rule may already have removed this match.
            if let std::borrow::Cow::Owned(replaced) =
                rule.regex.replace_all(&out, rule.replacement)
            {
                out = replaced;
                kinds.insert(rule.kind.to_owned());
            }
        }
        Some(out)
    }

    fn redact_string(&self, text: &mut String, kinds: &mut BTreeSet<String>) {
        if let Some(redacted) = self.redact_text(text, kinds) {
            *text = redacted;
        }
    }

    fn redact_option(&self, text: &mut Option<String>, kinds: &mut BTreeSet<String>) {
        if let Some(text) = text {
            self.redact_string(text, kinds);
        }
    }

    /// Redacts a JSON value in place: secret-named keys lose their values,
    /// strings are scanned, nesting beyond [`MAX_DEPTH`] is cut.
    pub fn redact_value(&self, value: &mut Value, kinds: &mut BTreeSet<String>) {
        self.redact_value_at(value, kinds, 0);
    }

    fn redact_value_at(&self, value: &mut Value, kinds: &mut BTreeSet<String>, depth: usize) {
        if depth >= MAX_DEPTH {
            if value.is_array() || value.is_object() {
                *value = Value::String("[REDACTED:depth-limit]".to_owned());
                kinds.insert("depth-limit".to_owned());
            }
            return;
        }
        match value {
            Value::String(text) => self.redact_string(text, kinds),
            Value::Array(items) => {
                for item in items {
                    self.redact_value_at(item, kinds, depth + 1);
                }
            }
            Value::Object(map) => self.redact_map_at(map, kinds, depth + 1),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn redact_map_at(
        &self,
        map: &mut Map<String, Value>,
        kinds: &mut BTreeSet<String>,
        depth: usize,
    ) {
        // Keys come from the same input as values (tool arguments), so a
        // secret used as a key is replaced too; rare, so only then is the
        // map rebuilt.
        // (Percent-encoded keys are looked through like values.)
        if map.keys().any(|k| {
            self.set.is_match(k)
                || (k.contains('%') && self.redact_text(k, &mut BTreeSet::new()).is_some())
        }) {
            let old = std::mem::take(map);
            for (key, value) in old {
                let mut key = self.redact_text(&key, kinds).unwrap_or(key);
                while map.contains_key(&key) {
                    key.push('\'');
                }
                map.insert(key, value);
            }
        }
        for (key, value) in map.iter_mut() {
            if is_secret_key(key) && !matches!(value, Value::Null | Value::Bool(_)) {
                let already = value.as_str() == Some(REDACTED);
                if !already {
                    *value = Value::String(REDACTED.to_owned());
                    kinds.insert("secret-field".to_owned());
                }
                continue;
            }
            self.redact_value_at(value, kinds, depth);
        }
    }

    /// Redacts every free-text field of `event` and records the kinds found
    /// in `event.redactions` (sorted, merged with kinds already there).
    pub fn redact_event(&self, event: &mut Event) {
        // The journal's own notices and checkpoints hold no user input, and
        // their hashes and signatures are signed material: a "redacted"
        // signature would make an exported checkpoint useless as an anchor.
        if event.source == crate::Source::Journal {
            return;
        }
        let mut kinds: BTreeSet<String> = event.redactions.drain(..).collect();
        // Every string that can come from outside: only the schema, id,
        // time and the enumerations are the recorder's own.
        let actor = &mut event.actor;
        self.redact_option(&mut actor.user, &mut kinds);
        for group in &mut actor.groups {
            self.redact_string(group, &mut kinds);
        }
        self.redact_option(&mut actor.service_account, &mut kinds);
        self.redact_option(&mut actor.pod, &mut kinds);
        self.redact_option(&mut actor.namespace, &mut kinds);
        self.redact_option(&mut actor.agent, &mut kinds);
        let ownership = &mut event.ownership;
        self.redact_option(&mut ownership.owner, &mut kinds);
        self.redact_option(&mut ownership.tier, &mut kinds);
        self.redact_option(&mut ownership.oncall, &mut kinds);
        let action = &mut event.action;
        self.redact_string(&mut action.protocol, &mut kinds);
        self.redact_string(&mut action.verb, &mut kinds);
        self.redact_string(&mut action.target, &mut kinds);
        self.redact_map_at(&mut action.attributes, &mut kinds, 1);
        let decision = &mut event.decision;
        self.redact_option(&mut decision.rule, &mut kinds);
        self.redact_option(&mut decision.reason, &mut kinds);
        for control in &mut decision.controls {
            self.redact_string(control, &mut kinds);
        }
        event.redactions = kinds.into_iter().collect();
    }
}

/// How many layers of percent-encoding are looked through.
pub const MAX_DECODE_ROUNDS: usize = 4;

/// `text` with its `%XX` escapes decoded (invalid UTF-8 replaced), or
/// `None` when it has none.
fn percent_decode(text: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            changed = true;
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Normalised key names whose values are secrets only as the whole name
/// (`key` is, `sortkey` is not).
const SECRET_KEY_NAMES: &[&str] = &["key", "pass", "sig", "jwt"];

/// Whether an attribute key names a secret (see [`SECRET_KEY_SUFFIXES`]
/// and [`SECRET_KEY_NAMES`]).
pub fn is_secret_key(key: &str) -> bool {
    let normalised: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_KEY_NAMES.contains(&normalised.as_str())
        || SECRET_KEY_SUFFIXES
            .iter()
            .any(|suffix| normalised.ends_with(suffix))
}

#[cfg(test)]
mod tests;
