//! Finding manifest files under a directory, for `tollgate check`,
//! `tollgate doctor` and constraint paths.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Directories deeper than this are not searched.
const MAX_DIR_DEPTH: usize = 32;

/// Every `*.yaml`, `*.yml` and `*.json` file under `dir`, recursively, in
/// a stable order. Entries whose name starts with `.` are skipped: a
/// mounted ConfigMap or Secret keeps its files both as top-level links and
/// inside `..data/` and a timestamped `..<date>/` directory, so reading
/// those too would load every file twice (and hidden directories such as
/// `.git` hold no manifests).
pub fn manifest_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    collect(dir, 0, &mut out)?;
    Ok(out)
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if depth > MAX_DIR_DEPTH {
        anyhow::bail!("{}: directories nested too deeply", dir.display());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, depth + 1, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mounted_configmap_yields_each_key_once() {
        // The kubelet's layout: ..<timestamp>/ holds the files, ..data links
        // to it, and each key is a top-level link through ..data.
        let dir = tempfile::tempdir().unwrap();
        let stamped = dir.path().join("..2026_11_24_07_00_00.123");
        std::fs::create_dir(&stamped).unwrap();
        std::fs::write(stamped.join("template.yaml"), "a: 1\n").unwrap();
        std::fs::write(stamped.join("notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink(&stamped, dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/template.yaml", dir.path().join("template.yaml"))
            .unwrap();
        let sub = dir.path().join("more");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("b.json"), "{}").unwrap();
        std::fs::write(sub.join(".hidden.yaml"), "a: 1\n").unwrap();
        let files = manifest_files(dir.path()).unwrap();
        assert_eq!(
            files,
            vec![
                dir.path().join("more/b.json"),
                dir.path().join("template.yaml")
            ]
        );
    }
}
