//! Durable export cursors: for each consumer (exporter or archive), the
//! sequence number up to which the receiver has acknowledged every record.
//! A cursor is written (atomically, fsync'd) only after the acknowledgement,
//! so after a crash export resumes at or before the first unacknowledged
//! record: delivery is at least once, duplicates carry the same event id.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::journal::segment::sync_dir;

/// Sub-directory of the journal holding cursors.
pub const CURSORS_DIR: &str = "cursors";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CursorFile {
    consumer: String,
    seq: u64,
    time: String,
}

/// Every consumer's cursor.
#[derive(Debug)]
pub struct Cursors {
    dir: PathBuf,
    acked: BTreeMap<String, AtomicU64>,
    changed: tokio::sync::Notify,
}

impl Cursors {
    /// Loads the cursors of `consumers` from `journal/cursors/` (a consumer
    /// without a cursor file starts at 0: it receives everything still in
    /// the live journal).
    pub fn load(journal: &Path, consumers: &[String]) -> Result<Cursors, Error> {
        let dir = journal.join(CURSORS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let mut acked = BTreeMap::new();
        for name in consumers {
            let path = dir.join(format!("{name}.json"));
            let seq = match std::fs::read(&path) {
                Ok(bytes) => {
                    let file: CursorFile = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::io(
                            "reading",
                            &path,
                            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                        )
                    })?;
                    file.seq
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(Error::io("reading", &path, e)),
            };
            acked.insert(name.clone(), AtomicU64::new(seq));
        }
        Ok(Cursors {
            dir,
            acked,
            changed: tokio::sync::Notify::new(),
        })
    }

    /// The acknowledged sequence number of `consumer` (0 if unknown).
    pub fn get(&self, consumer: &str) -> u64 {
        self.acked
            .get(consumer)
            .map_or(0, |a| a.load(Ordering::Acquire))
    }

    /// The lowest acknowledged sequence number over every consumer, or
    /// `None` when there is no consumer at all.
    pub fn min(&self) -> Option<u64> {
        self.acked.values().map(|a| a.load(Ordering::Acquire)).min()
    }

    /// Consumer names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.acked.keys().map(String::as_str)
    }

    /// Persists `consumer`'s cursor at `seq` (never moving it backwards),
    /// then publishes it.
    pub fn store(&self, consumer: &str, seq: u64) -> Result<(), Error> {
        let Some(slot) = self.acked.get(consumer) else {
            return Ok(());
        };
        if seq <= slot.load(Ordering::Acquire) {
            return Ok(());
        }
        let path = self.dir.join(format!("{consumer}.json"));
        let tmp = self.dir.join(format!(".{consumer}.json.tmp"));
        let body = serde_json::to_vec(&CursorFile {
            consumer: consumer.to_owned(),
            seq,
            time: crate::now_rfc3339(),
        })
        .unwrap_or_default();
        let io = |e| Error::io("writing", &path, e);
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        sync_dir(&self.dir).map_err(io)?;
        slot.store(seq, Ordering::Release);
        self.changed.notify_waiters();
        Ok(())
    }

    /// Resolves after the next cursor change.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_persist_and_never_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let c = Cursors::load(dir.path(), &names).unwrap();
        assert_eq!(c.min(), Some(0));
        c.store("a", 10).unwrap();
        c.store("a", 5).unwrap();
        c.store("b", 7).unwrap();
        assert_eq!((c.get("a"), c.min()), (10, Some(7)));
        let again = Cursors::load(dir.path(), &names).unwrap();
        assert_eq!((again.get("a"), again.get("b")), (10, 7));
        assert_eq!(Cursors::load(dir.path(), &[]).unwrap().min(), None);
        std::fs::write(dir.path().join("cursors/a.json"), b"junk").unwrap();
        assert!(Cursors::load(dir.path(), &names).is_err());
    }
}
