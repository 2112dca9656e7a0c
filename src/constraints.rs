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
/// A file found in a directory that holds no ConstraintTemplate or
/// constraint (a Gatekeeper library's `suite.yaml`, `samples/*/example_*.yaml`,
/// a `kustomization.yaml`) is skipped, and a note says so.
pub fn read_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<SourceFile>> {
    let mut sources = Vec::new();
    for (file, given) in files(paths)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("constraints: cannot read {}", file.display()))?;
        if !given && !holds_constraints(&text) {
            eprintln!(
                "note: constraints: skipped {}: not a ConstraintTemplate or constraint",
                file.display()
            );
            continue;
        }
        sources.push(SourceFile::new(file.display().to_string(), text));
    }
    Ok(sources)
}

/// Whether a file holds a document of `templates.gatekeeper.sh` or
/// `constraints.gatekeeper.sh`. A file that does not parse counts when it
/// names either group, so its syntax error is reported rather than the file
/// dropped.
fn holds_constraints(text: &str) -> bool {
    let gatekeeper = |api_version: &str| {
        api_version.starts_with("templates.gatekeeper.sh/")
            || api_version.starts_with("constraints.gatekeeper.sh/")
    };
    match tollgate_policies::engine::offline::parse_documents(text) {
        Ok(documents) => documents.iter().any(|(_, object)| {
            object
                .get("apiVersion")
                .and_then(serde_json::Value::as_str)
                .is_some_and(gatekeeper)
        }),
        Err(_) => text.contains("gatekeeper.sh/"),
    }
}

/// The files `paths` name, each with whether it was given directly:
/// directories expanded with [`crate::files::manifest_files`], files as
/// given.
fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, bool)>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("constraints: cannot read {}", path.display()))?;
        if meta.is_dir() {
            files.extend(
                crate::files::manifest_files(path)
                    .with_context(|| format!("constraints: {}", path.display()))?
                    .into_iter()
                    .map(|f| (f, false)),
            );
        } else {
            files.push((path.clone(), true));
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
        .map(|(f, _)| {
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
