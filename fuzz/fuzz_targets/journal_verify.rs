//! Journal verification on hostile segment content: arbitrary bytes, and
//! arbitrary edits (overwrites, deletions, insertions, truncation) of a
//! valid signed segment. Verification must never panic, must report
//! exactly "intact" when it finds no problem, and must not call an edited
//! segment intact unless the edit left its bytes unchanged.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_audit::keys::{SigningKey, VerifyingKey};
use tollgate_audit::record::{self, Checkpoint};
use tollgate_audit::verify::{Verdict, verify_bytes};

/// RFC 8410 section 10.3 example Ed25519 key (PKCS#8 v1 DER).
const KEY: [u8; 48] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    0xd4, 0xee, 0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1, 0xf7, 0x69, 0xf8, 0xad,
    0x3a, 0xfe, 0x7c, 0x28, 0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97, 0xa8, 0x8f, 0x44, 0x75, 0x58, 0x42,
];

fn fixture() -> &'static (Vec<u8>, VerifyingKey) {
    static FIXTURE: OnceLock<(Vec<u8>, VerifyingKey)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::from_pkcs8(&KEY, Path::new("fixture")).expect("fixture key");
        let mut out = Vec::new();
        let mut prev = record::GENESIS;
        let mut seq = 0;
        let time = "2025-01-01T00:00:00Z";
        for n in 0..12u64 {
            seq += 1;
            let event = format!(
                r#"{{"schema":"tollgate.audit/v1","id":"id-{n}","source":"{}","action":{{"verb":"v","attributes":{{}}}}}}"#,
                if n == 5 { "journal" } else { "sidecar" }
            );
            prev = record::encode_event(&mut out, seq, time, &prev, event.as_bytes());
            if n % 4 == 3 {
                let head_hash = record::hex(&prev);
                let message = record::checkpoint_message(seq, &head_hash, time, false, key.id());
                let cp = Checkpoint {
                    head_seq: seq,
                    head_hash,
                    time: time.into(),
                    seal: false,
                    reason: "records".into(),
                    key_id: key.id().into(),
                    signature: base64_encode(&key.sign(&message)),
                };
                seq += 1;
                prev = record::encode_checkpoint(&mut out, seq, time, &prev, &cp);
            }
        }
        (out, key.verifying_key())
    })
}

fn base64_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let (valid, public) = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let report = verify_bytes(rest, 1, vec![public.clone()]);
        assert_eq!(report.verdict == Verdict::Intact, report.problems.is_empty());
        return;
    }
    // Apply edits: each 4 bytes = (kind, position hi, position lo, value).
    let mut edited = valid.clone();
    for op in rest.chunks_exact(4) {
        let pos = (usize::from(op[1]) << 8 | usize::from(op[2])) % (edited.len() + 1);
        match op[0] % 4 {
            0 if pos < edited.len() => edited[pos] = op[3],
            1 if pos < edited.len() => {
                edited.remove(pos);
            }
            2 => edited.insert(pos, op[3]),
            3 => edited.truncate(pos),
            _ => {}
        }
    }
    let report = verify_bytes(&edited, 1, vec![public.clone()]);
    assert_eq!(report.verdict == Verdict::Intact, report.problems.is_empty());
    if report.verdict == Verdict::Intact && edited != *valid {
        // Only a cut after the last checkpoint, possibly followed by a torn
        // final line (a crash mid-write), may pass: without that
        // incomplete line, what is left is a prefix of the original.
        let complete = match edited.iter().rposition(|b| *b == b'\n') {
            Some(i) => &edited[..=i],
            None => &edited[..0],
        };
        assert!(
            valid.starts_with(complete),
            "an edited segment verified as intact"
        );
    }
});
