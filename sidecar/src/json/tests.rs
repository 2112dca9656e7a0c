//! Strict parsing and sniffing, on the spellings lenient parsers accept.

use super::*;

#[test]
fn accepts_plain_json() {
    let v = parse_strict(br#"{"a":[1,2.5,"x",null,true],"b":{"c":-3}}"#, 8).unwrap();
    assert_eq!(v["a"][1], 2.5);
    assert_eq!(v["b"]["c"], -3);
}

#[test]
fn refuses_duplicate_keys_at_any_depth() {
    assert_eq!(
        parse_strict(br#"{"method":"tools/list","method":"tools/call"}"#, 8),
        Err(JsonError::DuplicateKey("method".into()))
    );
    assert_eq!(
        parse_strict(br#"{"params":{"arguments":{"p":"/a","p":"/b"}}}"#, 8),
        Err(JsonError::DuplicateKey("p".into()))
    );
    // Keys equal after unescaping are duplicates too.
    assert_eq!(
        parse_strict(br#"{"method":1,"\u006dethod":2}"#, 8),
        Err(JsonError::DuplicateKey("method".into()))
    );
    // A key that only looks like a marker is an ordinary key.
    let v = parse_strict(b"{\"\\u0001duplicate-key\\u0001x\":1}", 8).unwrap();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1));
}

#[test]
fn bounds_nesting() {
    let deep = format!("{}{}", "[".repeat(10), "]".repeat(10));
    assert!(parse_strict(deep.as_bytes(), 10).is_ok());
    assert_eq!(parse_strict(deep.as_bytes(), 9), Err(JsonError::TooDeep(9)));
    let very = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert_eq!(
        parse_strict(very.as_bytes(), 128),
        Err(JsonError::TooDeep(MAX_SUPPORTED_DEPTH))
    );
    let at_limit = format!(
        "{}{}",
        "[".repeat(MAX_SUPPORTED_DEPTH as usize),
        "]".repeat(MAX_SUPPORTED_DEPTH as usize)
    );
    assert!(parse_strict(at_limit.as_bytes(), 128).is_ok());
}

#[test]
fn refuses_what_lenient_parsers_accept() {
    for (body, what) in [
        (&b"{\"n\":NaN}"[..], "NaN"),
        (b"{\"n\":Infinity}", "Infinity"),
        (b"{\"n\":-Infinity}", "-Infinity"),
        (b"{\"n\":1e400}", "overflow"),
        (b"{\"n\":-1e400}", "negative overflow"),
        (b"{\"s\":\"\\ud800\"}", "lone high surrogate"),
        (b"{\"s\":\"\\udc00\"}", "lone low surrogate"),
        (b"{\"s\":\"\xff\"}", "invalid UTF-8"),
        (b"{\"s\":\"\xed\xa0\x80\"}", "encoded surrogate"),
        (b"{\"s\":\"a\x01\"}", "raw control character"),
        (b"{\"s\":'x'}", "single quotes"),
        (b"{s:1}", "bare key"),
        (b"{\"a\":1,}", "trailing comma"),
        (b"[1,]", "trailing comma in array"),
        (b"{\"n\":01}", "leading zero"),
        (b"{\"n\":+1}", "plus sign"),
        (b"{\"n\":.5}", "bare fraction"),
    ] {
        assert!(
            matches!(parse_strict(body, 8), Err(JsonError::Syntax(_))),
            "{what}"
        );
    }
}

#[test]
fn trailing_data_and_truncation_are_typed() {
    assert_eq!(parse_strict(b"{} {}", 8), Err(JsonError::TrailingData));
    assert_eq!(parse_strict(b"{}x", 8), Err(JsonError::TrailingData));
    assert_eq!(parse_strict(b"{\"a\":[1,", 8), Err(JsonError::Truncated));
    assert_eq!(parse_strict(b"", 8), Err(JsonError::Truncated));
    assert!(parse_strict(b"{} \n\t", 8).is_ok());
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(if big_endian {
            &[0xfe, 0xff]
        } else {
            &[0xff, 0xfe]
        });
    }
    for u in text.encode_utf16() {
        out.extend_from_slice(&if big_endian {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        });
    }
    out
}

fn utf32(text: &str, big_endian: bool) -> Vec<u8> {
    text.chars()
        .flat_map(|c| {
            let c = u32::from(c);
            if big_endian {
                c.to_be_bytes()
            } else {
                c.to_le_bytes()
            }
        })
        .collect()
}

#[test]
fn sniffs_json_in_every_encoding_python_detects() {
    let rpc = r#" {"jsonrpc":"2.0","id":1,"method":"tools/call"}"#;
    let cases: Vec<(Vec<u8>, Encoding)> = vec![
        (rpc.as_bytes().to_vec(), Encoding::Utf8),
        (
            [&[0xef, 0xbb, 0xbf][..], rpc.as_bytes()].concat(),
            Encoding::Utf8Bom,
        ),
        (utf16(rpc, false, false), Encoding::Utf16Le),
        (utf16(rpc, true, false), Encoding::Utf16Be),
        (utf16(rpc, false, true), Encoding::Utf16Le),
        (utf16(rpc, true, true), Encoding::Utf16Be),
        (utf32(rpc, false), Encoding::Utf32Le),
        (utf32(rpc, true), Encoding::Utf32Be),
    ];
    for (body, encoding) in cases {
        let s = sniff(&body);
        assert_eq!(
            s,
            Sniffed {
                encoding,
                json_like: true
            },
            "{encoding}"
        );
        let parsed = parse_body(&body, None, 8);
        if encoding == Encoding::Utf8 {
            assert!(matches!(parsed, Ok(Some(_))));
        } else {
            assert_eq!(parsed, Err(JsonError::Encoding(encoding)));
        }
    }
}

#[test]
fn bodies_that_do_not_look_like_json_pass() {
    for body in [
        &b""[..],
        b"hello",
        b"\"a string\"",
        b"42",
        b"a=1&b={}",
        b"\xef\xbb\xbfhello",
        b"\xff\xfeh\x00i\x00",
    ] {
        assert_eq!(parse_body(body, None, 8), Ok(None), "{body:?}");
    }
    // Whitespace lenient readers skip does not hide a JSON body.
    assert!(matches!(
        parse_body(b"\x0c\x0b\r\n\t [NaN]", None, 8),
        Err(JsonError::Syntax(_))
    ));
}

#[test]
fn json_in_another_declared_charset_is_refused() {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert!(matches!(parse_body(body, Some("UTF-8"), 8), Ok(Some(_))));
    assert!(matches!(parse_body(body, Some("\"utf8\""), 8), Ok(Some(_))));
    assert_eq!(
        parse_body(body, Some("utf-16"), 8),
        Err(JsonError::Charset("utf-16".into()))
    );
    assert_eq!(parse_body(b"hello", Some("utf-16"), 8), Ok(None));
    assert_eq!(
        content_type_charset("application/json; Charset=\"UTF-16\""),
        Some("\"UTF-16\"")
    );
    assert_eq!(content_type_charset("application/json"), None);
}
