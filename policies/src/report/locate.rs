//! Where objects are in a manifest: the first line of each YAML document.

/// The 1-based line where each YAML document of `text` starts (its first
/// line of content: not blank, not a comment, not a directive or a `---`
/// marker alone), one entry per document as a YAML parser iterates them
/// (empty documents included, at the line of their marker). A JSON text is
/// one document.
pub fn document_lines(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    // The line of the current document's marker, and whether it has content.
    let mut current: Option<u32> = None;
    let mut has_content = false;
    let mut explicit_end = false;
    let mut in_directives = true;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let trimmed = line.trim_end();
        let is_start =
            trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t");
        let is_end = trimmed == "..." || trimmed.starts_with("... ");
        if is_start {
            // A marker closes the document before it, if one is open.
            if let Some(start) = current.take()
                && (has_content || !explicit_end)
            {
                out.push(start);
            }
            has_content = false;
            explicit_end = false;
            in_directives = false;
            current = Some(n);
            let rest = trimmed.get(3..).unwrap_or("").trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                has_content = true;
            }
            continue;
        }
        if is_end {
            if let Some(start) = current.take() {
                out.push(start);
            }
            has_content = false;
            explicit_end = true;
            in_directives = true;
            continue;
        }
        let blank = trimmed.trim_start().is_empty() || trimmed.trim_start().starts_with('#');
        if blank {
            continue;
        }
        if in_directives && current.is_none() && trimmed.starts_with('%') {
            continue;
        }
        in_directives = false;
        if current.is_none() {
            current = Some(n);
            has_content = true;
            explicit_end = false;
        } else if !has_content {
            current = Some(n);
            has_content = true;
        }
    }
    if let Some(start) = current
        && (has_content || !explicit_end)
    {
        // A trailing marker with nothing after it is still a (null) document,
        // except right after an explicit end.
        out.push(start);
    }
    out
}
