//! Verification of hand-built segments: what passes, what is caught, and
//! where it is reported.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::keys::SigningKey;
use crate::record::{
    Checkpoint, EventHead, Hash, checkpoint_message, encode_checkpoint, encode_event, hex,
};

/// RFC 8410 section 10.3 example key.
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";

fn key() -> SigningKey {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(KEY_PEM.as_bytes()).unwrap();
    SigningKey::from_pkcs8(der.secret_pkcs8_der(), Path::new("test")).unwrap()
}

use rustls_pki_types::pem::PemObject;

struct Builder {
    out: Vec<u8>,
    prev: Hash,
    seq: u64,
    key: SigningKey,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            out: Vec::new(),
            prev: record::GENESIS,
            seq: 0,
            key: key(),
        }
    }

    fn event(&mut self, id: &str) -> &mut Self {
        self.seq += 1;
        let json = format!(r#"{{"id":"{id}","source":"sidecar","action":{{"verb":"x"}}}}"#);
        self.prev = encode_event(&mut self.out, self.seq, "t", &self.prev, json.as_bytes());
        self
    }

    fn notice(&mut self, verb: &str, attributes: serde_json::Value) -> &mut Self {
        self.seq += 1;
        let json = serde_json::json!({
            "id": format!("n{}", self.seq),
            "source": "journal",
            "action": {"verb": verb, "attributes": attributes},
            "decision": {"reason": "r"},
        });
        self.prev = encode_event(
            &mut self.out,
            self.seq,
            "t",
            &self.prev,
            json.to_string().as_bytes(),
        );
        self
    }

    fn checkpoint(&mut self, seal: bool) -> &mut Self {
        let head_hash = hex(&self.prev);
        let message = checkpoint_message(self.seq, &head_hash, "t", seal, self.key.id());
        let cp = Checkpoint {
            head_seq: self.seq,
            head_hash,
            time: "t".into(),
            seal,
            reason: "records".into(),
            key_id: self.key.id().into(),
            signature: STANDARD.encode(self.key.sign(&message)),
        };
        self.seq += 1;
        self.prev = encode_checkpoint(&mut self.out, self.seq, "t", &self.prev, &cp);
        self
    }

    /// A builder continuing this one's chain (same position and key).
    fn clone_state(&self) -> Builder {
        Builder {
            out: self.out.clone(),
            prev: self.prev,
            seq: self.seq,
            key: key(),
        }
    }

    fn lines(&self) -> Vec<Vec<u8>> {
        self.out
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }
}

fn check(bytes: &[u8]) -> Report {
    check_from(bytes, 1)
}

fn check_from(bytes: &[u8], first_seq: u64) -> Report {
    verify_bytes(bytes, first_seq, vec![key().verifying_key()])
}

#[test]
fn an_untouched_segment_is_intact() {
    let mut b = Builder::new();
    b.event("a").event("b").checkpoint(false).event("c");
    let r = check(&b.out);
    assert_eq!(r.verdict, Verdict::Intact, "{r:#?}");
    assert_eq!(
        (r.records, r.events, r.checkpoints, r.uncovered),
        (4, 3, 1, 1)
    );
    assert_eq!(r.last_checkpoint, Some(2));
}

#[test]
fn insertion_duplication_and_replacement_are_caught_where_they_happen() {
    let mut b = Builder::new();
    b.event("a").event("b").event("c").event("d");
    let lines = b.lines();
    let offset = |i: usize| lines[..i].iter().map(|l| l.len() as u64).sum::<u64>();
    // Duplicate record 2 after itself.
    let dup: Vec<u8> = [&lines[0][..], &lines[1], &lines[1], &lines[2], &lines[3]].concat();
    let r = check(&dup);
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(
        (r.problems[0].offset, r.problems[0].seq),
        (offset(2), Some(2))
    );
    assert!(
        r.problems[0].reason.contains("reordered or duplicated"),
        "{r:#?}"
    );
    // Replace record 2 by a well-formed record from another chain: caught
    // at the forged record itself.
    let mut other = Builder::new();
    other.event("x").event("forged");
    let forged: Vec<u8> = [&lines[0][..], &other.lines()[1], &lines[2], &lines[3]].concat();
    let r = check(&forged);
    assert_eq!(r.problems[0].id.as_deref(), Some("forged"), "{r:#?}");
    assert!(r.problems[0].reason.contains("does not chain"), "{r:#?}");
    // A replacement that links to its predecessor (same prev, new content,
    // fresh hash) shows at the next record, whose link it breaks.
    let mut other = Builder::new();
    other.event("a").event("forged");
    let forged: Vec<u8> = [&lines[0][..], &other.lines()[1], &lines[2], &lines[3]].concat();
    let r = check(&forged);
    assert_eq!(
        (r.problems[0].seq, r.problems[0].id.as_deref()),
        (Some(3), Some("c")),
        "{r:#?}"
    );
    assert!(
        r.problems[0].reason.contains("does not chain to record 2"),
        "{r:#?}"
    );
}

