//! Gatekeeper constraints from files: reading the paths of
//! `policy.constraints.paths` and `--constraints` into a
//! [`ConstraintStore`], and noticing when they change (the webhook reloads
//! them; a set that fails to load is refused and the active one stays).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use tollgate_policies::gatekeeper::{ConstraintSet, ConstraintStore, LoadOptions, SourceFile};

/// Directories deeper than this are not searched.
const MAX_DIR_DEPTH: usize = 32;

/// Reads every `*.yaml`, `*.yml` and `*.json` file under `paths` (files
/// given directly are read whatever their extension), in a stable order.
pub fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("constraints: cannot read {}", path.display()))?;
        if meta.is_dir() {
            collect(path, 0, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("constraints: cannot read {}", f.display()))?;
            Ok(SourceFile::new(f.display().to_string(), text))
        })
        .collect()
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if depth > MAX_DIR_DEPTH {
        anyhow::bail!("{}: directories nested too deeply", dir.display());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("constraints: cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, depth + 1, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            && !path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads the constraints under `paths` into a store; `None` when no path
/// is given. Every problem of a set that fails to load is in the error,
/// located as `file:line:column`.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Option<Arc<ConstraintStore>>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let sources = read_sources(paths)?;
    let set = ConstraintSet::load(&sources, LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("constraints refused:\n{e}"))?;
    Ok(Some(Arc::new(ConstraintStore::new(set))))
}

/// What the files under `paths` look like now (names, sizes, modification
/// times): a change in it means a reload is due.
pub fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let _ = collect(path, 0, &mut files);
        } else {
            files.push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (f, len, modified)
        })
        .collect()
}

/// Reloads `store` from `paths`. On failure the active set stays and the
/// error says why.
pub fn reload(store: &ConstraintStore, paths: &[PathBuf]) -> anyhow::Result<usize> {
    let sources = read_sources(paths)?;
    let set = store
        .reload(&sources, LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("constraints refused, the previous set stays active:\n{e}"))?;
    let _ = set;
    Ok(store.current().constraints().len())
}
