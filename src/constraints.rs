//! Gatekeeper constraints from files: reading the paths of
//! `policy.constraints.paths` and `--constraints` into a
//! [`ConstraintStore`], and noticing when they change (the webhook reloads
//! them; a set that fails to load is refused and the active one stays).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use tollgate_policies::gatekeeper::{ConstraintSet, ConstraintStore, LoadOptions, SourceFile};

/// Reads every `*.yaml`, `*.yml` and `*.json` file under `paths` (files
/// given directly are read whatever their extension), in a stable order.
pub fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<SourceFile>> {
    files(paths)?
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("constraints: cannot read {}", f.display()))?;
            Ok(SourceFile::new(f.display().to_string(), text))
        })
        .collect()
}

/// The files `paths` name: directories expanded with
/// [`crate::files::manifest_files`], files as given.
fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("constraints: cannot read {}", path.display()))?;
        if meta.is_dir() {
            files.extend(
                crate::files::manifest_files(path)
                    .with_context(|| format!("constraints: {}", path.display()))?,
            );
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
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
/// A path that cannot be read leaves the fingerprint empty: the reload it
/// triggers reports the error.
pub fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    files(paths)
        .unwrap_or_default()
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
    Ok(set.constraints().len())
}
