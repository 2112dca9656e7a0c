//! Where a Rego module sits inside a larger file: ConstraintTemplates embed
//! Rego in YAML block scalars, and errors must point at the YAML file's own
//! lines and columns, not at lines of the extracted text.

use super::Location;

/// The position of an embedded module's first line inside its file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The enclosing file.
    pub file: String,
    /// The file line (1-based) holding the module's first line.
    pub line: u32,
    /// How many columns the module's lines are indented by in the file.
    pub indent: u32,
    /// A description of the field the module came from
    /// (`spec.targets[0].rego`), used when the text could not be located
    /// line by line.
    pub field: Option<String>,
}

impl Origin {
    /// An origin for a module whose exact position is unknown: errors name
    /// the file and field, with module-relative line numbers.
    pub fn unplaced(file: impl Into<String>, field: impl Into<String>) -> Self {
        Origin {
            file: file.into(),
            line: 0,
            indent: 0,
            field: Some(field.into()),
        }
    }

    /// Finds `module` inside `file_text` (a block scalar in YAML, or any
    /// verbatim, uniformly indented copy) and returns its origin, or an
    /// unplaced origin naming `field` when it cannot be found.
    pub fn locate(file: &str, file_text: &str, module: &str, field: &str) -> Self {
        find(file_text, module).map_or_else(
            || Origin::unplaced(file, field),
            |(line, indent)| Origin {
                file: file.to_owned(),
                line,
                indent,
                field: Some(field.to_owned()),
            },
        )
    }

    /// The file position of module line `line`, column `column`.
    pub fn translate(&self, line: u32, column: u32) -> Location {
        if self.line == 0 {
            let file = match &self.field {
                Some(field) => format!("{} ({field})", self.file),
                None => self.file.clone(),
            };
            return Location { file, line, column };
        }
        Location {
            file: self.file.clone(),
            line: self.line.saturating_add(line.saturating_sub(1)),
            column: column.saturating_add(self.indent),
        }
    }
}

/// Finds the file line (1-based) and indentation where `module`'s lines
/// appear verbatim, each indented by the same amount (blank lines aside).
fn find(file_text: &str, module: &str) -> Option<(u32, u32)> {
    let module_lines: Vec<&str> = module.lines().collect();
    let first = module_lines.iter().position(|l| !l.trim().is_empty())?;
    let anchor = module_lines.get(first)?;
    let file_lines: Vec<&str> = file_text.lines().collect();
    for (index, line) in file_lines.iter().enumerate() {
        let Some(indent) = line.len().checked_sub(anchor.len()) else {
            continue;
        };
        if line.get(indent..) != Some(*anchor)
            || !line.get(..indent).is_some_and(|p| p.trim().is_empty())
        {
            continue;
        }
        let Some(start) = index.checked_sub(first) else {
            continue;
        };
        let all_match = module_lines.iter().enumerate().all(|(i, m)| {
            let Some(f) = file_lines.get(start + i) else {
                return m.trim().is_empty();
            };
            if m.trim().is_empty() {
                return f.trim().is_empty();
            }
            f.get(indent..) == Some(*m) && f.get(..indent).is_some_and(|p| p.trim().is_empty())
        });
        if all_match {
            let line = u32::try_from(start + 1).ok()?;
            let indent = u32::try_from(indent).ok()?;
            return Some((line, indent));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_a_literal_block_scalar() {
        let yaml = "spec:\n  targets:\n    - rego: |\n        package x\n\n        violation[{\"msg\": m}] {\n          m := 1\n        }\n";
        let module = "package x\n\nviolation[{\"msg\": m}] {\n  m := 1\n}\n";
        let origin = Origin::locate("t.yaml", yaml, module, "spec.targets[0].rego");
        assert_eq!(origin.line, 4);
        assert_eq!(origin.indent, 8);
        let loc = origin.translate(4, 3);
        assert_eq!(loc.to_string(), "t.yaml:7:11");
    }

    #[test]
    fn falls_back_to_the_field_when_the_text_is_folded() {
        let yaml = "rego: \"package x\\nviolation[m] { m := 1 }\"\n";
        let origin = Origin::locate("t.yaml", yaml, "package x\nviolation[m] { m := 1 }", "rego");
        assert_eq!(origin.line, 0);
        assert_eq!(origin.translate(2, 5).to_string(), "t.yaml (rego):2:5");
    }
}
