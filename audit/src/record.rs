//! The on-disk record: one JSON object per line, hash-chained.
//!
//! ```text
//! {"seq":7,"time":"2025-11-24T10:15:30.25Z","prev":"<64 hex>","kind":"event","event":{...},"hash":"<64 hex>"}
//! ```
//!
//! The *canonical bytes* of a record are its line up to, not including,
//! the `,"hash":"` suffix; `hash = SHA-256(prev_hash ‖ canonical bytes)`,
//! where `prev_hash` is the 32 raw bytes of the previous record's hash (32
//! zero bytes for the very first record). Hashing the bytes exactly as they
//! are on disk — never a re-serialisation — means any edit of any byte is
//! visible. A `checkpoint` record carries an Ed25519 signature over the
//! chain head (the record before it); see [`checkpoint_message`].
//!
//! Parsing never panics on any input: the fuzz target
//! `journal_record` feeds it arbitrary bytes.

use ring::digest::{Context, SHA256};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::SCHEMA;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The `prev` of the first record of a journal.
pub const GENESIS: Hash = [0; 32];

/// `,"hash":"` + 64 hex + `"}`.
const SUFFIX_LEN: usize = 9 + 64 + 2;
const SUFFIX_HEAD: &[u8] = b",\"hash\":\"";

/// Records longer than this are refused by the parser (the writer never
/// produces one: events are capped well below).
pub const MAX_LINE: usize = 16 << 20;

/// Record kinds.
pub const KIND_EVENT: &str = "event";
/// A signed checkpoint.
pub const KIND_CHECKPOINT: &str = "checkpoint";

/// A signed statement over the chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// Sequence number of the record the checkpoint covers (the one before
    /// the checkpoint record).
    pub head_seq: u64,
    /// That record's hash, hex.
    pub head_hash: String,
    /// When the checkpoint was signed, RFC 3339.
    pub time: String,
    /// Whether this checkpoint seals its segment (the segment's last record).
    pub seal: bool,
    /// Why it was written: `records`, `interval`, `rotation`, `shutdown`.
    pub reason: String,
    /// Id of the signing key (first 8 bytes of SHA-256 of the public key, hex).
    pub key_id: String,
    /// Ed25519 signature over [`checkpoint_message`], base64.
    pub signature: String,
}

/// The envelope of a record. `E` is the event type: [`crate::Event`] to
/// read events, [`EventHead`] (id and notice detail only) to verify.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope<E> {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When the record was written, RFC 3339.
    pub time: String,
    /// The previous record's hash, hex.
    pub prev: String,
    /// `event` or `checkpoint`.
    pub kind: String,
    /// The event, for `kind: event`.
    #[serde(default = "none")]
    pub event: Option<E>,
    /// The checkpoint, for `kind: checkpoint`.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
}

fn none<E>() -> Option<E> {
    None
}

/// The parts of an event verification needs: its id and, for journal
/// notices, the verb and attributes that account for gaps.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventHead {
    /// The event id.
    #[serde(default)]
    pub id: String,
    /// `webhook`, `sidecar`, `journal`.
    #[serde(default)]
    pub source: String,
    /// The action.
    #[serde(default)]
    pub action: ActionHead,
}

/// See [`EventHead`].
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionHead {
    /// The verb.
    #[serde(default)]
    pub verb: String,
    /// The attributes.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Why a line is not a well-formed record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The line does not end with a `"hash"` field of 64 hex digits.
    #[error("no hash field at the end of the record")]
    NoHash,
    /// The line is longer than [`MAX_LINE`].
    #[error("record longer than {MAX_LINE} bytes")]
    TooLong,
    /// The stored hash does not match SHA-256(prev ‖ canonical bytes).
    #[error("content does not match its hash (the record was altered)")]
    HashMismatch,
    /// The JSON is malformed or misses a required field.
    #[error("malformed record: {0}")]
    Malformed(String),
    /// The `prev` field is not 64 hex digits.
    #[error("malformed prev hash")]
    BadPrev,
}

