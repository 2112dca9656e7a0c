//! The archive: sealed, compressed segments copied with their sealing
//! checkpoints and the public keys to a long-term directory (a PVC or an
//! object-store mount), kept for the archive retention (7 years by default)
//! and then deleted — each deletion written to `RETENTION.jsonl` in the
//! archive and recorded in the chain, so `verify` accounts for it.
//!
//! Layout of the archive directory:
//!
//! ```text
//! ARCHIVE/segments/seg-<first seq>.jsonl.gz          byte-for-byte copy
//! ARCHIVE/segments/seg-<first seq>.checkpoint.json   its sealing checkpoint
//! ARCHIVE/keys/<key id>.pub                          public keys
//! ARCHIVE/RETENTION.jsonl                            every expiry, appended
//! ```

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ring::digest::{Context, SHA256};
use serde_json::{Map, json};
use tokio::sync::watch;

use crate::config::ArchiveSettings;
use crate::journal::segment::{self, Lines, SegmentFile};
use crate::journal::{Journal, KEYS_DIR};
use crate::record::{self, EventHead};
use crate::{Event, Outcome, Priority};

/// The consumer name of the archive in cursors and metrics.
pub const CONSUMER: &str = "archive";
/// The retention ledger in the archive directory.
pub const LEDGER: &str = "RETENTION.jsonl";

pub(crate) struct Archiver {
    pub journal: Journal,
    pub settings: ArchiveSettings,
    pub stop: watch::Receiver<bool>,
}

/// What one pass did.
#[derive(Debug, Default)]
struct Pass {
    archived: Vec<u64>,
}

impl Archiver {
    pub(crate) async fn run(mut self) {
        let mut head = self.journal.subscribe();
        let mut last_sweep: Option<std::time::Instant> = None;
        loop {
            let sweep = last_sweep.is_none_or(|t| t.elapsed() >= self.settings.sweep_interval.0);
            if sweep {
                last_sweep = Some(std::time::Instant::now());
            }
            let journal = self.journal.clone();
            let settings = self.settings.clone();
            let pass =
                tokio::task::spawn_blocking(move || archive_pass(&journal, &settings, sweep)).await;
            match pass {
                Ok(Ok(pass)) => {
                    if !pass.archived.is_empty() {
                        self.journal.wake_maintenance();
                    }
                }
                Ok(Err(e)) => tracing::error!(
                    archive = %self.settings.dir.display(),
                    "archiving failed, will retry: {e}"
                ),
                Err(e) => tracing::error!("archive task failed: {e}"),
            }
            tokio::select! {
                _ = head.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = self.stop.changed() => return,
            }
            if *self.stop.borrow() {
                return;
            }
        }
    }
}

fn archive_pass(journal: &Journal, settings: &ArchiveSettings, sweep: bool) -> io::Result<Pass> {
    let mut pass = Pass::default();
    let out_dir = settings.dir.join(segment::SEGMENTS_DIR);
    std::fs::create_dir_all(&out_dir)?;
    copy_keys(journal.dir(), &settings.dir)?;
    let head = journal.head();
    let mut live = segment::list(&journal.dir().join(segment::SEGMENTS_DIR))?;
    live.dedup_by_key(|s| s.first_seq);
    let cursors = journal.cursors();
    for (i, seg) in live.iter().enumerate() {
        if seg.first_seq >= head.segment {
            break;
        }
        let next_first = live.get(i + 1).map_or(head.segment, |n| n.first_seq);
        let last_seq = next_first.saturating_sub(1);
        if last_seq <= cursors.get(CONSUMER) {
            continue;
        }
        if !seg.compressed {
            // Sealed but not compressed yet: archived on a later pass, in
            // order.
            break;
        }
        copy_segment(seg, &out_dir)?;
        journal
            .cursors()
            .store(CONSUMER, last_seq)
            .map_err(|e| io::Error::other(e.to_string()))?;
        journal.metrics().archived_segments.inc();
        pass.archived.push(seg.first_seq);
    }
    if sweep {
        expire(journal, settings, &out_dir)?;
    }
    Ok(pass)
}

fn copy_keys(journal: &Path, archive: &Path) -> io::Result<()> {
    let from = journal.join(KEYS_DIR);
    let to = archive.join(KEYS_DIR);
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(&from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if !target.exists() {
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
            segment::sync_dir(&to)?;
        }
    }
    Ok(())
}

