//! Equivalent spellings of one host and of one path must get one decision.
//!
//! From the input, an IPv4 address (or a name) and a path are drawn; the
//! target then spells them the ways resolvers and servers accept
//! (inet_aton forms: 1 to 4 parts, decimal, octal, hexadecimal;
//! IPv4-mapped IPv6; trailing dot; case; percent-escapes; for paths:
//! escaped unreserved characters, `//`, `.`/`..`, `%2F`, `\`, `;param`) and
//! asserts that every spelling reduces to the same canonical host and
//! judged path, and that a policy denying the canonical host and path
//! decides every spelling the same way. Arbitrary input must never panic,
//! and canonical forms are fixed points.
#![no_main]

use std::net::Ipv4Addr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tollgate_policies::action::host::{policy_host, request_host};
use tollgate_policies::action::path::{PathStrictness, judge_path};
use tollgate_policies::action::{Action, ActionPolicy, Target};

/// The host spellings of an IPv4 address, chosen by `sel`.
fn v4_spellings(ip: Ipv4Addr, sel: &[u8]) -> Vec<String> {
    let n = u32::from(ip);
    let [a, b, c, d] = ip.octets();
    let part = |v: u32, style: u8| match style % 3 {
        0 => v.to_string(),
        1 => format!("0{v:o}"),
        _ => format!("0x{v:x}"),
    };
    let s = |i: usize| sel.get(i).copied().unwrap_or(0);
    let mut out = vec![
        part(n, s(0)),
        format!("{}.{}", part(a.into(), s(1)), part(n & 0xff_ffff, s(2))),
        format!(
            "{}.{}.{}",
            part(a.into(), s(3)),
            part(b.into(), s(4)),
            part(n & 0xffff, s(5))
        ),
        format!(
            "{}.{}.{}.{}",
            part(a.into(), s(6)),
            part(b.into(), s(7)),
            part(c.into(), s(8)),
            part(d.into(), s(9))
        ),
        format!("{ip}."),
        format!("[::ffff:{ip}]"),
        format!("[::ffff:{:x}:{:x}]", n >> 16, n & 0xffff),
        format!("[0:0:0:0:0:FFFF:{:X}:{:X}]", n >> 16, n & 0xffff),
        // Zero-padded parts are octal to inet_aton (`010` is 8).
        format!("{a:04o}.{b:04o}.{c:04o}.{d:04o}"),
    ];
    // Percent-escape one character of the dotted form.
    let dotted = ip.to_string();
    let at = usize::from(s(10)) % dotted.len();
    let mut escaped = String::new();
    for (i, ch) in dotted.chars().enumerate() {
        if i == at {
            escaped.push_str(&format!("%{:02x}", ch as u32));
        } else {
            escaped.push(ch);
        }
    }
    out.push(escaped);
    out
}

fn name_spellings(name: &str, sel: &[u8]) -> Vec<String> {
    let upper: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if sel.get(i % sel.len().max(1)).copied().unwrap_or(0) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let escaped: String = name
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            if i == 0 {
                format!("%{b:02X}")
            } else {
                char::from(b).to_string()
            }
        })
        .collect();
    vec![upper, format!("{name}."), escaped, format!("{}.", name.to_uppercase())]
}

/// Path spellings under normalize mode, from the plain segments.
fn path_spellings(segments: &[String], sel: &[u8]) -> Vec<String> {
    let s = |i: usize| sel.get(i).copied().unwrap_or(0);
    let plain = format!("/{}", segments.join("/"));
    let mut out = vec![plain.clone()];
    // Escape unreserved characters.
    out.push(
        plain
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                if b != b'/' && s(i) & 1 == 1 {
                    if s(i) & 2 == 2 {
                        format!("%{b:02x}")
                    } else {
                        format!("%{b:02X}")
                    }
                } else {
                    char::from(b).to_string()
                }
            })
            .collect(),
    );
    // Separators spelled differently.
    for sep in ["//", "/./", "/%2F", "/%2f", "\\", "%5C", "/x/../", "/%2e/", "/y/%2E%2E/"] {
        out.push(format!("/{}", segments.join(sep)));
    }
    // `;param` on one segment.
    if !segments.is_empty() {
        let at = usize::from(s(0)) % segments.len();
        let with: Vec<String> = segments
            .iter()
            .enumerate()
            .map(|(i, seg)| if i == at { format!("{seg};p=1") } else { seg.clone() })
            .collect();
        out.push(format!("/{}", with.join("/")));
    }
    out
}

