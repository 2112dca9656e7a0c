use super::*;

use PathStrictness::{Normalize, Refuse};

#[test]
fn plain_paths_are_judged_as_sent() {
    for p in [
        "/",
        "/admin",
        "/admin/",
        "/a/b.c/d-e_f~g",
        "/x%20y",
        "/x%3By",
        "*",
    ] {
        assert_eq!(judge_path(p, Refuse).as_deref(), Ok(p), "{p}");
        assert_eq!(judge_path(p, Normalize).as_deref(), Ok(p), "{p}");
    }
}

#[test]
fn unreserved_escapes_are_decoded_and_others_uppercased() {
    for (raw, want) in [
        ("/%61dmin", "/admin"),
        ("/%41DMIN", "/ADMIN"),
        ("/x%3by", "/x%3By"),
        ("/x%7e", "/x~"),
        ("/100%25", "/100%25"),
        ("/caf\u{e9}", "/caf\u{e9}"),
    ] {
        assert_eq!(judge_path(raw, Refuse).as_deref(), Ok(want), "{raw}");
        assert_eq!(judge_path(raw, Normalize).as_deref(), Ok(want), "{raw}");
    }
}

#[test]
fn ambiguous_spellings_are_refused_in_refuse_mode_and_reduced_in_normalize_mode() {
    for (raw, want) in [
        ("/web//admin/x", "/web/admin/x"),
        ("//admin", "/admin"),
        ("/web/admin%2fx", "/web/admin/x"),
        ("/web/admin%2Fx", "/web/admin/x"),
        ("/web%5cadmin", "/web/admin"),
        ("/web\\admin", "/web/admin"),
        ("/admin;jsessionid=1/x", "/admin/x"),
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E./admin", "/admin"),
        ("/./admin", "/admin"),
        ("/admin/.", "/admin/"),
        ("/public/..;/admin", "/admin"),
        ("/public/..%2fadmin", "/admin"),
    ] {
        assert!(
            matches!(judge_path(raw, Refuse), Err(PathError::Ambiguous { .. })),
            "{raw} was not refused"
        );
        assert_eq!(judge_path(raw, Normalize).as_deref(), Ok(want), "{raw}");
    }
}

#[test]
fn some_spellings_are_refused_in_every_mode() {
    for raw in [
        "/admin%252fx",
        "/%252e%252e/admin",
        "/a%",
        "/a%2",
        "/a%zz",
        "/a%00b",
        "/a%0ab",
        "/a\tb",
        "/..",
        "/a/../../b",
        "admin",
        "",
    ] {
        assert!(judge_path(raw, Refuse).is_err(), "{raw:?} refuse");
        assert!(judge_path(raw, Normalize).is_err(), "{raw:?} normalize");
    }
}

#[test]
fn refuse_mode_agrees_with_normalize_mode_whenever_it_answers() {
    let parts = [
        "a", "admin", "", ".", "..", "%2e", "%2F", "%5c", "\\", ";x", "%61", "%25", "%3B", "%",
    ];
    for a in parts {
        for b in parts {
            for c in parts {
                let raw = format!("/{a}/{b}{c}");
                if let Ok(strict) = judge_path(&raw, Refuse) {
                    assert_eq!(Ok(strict.clone()), judge_path(&raw, Normalize), "{raw}");
                    // The judged form is a fixed point.
                    assert_eq!(judge_path(&strict, Refuse), Ok(strict.clone()), "{raw}");
                }
                if let Ok(normal) = judge_path(&raw, Normalize) {
                    assert_eq!(judge_path(&normal, Refuse), Ok(normal.clone()), "{raw}");
                }
            }
        }
    }
}