/// A record line split into its parts, self-consistency checked (its hash
/// matches its own `prev` and content), not yet linked to its neighbour.
#[derive(Debug, Clone)]
pub struct Parsed<E> {
    /// The envelope.
    pub envelope: Envelope<E>,
    /// `prev`, decoded.
    pub prev: Hash,
    /// The stored (and recomputed) hash.
    pub hash: Hash,
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    fn digit(n: u8) -> char {
        char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
    out
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes 64 lower-case hex digits.
pub fn unhex(text: &[u8]) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (hex_digit(*hi)?, hex_digit(*lo)?),
            _ => return None,
        };
        *slot = (hi << 4) | lo;
    }
    Some(out)
}

/// SHA-256(prev ‖ canonical).
pub fn chain_hash(prev: &Hash, canonical: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(prev);
    ctx.update(canonical);
    let digest = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Splits a line (without its newline) into canonical bytes and stored hash.
pub fn split(line: &[u8]) -> Result<(&[u8], Hash), RecordError> {
    if line.len() > MAX_LINE {
        return Err(RecordError::TooLong);
    }
    let cut = line
        .len()
        .checked_sub(SUFFIX_LEN)
        .ok_or(RecordError::NoHash)?;
    let (canonical, suffix) = line.split_at(cut);
    let (head, rest) = suffix.split_at(SUFFIX_HEAD.len().min(suffix.len()));
    if head != SUFFIX_HEAD || !rest.ends_with(b"\"}") || !canonical.starts_with(b"{") {
        return Err(RecordError::NoHash);
    }
    let digits = rest.get(..64).ok_or(RecordError::NoHash)?;
    let hash = unhex(digits).ok_or(RecordError::NoHash)?;
    Ok((canonical, hash))
}

/// Parses and self-checks one record line (without its newline).
pub fn parse<E: DeserializeOwned>(line: &[u8]) -> Result<Parsed<E>, RecordError> {
    let (canonical, hash) = split(line)?;
    let mut json = Vec::with_capacity(canonical.len() + 1);
    json.extend_from_slice(canonical);
    json.push(b'}');
    let envelope: Envelope<E> =
        serde_json::from_slice(&json).map_err(|e| RecordError::Malformed(e.to_string()))?;
    let prev = unhex(envelope.prev.as_bytes()).ok_or(RecordError::BadPrev)?;
    if chain_hash(&prev, canonical) != hash {
        return Err(RecordError::HashMismatch);
    }
    match (
        envelope.kind.as_str(),
        &envelope.event,
        &envelope.checkpoint,
    ) {
        (KIND_EVENT, Some(_), None) | (KIND_CHECKPOINT, None, Some(_)) => {}
        (kind, _, _) => {
            return Err(RecordError::Malformed(format!(
                "kind {kind:?} without exactly its matching body"
            )));
        }
    }
    Ok(Parsed {
        envelope,
        prev,
        hash,
    })
}

fn begin(out: &mut Vec<u8>, seq: u64, time: &str, prev: &Hash, kind: &str) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"time\":");
    // The time is ours (RFC 3339), but escape it properly all the same.
    out.extend_from_slice(
        serde_json::to_string(time)
            .unwrap_or_else(|_| "\"\"".to_owned())
            .as_bytes(),
    );
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(hex(prev).as_bytes());
    out.extend_from_slice(b"\",\"kind\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\":");
}

fn finish(out: &mut Vec<u8>, start: usize, prev: &Hash) -> Hash {
    let hash = chain_hash(prev, out.get(start..).unwrap_or_default());
    out.extend_from_slice(SUFFIX_HEAD);
    out.extend_from_slice(hex(&hash).as_bytes());
    out.extend_from_slice(b"\"}\n");
    hash
}

/// Appends an event record (with its newline) to `out`; `event_json` is
/// the serialized event. Returns the record's hash.
pub fn encode_event(
    out: &mut Vec<u8>,
    seq: u64,
    time: &str,
    prev: &Hash,
    event_json: &[u8],
) -> Hash {
    let start = out.len();
    begin(out, seq, time, prev, KIND_EVENT);
    out.extend_from_slice(event_json);
    finish(out, start, prev)
}

