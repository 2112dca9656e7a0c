//! Signed statements about a journal kept apart from it: `head.json` and
//! external anchors. An anchor is either a checkpoint record line exactly
//! as the journal holds it (what `head.json` and the `anchor.file` copy
//! contain) or the `checkpoint` notice an exporter sent to a SIEM (native
//! `tollgate.audit/v1` JSON). Both name the chain head a signature covers.

use serde::Deserialize;

use crate::record::{self, Checkpoint, Hash};

/// What an anchor says.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    /// The signed checkpoint.
    pub checkpoint: Checkpoint,
    /// The checkpoint record's own position and hash, when known (not
    /// covered by the signature).
    pub record: Option<(u64, Hash)>,
}

#[derive(Deserialize)]
struct Exported {
    #[serde(default)]
    source: String,
    #[serde(default)]
    time: String,
    action: ExportedAction,
}

#[derive(Deserialize)]
struct ExportedAction {
    #[serde(default)]
    verb: String,
    attributes: ExportedCheckpoint,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportedCheckpoint {
    seq: Option<u64>,
    hash: Option<String>,
    head_seq: u64,
    head_hash: String,
    key_id: String,
    signature: String,
    #[serde(default)]
    seal: bool,
    #[serde(default)]
    reason: String,
}

/// Parses an anchor (trailing newline allowed).
pub(crate) fn parse(bytes: &[u8]) -> Result<Statement, String> {
    let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    match record::parse::<serde_json::Value>(line) {
        Ok(parsed) => {
            let Some(checkpoint) = parsed.envelope.checkpoint else {
                return Err("does not hold a checkpoint".into());
            };
            return Ok(Statement {
                checkpoint,
                record: Some((parsed.envelope.seq, parsed.hash)),
            });
        }
        Err(record::RecordError::NoHash) => {}
        Err(e) => return Err(format!("unreadable or altered: {}", super::describe(&e))),
    }
    let exported: Exported = serde_json::from_slice(line).map_err(|e| {
        format!("neither a checkpoint record nor an exported checkpoint notice: {e}")
    })?;
    if exported.source != "journal" || exported.action.verb != "checkpoint" {
        return Err("an exported event, but not a checkpoint notice".into());
    }
    let a = exported.action.attributes;
    let record = match (
        a.seq,
        a.hash.as_deref().and_then(|h| record::unhex(h.as_bytes())),
    ) {
        (Some(seq), Some(hash)) => Some((seq, hash)),
        _ => None,
    };
    Ok(Statement {
        checkpoint: Checkpoint {
            head_seq: a.head_seq,
            head_hash: a.head_hash,
            time: exported.time,
            seal: a.seal,
            reason: a.reason,
            key_id: a.key_id,
            signature: a.signature,
        },
        record,
    })
}