fn decide(policy: &ActionPolicy, host: &str, path: &str) -> bool {
    let action = Action::http(Target {
        method: "GET".into(),
        scheme: "http".into(),
        host: host.to_owned(),
        port: 80,
        path: path.to_owned(),
        query: None,
    });
    policy.evaluate(&action, Instant::now()).allowed()
}

fuzz_target!(|data: &[u8]| {
    // Arbitrary text: no panic, canonical forms are fixed points.
    let text = String::from_utf8_lossy(data);
    if let Ok(h) = request_host(&text) {
        assert_eq!(request_host(&h).as_deref(), Ok(h.as_str()), "{text:?}");
        assert_eq!(policy_host(&h).as_deref(), Ok(h.as_str()), "{text:?}");
    }
    for mode in [PathStrictness::Refuse, PathStrictness::Normalize] {
        if let Ok(p) = judge_path(&text, mode) {
            assert_eq!(
                judge_path(&p, PathStrictness::Refuse).as_deref(),
                Ok(p.as_str()),
                "{text:?}"
            );
        }
    }
    if let Ok(strict) = judge_path(&text, PathStrictness::Refuse) {
        assert_eq!(
            judge_path(&text, PathStrictness::Normalize).as_deref(),
            Ok(strict.as_str()),
            "{text:?}"
        );
    }

    // Structured: one host, one path, many spellings.
    if data.len() < 6 {
        return;
    }
    let (head, sel) = data.split_at(6);
    let hosts = if head[0] & 1 == 0 {
        let ip = Ipv4Addr::new(head[1].max(1), head[2], head[3], head[4]);
        v4_spellings(ip, sel)
    } else {
        let label: String = sel
            .iter()
            .take(12)
            .map(|b| char::from(b'a' + b % 26))
            .collect();
        let name = format!("{}.example", if label.is_empty() { "x" } else { &label });
        name_spellings(&name, sel)
    };
    let segments: Vec<String> = sel
        .chunks(3)
        .take(usize::from(head[5] % 5) + 1)
        .map(|c| c.iter().map(|b| char::from(b'a' + b % 26)).collect())
        .collect();
    let paths = path_spellings(&segments, sel);

    let canonical_host = request_host(&hosts[0]);
    let Ok(canonical_host) = canonical_host else {
        return; // 0.0.0.0/8 and friends: every spelling must be refused too.
    };
    for h in &hosts {
        assert_eq!(request_host(h).as_deref(), Ok(canonical_host.as_str()), "{h:?}");
    }
    let canonical_path = judge_path(&paths[0], PathStrictness::Normalize).expect("plain path");
    for p in &paths {
        match judge_path(p, PathStrictness::Normalize) {
            Ok(j) => assert_eq!(j, canonical_path, "{p:?}"),
            Err(e) => panic!("{p:?} refused in normalize mode: {e}"),
        }
        if let Ok(j) = judge_path(p, PathStrictness::Refuse) {
            assert_eq!(j, canonical_path, "{p:?}");
        }
    }

    let policy_text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nspec:\n  rules:\n    - {{ name: no-host, effect: deny, match: {{ hosts: [\"{}\"] }} }}\n    - {{ name: no-path, effect: deny, match: {{ paths: [\"{}\"] }} }}\n    - {{ name: rest, effect: allow }}\n",
        hosts[hosts.len() - 1].replace('"', ""),
        canonical_path
    );
    let Ok(policy) = ActionPolicy::parse(&policy_text, "fuzz.yaml") else {
        return;
    };
    for h in &hosts {
        let judged = request_host(h).expect("checked above");
        assert!(!decide(&policy, &judged, "/elsewhere/z"), "{h:?} escaped the host rule");
    }
    for p in &paths {
        let judged = judge_path(p, PathStrictness::Normalize).expect("checked above");
        assert!(!decide(&policy, "other.example", &judged), "{p:?} escaped the path rule");
    }
});