fn digest_of(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(buf.get(..n).unwrap_or_default());
    }
    Ok(ctx.finish().as_ref().to_vec())
}

/// Copies a compressed segment (verified by digest) and its sealing
/// checkpoint into the archive.
fn copy_segment(seg: &SegmentFile, out_dir: &Path) -> io::Result<()> {
    let name = segment::file_name(seg.first_seq, true);
    let target = out_dir.join(&name);
    let tmp = out_dir.join(format!("{name}.tmp"));
    std::fs::copy(&seg.path, &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    if digest_of(&tmp)? != digest_of(&seg.path)? {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::other(format!(
            "the archived copy of {name} does not match the original"
        )));
    }
    std::fs::rename(&tmp, &target)?;
    let mut lines = Lines::new(segment::open(seg)?, 0);
    let mut last = None;
    while let Some(line) = lines.next_line()? {
        if line.complete {
            last = Some(line.bytes);
        }
    }
    if let Some(line) = last
        && record::parse::<EventHead>(&line).is_ok_and(|p| p.envelope.checkpoint.is_some())
    {
        let cp_path = out_dir.join(format!("seg-{:020}.checkpoint.json", seg.first_seq));
        let mut f = std::fs::File::create(&cp_path)?;
        f.write_all(&line)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    segment::sync_dir(out_dir)
}

/// Deletes archived segments older than the retention, recording each in
/// the ledger and (durably, before deleting) in the chain.
fn expire(journal: &Journal, settings: &ArchiveSettings, out_dir: &Path) -> io::Result<()> {
    let now = SystemTime::now();
    for seg in segment::list(out_dir)? {
        if !seg.compressed {
            continue;
        }
        let cp_path = out_dir.join(format!("seg-{:020}.checkpoint.json", seg.first_seq));
        let sealed_at = sealed_time(&cp_path)
            .or_else(|| std::fs::metadata(&seg.path).and_then(|m| m.modified()).ok());
        let Some(sealed_at) = sealed_at else {
            continue;
        };
        let age = now.duration_since(sealed_at).unwrap_or_default();
        if age < settings.retention.0 {
            continue;
        }
        let Some(summary) = segment::summarize(&seg)? else {
            continue;
        };
        let name = segment::file_name(seg.first_seq, true);
        let carried = segment::merge_ranges(summary.covers.clone());
        let entry = json!({
            "time": crate::now_rfc3339(),
            "segment": name,
            "firstSeq": summary.first_seq,
            "lastSeq": summary.last_seq,
            "firstPrev": summary.first_prev,
            "lastHash": summary.last_hash,
            "events": summary.events,
            "firstId": summary.first_id,
            "lastId": summary.last_id,
            "lastTime": summary.last_time,
            "retention": crate::config::Duration(settings.retention.0).to_string(),
            "carried": carried,
        });
        let mut attributes: Map<String, serde_json::Value> =
            entry.as_object().cloned().unwrap_or_default();
        attributes.remove("time");
        attributes.insert("ledger".into(), json!(LEDGER));
        let notice = Event::notice(
            "archive-expired",
            &name,
            Outcome::Allow,
            Priority::Observe,
            format!(
                "records {}..{} reached the archive retention of {} and were deleted from the archive",
                summary.first_seq,
                summary.last_seq,
                crate::config::Duration(settings.retention.0)
            ),
            attributes,
        );
        journal.notice_blocking(notice).map_err(|e| {
            io::Error::other(format!(
                "not deleting {name}: the expiry could not be recorded: {e}"
            ))
        })?;
        append_ledger(&settings.dir.join(LEDGER), &entry)?;
        std::fs::remove_file(&seg.path)?;
        match std::fs::remove_file(&cp_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        segment::sync_dir(out_dir)?;
        journal.metrics().archive_expired.inc();
        tracing::info!(segment = %name, "archived segment past the archive retention: deleted");
    }
    Ok(())
}

fn sealed_time(cp_path: &PathBuf) -> Option<SystemTime> {
    let line = std::fs::read(cp_path).ok()?;
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let parsed = record::parse::<EventHead>(line).ok()?;
    let t = time::OffsetDateTime::parse(
        &parsed.envelope.time,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(SystemTime::from(t))
}

fn append_ledger(path: &Path, entry: &serde_json::Value) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(entry.to_string().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_data()
}
