//! A JSON-lines file for a log shipper (Fluent Bit, Vector, Filebeat) to
//! tail: one event per line, whole lines per `write`, fsync'd before the
//! batch counts as delivered.
//!
//! Rotation-safe: the file is opened `O_APPEND`; before each batch the path
//! is checked, and if a log rotator renamed or removed it the file is
//! reopened (a `copytruncate` rotation is followed naturally). The exporter
//! also rotates by itself at `maxBytes`: `audit.jsonl` becomes
//! `audit.jsonl.1`, older files shift up to `maxFiles`, the oldest is
//! removed — the pattern tailers follow by inode.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Delivery, Failure, SendFuture, Sink, payload};
use crate::Error;
use crate::config::{FileConfig, Format};
use crate::reader::Item;

struct Target {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: Option<(File, u64)>,
}

/// The file exporter.
pub(crate) struct FileSink {
    target: Arc<Mutex<Target>>,
    format: Format,
}

impl FileSink {
    pub(crate) fn new(config: &FileConfig) -> Result<FileSink, Error> {
        if let Some(parent) = config.path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| Error::Exporter {
                exporter: config.name.clone(),
                reason: format!("{}: {e}", parent.display()),
            })?;
        }
        Ok(FileSink {
            target: Arc::new(Mutex::new(Target {
                path: config.path.clone(),
                max_bytes: config.max_bytes.0,
                max_files: config.max_files,
                file: None,
            })),
            format: config.format,
        })
    }
}

fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl Target {
    fn open(&mut self) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        let meta = file.metadata()?;
        // A line torn by a crash mid-write is terminated, so the next
        // event starts on a line of its own (it was resent anyway).
        if meta.len() > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, meta.len() - 1)?;
            if last != [b'\n'] {
                file.write_all(b"\n")?;
            }
        }
        let ino = meta.ino();
        crate::journal::segment::sync_dir(dir_of(&self.path))?;
        self.file = Some((file, ino));
        Ok(())
    }

    /// Reopens when the path no longer names our file.
    fn ensure_open(&mut self) -> io::Result<()> {
        let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        match (&self.file, current) {
            (Some((_, ino)), Some(now)) if *ino == now => Ok(()),
            _ => self.open(),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            match std::fs::remove_file(numbered(&self.path, self.max_files)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            for n in (1..self.max_files).rev() {
                match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        crate::journal::segment::sync_dir(dir_of(&self.path))?;
        self.open()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.ensure_open()?;
        let size = match &self.file {
            Some((f, _)) => f.metadata()?.len(),
            None => 0,
        };
        if size > 0 && size + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let Some((file, _)) = self.file.as_mut() else {
            return Err(io::Error::other("the export file is not open"));
        };
        file.write_all(bytes)?;
        file.sync_data()
    }
}

impl Sink for FileSink {
    fn send<'a>(&'a mut self, batch: &'a [&'a Item]) -> SendFuture<'a> {
        let mut bytes = Vec::with_capacity(batch.len() * 800);
        for item in batch {
            bytes.extend_from_slice(
                serde_json::to_string(&payload(item, self.format))
                    .unwrap_or_default()
                    .as_bytes(),
            );
            bytes.push(b'\n');
        }
        let target = self.target.clone();
        Box::pin(async move {
            let result = tokio::task::spawn_blocking(move || {
                let mut target = target
                    .lock()
                    .map_err(|_| io::Error::other("export file state poisoned"))?;
                let path = target.path.display().to_string();
                target
                    .write(&bytes)
                    .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
            })
            .await
            .map_err(|e| Failure::transient(e.to_string()))?;
            result.map_err(|e| Failure::transient(e.to_string()))?;
            Ok(Delivery::default())
        })
    }
}