#[test]
fn a_chain_not_starting_at_genesis_is_caught() {
    let mut b = Builder::new();
    b.event("a").event("b");
    let lines = b.lines();
    // Only record 2: a gap from the start no notice accounts for.
    let r = check_from(&lines[1], 2);
    assert_eq!(r.verdict, Verdict::Tampered, "{r:#?}");
    assert!(
        r.problems[0].reason.contains("records 1..1 are missing"),
        "{r:#?}"
    );
    // Named for record 1 but starting at 2: renamed.
    let r = check(&lines[1]);
    assert!(
        r.problems[0].reason.contains("named for record 1"),
        "{r:#?}"
    );
}

#[test]
fn forged_and_misplaced_checkpoints_are_caught() {
    let mut b = Builder::new();
    b.event("a").checkpoint(false);
    // A checkpoint signed by another key.
    let mut other = Builder::new();
    other.key = SigningKey::generate(&tempfile::tempdir().unwrap().path().join("k")).unwrap();
    other.event("a").checkpoint(false);
    let r = check(&other.out);
    assert!(r.problems[0].reason.contains("not trusted"), "{r:#?}");
    // A checkpoint whose signature does not match its content.
    let text = String::from_utf8(b.out.clone()).unwrap();
    let cp_line = text.lines().nth(1).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(cp_line).unwrap();
    v["checkpoint"]["reason"] = "records".into();
    v["checkpoint"]["time"] = "t2".into();
    let (canonical, _) = record::split(cp_line.as_bytes()).unwrap();
    let _ = canonical;
    let mut forged = Vec::new();
    let first = text.lines().next().unwrap();
    forged.extend_from_slice(first.as_bytes());
    forged.push(b'\n');
    let prev = record::parse::<EventHead>(first.as_bytes()).unwrap().hash;
    let cp: Checkpoint = serde_json::from_value(v["checkpoint"].clone()).unwrap();
    encode_checkpoint(&mut forged, 2, "t", &prev, &cp);
    let r = check(&forged);
    assert!(
        r.problems[0].reason.contains("signature does not verify"),
        "{r:#?}"
    );
    // A record appended after a sealing checkpoint.
    let mut sealed = Builder::new();
    sealed.event("a").checkpoint(true).event("late");
    let r = check(&sealed.out);
    assert!(
        r.problems[0]
            .reason
            .contains("after the sealing checkpoint"),
        "{r:#?}"
    );
}

#[test]
fn an_incomplete_final_line_is_a_torn_write_but_garbage_inside_is_not() {
    let mut b = Builder::new();
    b.event("a").event("b");
    let mut torn = b.out.clone();
    torn.extend_from_slice(br#"{"seq":3,"time":"t","pr"#);
    let r = check(&torn);
    assert_eq!(r.verdict, Verdict::Intact, "{r:#?}");
    assert!(r.notes[0].contains("incomplete record"), "{r:#?}");
    let lines = b.lines();
    let inside: Vec<u8> = [&lines[0][..], b"garbage\n", &lines[1][..]].concat();
    let r = check(&inside);
    assert_eq!(r.verdict, Verdict::Tampered, "{r:#?}");
    assert_eq!(r.problems[0].offset, lines[0].len() as u64);
}

#[test]
fn gaps_are_accepted_only_when_a_deletion_record_accounts_for_them() {
    // Records 1..3 existed (a segment later deleted); the chain continues
    // at 4 with a signed notice recording the deletion of 1..3.
    let mut full = Builder::new();
    full.event("a").event("b").checkpoint(true);
    let first_prev = hex(&record::GENESIS);
    let last_hash = hex(&full.prev);
    let deleted_upto = full.seq;
    let deleted = serde_json::json!({
        "firstSeq": 1, "lastSeq": deleted_upto,
        "firstPrev": first_prev, "lastHash": last_hash, "archived": false,
        "acknowledged": {"siem": 7},
    });
    full.event("c")
        .notice("segment-deleted", deleted.clone())
        .checkpoint(false);
    let lines = full.lines();
    let rest: Vec<u8> = lines[3..].concat();
    let r = check_from(&rest, 4);
    assert_eq!(r.verdict, Verdict::Intact, "{r:#?}");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("records 1..3 are not here")),
        "{r:#?}"
    );
    // The same gap with a notice whose boundary hash is wrong is tampering.
    let mut wrong = Builder::new();
    wrong.event("a").event("b").checkpoint(true);
    wrong
        .event("c")
        .notice(
            "segment-deleted",
            serde_json::json!({
                "firstSeq": 1, "lastSeq": 3,
                "firstPrev": first_prev, "lastHash": hex(&[7u8; 32]), "archived": false,
                "acknowledged": {"siem": 7},
            }),
        )
        .checkpoint(false);
    let r = check_from(&wrong.lines()[3..].concat(), 4);
    assert_eq!(r.verdict, Verdict::Tampered, "{r:#?}");
    // A deletion carried forward by a later deletion notice still counts.
    let mut carried = Builder::new();
    carried.event("a").event("b").checkpoint(true);
    let lh = hex(&carried.prev);
    carried.event("c").notice(
        "segment-dropped",
        serde_json::json!({
            "firstSeq": 99, "lastSeq": 99, "firstPrev": hex(&[1u8; 32]), "lastHash": hex(&[2u8; 32]),
            "carried": [{"firstSeq": 1, "lastSeq": 3, "firstPrev": first_prev, "lastHash": lh, "cause": "segment-deleted"}],
        }),
    ).checkpoint(false);
    let r = check_from(&carried.lines()[3..].concat(), 4);
    assert_eq!(r.verdict, Verdict::Intact, "{r:#?}");
    assert!(r.notes.iter().any(|n| n.starts_with("LOSS")), "{r:#?}");
}

