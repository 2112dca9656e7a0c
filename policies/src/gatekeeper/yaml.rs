//! Multi-document YAML (and JSON) files turned into JSON values, each
//! remembering the file and line it came from so errors can point at it.

use serde::Deserialize;

use super::GatekeeperError;
use crate::rego::Location;

/// A file's name and contents, as handed to the loader (the caller does the
/// I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// How errors name the file: usually its path.
    pub name: String,
    /// The YAML or JSON text.
    pub contents: String,
}

impl SourceFile {
    /// A named file.
    pub fn new(name: impl Into<String>, contents: impl Into<String>) -> Self {
        SourceFile {
            name: name.into(),
            contents: contents.into(),
        }
    }
}

/// One document of a file.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The file it came from.
    pub file: String,
    /// The line (1-based) where the document starts.
    pub line: u32,
    /// The document.
    pub value: serde_json::Value,
}

impl Document {
    /// The document's location (its first line).
    pub fn location(&self) -> Location {
        Location {
            file: self.file.clone(),
            line: self.line,
            column: 1,
        }
    }

    /// The location of the line holding `key:` at or after the document
    /// start, for errors about one field; the document's start otherwise.
    pub fn field_location(&self, text: &str, key: &str) -> Location {
        let start = usize::try_from(self.line.saturating_sub(1)).unwrap_or(0);
        let needle = format!("{key}:");
        for (offset, line) in text.lines().enumerate().skip(start) {
            if offset > start && line.starts_with("---") {
                break;
            }
            if let Some(col) = line.find(&needle) {
                let before = line.get(..col).unwrap_or("");
                if before.trim_start_matches([' ', '-']).is_empty() {
                    return Location {
                        file: self.file.clone(),
                        line: u32::try_from(offset + 1).unwrap_or(self.line),
                        column: u32::try_from(col + 1).unwrap_or(1),
                    };
                }
            }
        }
        self.location()
    }
}

/// The lines (1-based) where each document of `text` starts: the first
/// line, and the line after each `---` separator.
fn document_starts(text: &str) -> Vec<u32> {
    let mut starts = Vec::new();
    let mut first_content = None;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if line.starts_with("---") {
            starts.push(n.saturating_add(1));
        } else if first_content.is_none() && !line.trim().is_empty() && !line.starts_with('#') {
            first_content = Some(n);
        }
    }
    if starts
        .first()
        .is_none_or(|&s| first_content.is_some_and(|f| f < s))
    {
        starts.insert(0, first_content.unwrap_or(1));
    }
    starts
}

/// Every non-empty document of `file`, with `List` objects expanded into
/// their items.
pub(crate) fn documents(file: &SourceFile) -> Result<Vec<Document>, GatekeeperError> {
    let starts = document_starts(&file.contents);
    let mut out = Vec::new();
    for (index, doc) in yaml_serde::Deserializer::from_str(&file.contents).enumerate() {
        let line = starts.get(index).copied().unwrap_or(1);
        let value = serde_json::Value::deserialize(doc).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|l| {
                    (
                        u32::try_from(l.line()).unwrap_or(line),
                        u32::try_from(l.column()).unwrap_or(1),
                    )
                })
                .unwrap_or((line, 1));
            GatekeeperError::Yaml {
                location: Location {
                    file: file.name.clone(),
                    line,
                    column,
                },
                message: err.to_string(),
            }
        })?;
        if value.is_null() {
            continue;
        }
        let is_list = value.get("kind").and_then(|k| k.as_str()) == Some("List")
            || value
                .get("kind")
                .and_then(|k| k.as_str())
                .is_some_and(|k| k.ends_with("List") && value.get("items").is_some());
        if is_list && let Some(items) = value.get("items").and_then(|i| i.as_array()) {
            for item in items {
                out.push(Document {
                    file: file.name.clone(),
                    line,
                    value: item.clone(),
                });
            }
            continue;
        }
        out.push(Document {
            file: file.name.clone(),
            line,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_remembers_their_lines() {
        let file = SourceFile::new(
            "x.yaml",
            "# comment\nkind: A\n---\nkind: B\n---\n\n---\nkind: List\nitems:\n- kind: C\n- kind: D\n",
        );
        let docs = documents(&file).unwrap();
        let kinds: Vec<_> = docs
            .iter()
            .map(|d| d.value["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["A", "B", "C", "D"]);
        assert_eq!(docs[0].line, 2);
        assert_eq!(docs[1].line, 4);
    }

    #[test]
    fn yaml_errors_are_located() {
        let file = SourceFile::new("bad.yaml", "kind: A\nmetadata:\n  name: [unclosed\n");
        let err = documents(&file).unwrap_err();
        match err {
            GatekeeperError::Yaml { location, .. } => {
                assert_eq!(location.file, "bad.yaml");
                assert!(location.line >= 3, "{location}");
            }
            other => panic!("{other}"),
        }
    }
}