/// Appends a checkpoint record (with its newline) to `out`.
pub fn encode_checkpoint(
    out: &mut Vec<u8>,
    seq: u64,
    time: &str,
    prev: &Hash,
    checkpoint: &Checkpoint,
) -> Hash {
    let start = out.len();
    begin(out, seq, time, prev, KIND_CHECKPOINT);
    let body = serde_json::to_vec(checkpoint).unwrap_or_else(|_| b"null".to_vec());
    out.extend_from_slice(&body);
    finish(out, start, prev)
}

/// The exact bytes a checkpoint signature covers.
pub fn checkpoint_message(
    head_seq: u64,
    head_hash: &str,
    time: &str,
    seal: bool,
    key_id: &str,
) -> Vec<u8> {
    format!(
        "{SCHEMA} checkpoint\nseq {head_seq}\nhash {head_hash}\ntime {time}\nseal {seal}\nkey {key_id}\n"
    )
    .into_bytes()
}

impl Checkpoint {
    /// The bytes this checkpoint's signature covers.
    pub fn message(&self) -> Vec<u8> {
        checkpoint_message(
            self.head_seq,
            &self.head_hash,
            &self.time,
            self.seal,
            &self.key_id,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    #[test]
    fn encode_then_parse_round_trips_and_chains() {
        let mut out = Vec::new();
        let h1 = encode_event(
            &mut out,
            1,
            "2025-01-01T00:00:00Z",
            &GENESIS,
            br#"{"id":"a"}"#,
        );
        let first_len = out.len();
        let h2 = encode_event(&mut out, 2, "2025-01-01T00:00:00Z", &h1, br#"{"id":"b"}"#);
        let lines: Vec<&[u8]> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2);
        let p1 = parse::<EventHead>(lines[0]).unwrap();
        let p2 = parse::<EventHead>(lines[1]).unwrap();
        assert_eq!(p1.hash, h1);
        assert_eq!(p2.prev, h1);
        assert_eq!(p2.hash, h2);
        assert_eq!(p2.envelope.seq, 2);
        assert_eq!(p2.envelope.event.unwrap().id, "b");
        assert_eq!(first_len, lines[0].len() + 1);
    }

    #[test]
    fn any_single_byte_edit_is_detected() {
        let mut out = Vec::new();
        encode_event(&mut out, 1, "t", &GENESIS, br#"{"id":"abc","x":1}"#);
        let line = &out[..out.len() - 1];
        for i in 0..line.len() {
            for delta in [1u8, 0x20, 0x80] {
                let mut edited = line.to_vec();
                edited[i] ^= delta;
                assert!(
                    parse::<EventHead>(&edited).is_err(),
                    "edit at {i} ({delta:#x}) went unnoticed"
                );
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"{",
            b"}",
            b"\xff\xfe",
            b",\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
            b"{,\"hash\":\"000000000000000000000000000000000000000000000000000000000000000g\"}",
            b"{\"seq\":-1,\"hash\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
        ] {
            assert!(parse::<Event>(input).is_err());
        }
    }

    #[test]
    fn kind_and_body_must_agree() {
        let mut out = Vec::new();
        let start = out.len();
        begin(&mut out, 1, "t", &GENESIS, KIND_EVENT);
        out.truncate(out.len() - b"\"event\":".len());
        out.extend_from_slice(b"\"checkpoint\":null");
        finish(&mut out, start, &GENESIS);
        let line = &out[..out.len() - 1];
        assert!(matches!(
            parse::<EventHead>(line),
            Err(RecordError::Malformed(_))
        ));
    }

    #[test]
    fn hex_round_trip() {
        let h = chain_hash(&GENESIS, b"x");
        assert_eq!(unhex(hex(&h).as_bytes()), Some(h));
        assert_eq!(unhex(b"ABCD"), None);
        assert_eq!(unhex(&[b'A'; 64]), None);
    }
}