#[test]
fn a_deletion_notice_counts_only_when_the_next_record_signs_it() {
    let mut b = Builder::new();
    b.event("a").event("b").checkpoint(true);
    let first_prev = hex(&record::GENESIS);
    let last_hash = hex(&b.prev);
    let deleted = serde_json::json!({
        "firstSeq": 1, "lastSeq": 3,
        "firstPrev": first_prev, "lastHash": last_hash, "archived": false,
        "acknowledged": {"siem": 3},
    });
    // Unsigned: the notice is the last record.
    let mut unsigned = Builder {
        out: Vec::new(),
        ..b.clone_state()
    };
    unsigned
        .event("c")
        .notice("segment-deleted", deleted.clone());
    let r = check_from(&unsigned.out, 4);
    assert_eq!(r.verdict, Verdict::Tampered, "{r:#?}");
    // Followed by an event, then a checkpoint: the signature covers the
    // notice, but a writer always signs a notice at once; a notice adopted
    // from an unsigned tail does not count.
    let mut late = Builder {
        out: Vec::new(),
        ..b.clone_state()
    };
    late.event("c")
        .notice("segment-deleted", deleted.clone())
        .event("d")
        .checkpoint(false);
    let r = check_from(&late.out, 4);
    assert_eq!(r.verdict, Verdict::Tampered, "{r:#?}");
    // Signed, but the export state does not allow the deletion.
    for acks in [
        serde_json::json!({}),
        serde_json::json!({"siem": 2}),
        serde_json::Value::Null,
    ] {
        let mut state = deleted.clone();
        state["acknowledged"] = acks.clone();
        let mut unacked = Builder {
            out: Vec::new(),
            ..b.clone_state()
        };
        unacked
            .event("c")
            .notice("segment-deleted", state)
            .checkpoint(false);
        let r = check_from(&unacked.out, 4);
        assert_eq!(r.verdict, Verdict::Tampered, "{acks}: {r:#?}");
    }
    // Signed at once and allowed: accepted.
    let mut good = Builder {
        out: Vec::new(),
        ..b.clone_state()
    };
    good.event("c")
        .notice("segment-deleted", deleted)
        .checkpoint(false);
    let r = check_from(&good.out, 4);
    assert_eq!(r.verdict, Verdict::Intact, "{r:#?}");
}

#[test]
fn a_coverage_range_matching_no_gap_does_not_hide_a_cut_tail() {
    // A full journal whose head.json names checkpoint record 6; the tail is
    // cut to record 3 and a signed-looking notice claims records 5..10^9.
    let mut b = Builder::new();
    b.event("a")
        .event("b")
        .checkpoint(false)
        .event("c")
        .event("d")
        .checkpoint(false);
    let head_line = b.lines()[5].clone();
    let lines = b.lines();
    let mut cut = Builder {
        out: lines[..3].concat(),
        ..b.clone_state()
    };
    cut.seq = 3;
    cut.prev = record::parse::<EventHead>(lines[2].strip_suffix(b"\n").unwrap())
        .unwrap()
        .hash;
    cut.notice(
        "archive-expired",
        serde_json::json!({
            "firstSeq": 5, "lastSeq": 1_000_000_000u64,
            "firstPrev": hex(&[0u8; 32]), "lastHash": hex(&[0u8; 32]),
        }),
    );
    for signed in [false, true] {
        let mut journal = Builder {
            out: cut.out.clone(),
            ..cut.clone_state()
        };
        if signed {
            journal.checkpoint(false);
        }
        let mut chain = Chain::new(vec![key().verifying_key()], false);
        chain.expect("head.json", &head_line);
        chain.begin_segment(0, "segment", 1, false);
        let mut ls = Lines::new(&journal.out[..], 0);
        while let Ok(Some(line)) = ls.next_line() {
            chain.line(&line, true);
        }
        chain.end_segment(true, true);
        let r = chain.finish(1, 0);
        assert_eq!(r.verdict, Verdict::Tampered, "signed {signed}: {r:#?}");
        assert!(
            r.problems.iter().any(|p| p.segment == "head.json"
                && (p.reason.contains("cut from the end") || p.reason.contains("rewritten"))),
            "{r:#?}"
        );
    }
}

#[test]
fn salvage_extracts_what_it_can_from_broken_records() {
    assert_eq!(
        salvage(br#"{"seq":42,"x":1,"event":{"id":"abc"}"#),
        (Some(42), Some("abc".to_owned()))
    );
    assert_eq!(salvage(b"\xff\xfe"), (None, None));
    assert_eq!(salvage(br#""seq":"#), (None, None));
}
