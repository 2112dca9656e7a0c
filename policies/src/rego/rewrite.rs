//! Source pre-processing steps for Rego that regorus needs. Both keep every
//! line where it was, so error locations stay exact.
//!
//! **A line starting with `(`** ends the previous expression in OPA: in
//!
//! ```text
//! input.parameters.minimumReplicaSpread
//! (hpa.spec.maxReplicas - hpa.spec.minReplicas) >= 2
//! ```
//!
//! the first line is an expression of its own. regorus reads it as a call
//! `input.parameters.minimumReplicaSpread(...)`. The step inserts the `;`
//! separator OPA implies at the end of the first line.
//!
//! **Several bodies after one head** (Rego v0): in Rego v0 a rule may list several bodies after one head —
//! `violation[{"msg": m}] { a } { b }` — meaning one rule per body (the rule
//! holds when any body does). regorus accepts that for complete rules and
//! functions but rejects it for partial set rules ("else cannot be used with
//! set rules"), and Gatekeeper policies use it. This step rewrites every
//! additional body into its own rule by repeating the head in front of it,
//! on the same line, so line numbers in errors stay exact:
//!
//! ```text
//! violation[{"msg": m}] { a } { b }   =>   violation[{"msg": m}] { a } violation[{"msg": m}] { b }
//! ```
//!
//! `else` chains are left alone. The scan understands strings, raw strings,
//! comments and bracket nesting, so braces inside them never count.

/// What the scanner is looking at, at nesting depth 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a rule head (or a statement without a body).
    Head,
    /// Inside a body opened at depth 0.
    Body,
    /// Just after a body closed.
    AfterBody,
    /// After `else`: the next depth-0 body belongs to the same rule.
    Else,
}

/// Lexemes after which a `{` is a value (object or set), not a body.
fn is_operator(lexeme: &str) -> bool {
    matches!(
        lexeme,
        "=" | ":="
            | "=="
            | "!="
            | "<"
            | ">"
            | "<="
            | ">="
            | "+"
            | "-"
            | "*"
            | "/"
            | "%"
            | "&"
            | "|"
            | ","
            | ":"
            | "in"
            | "contains"
            | "("
            | "["
    )
}

/// Scans one lexeme starting at `i`; returns its end. Strings and comments
/// are single lexemes.
fn lexeme_end(bytes: &[u8], i: usize) -> usize {
    let Some(&c) = bytes.get(i) else {
        return i;
    };
    match c {
        b'"' => {
            let mut j = i + 1;
            while let Some(&b) = bytes.get(j) {
                j += 1;
                match b {
                    b'\\' => j += 1,
                    b'"' | b'\n' => break,
                    _ => {}
                }
            }
            j.min(bytes.len())
        }
        b'`' => {
            let mut j = i + 1;
            while let Some(&b) = bytes.get(j) {
                j += 1;
                if b == b'`' {
                    break;
                }
            }
            j
        }
        b'#' => {
            let mut j = i;
            while bytes.get(j).is_some_and(|&b| b != b'\n') {
                j += 1;
            }
            j
        }
        c if c.is_ascii_alphanumeric() || c == b'_' => {
            let mut j = i;
            while bytes
                .get(j)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
            {
                j += 1;
            }
            j
        }
        b':' | b'=' | b'!' | b'<' | b'>' if bytes.get(i + 1) == Some(&b'=') => i + 2,
        _ => {
            // One character (UTF-8 continuation bytes stay attached).
            let mut j = i + 1;
            while bytes.get(j).is_some_and(|b| (b & 0xC0) == 0x80) {
                j += 1;
            }
            j
        }
    }
}

/// Keywords after which a `(` on the next line still continues the
/// expression.
fn continues_expression(lexeme: &str) -> bool {
    matches!(
        lexeme,
        "not"
            | "some"
            | "every"
            | "with"
            | "as"
            | "in"
            | "contains"
            | "if"
            | "else"
            | "default"
            | "import"
            | "package"
    ) || is_operator(lexeme)
        || matches!(lexeme, "{" | ";" | "." | "!")
}

/// Inserts `;` at the end of a line when the next line starts with `(` and
/// the line ended with a complete term, inside a body, comprehension or
/// other brackets; `None` when nothing changes.
fn separate_lines_starting_with_paren(src: &str) -> Option<String> {
    let bytes = src.as_bytes();
    let mut depth: usize = 0;
    let mut previous = "";
    let mut previous_end = 0;
    let mut newline_since_previous = false;
    let mut inserts: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let Some(&c) = bytes.get(i) else { break };
        if c == b'\n' {
            newline_since_previous = true;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let end = lexeme_end(bytes, i).max(i + 1);
        let lexeme = src.get(i..end).unwrap_or("");
        if lexeme.starts_with('#') {
            i = end;
            continue;
        }
        if lexeme == "("
            && depth > 0
            && newline_since_previous
            && !previous.is_empty()
            && previous != "}"
            && !continues_expression(previous)
        {
            inserts.push(previous_end);
        }
        match lexeme {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = lexeme;
        previous_end = end;
        newline_since_previous = false;
        i = end;
    }
    if inserts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(src.len() + inserts.len());
    let mut copied = 0;
    for at in inserts {
        out.push_str(src.get(copied..at)?);
        out.push(';');
        copied = at;
    }
    out.push_str(src.get(copied..)?);
    Some(out)
}

/// The deepest `[`/`{` nesting accepted. regorus parses nested array and
/// object literals and comprehensions in time exponential in their depth
/// (depth 16 takes seconds, depth 20 minutes), so deeper sources are refused
/// before parsing. Real policies stay far below this.
pub(crate) const MAX_BRACKET_DEPTH: usize = 12;

/// The byte offset of the first `[` or `{` nested deeper than
/// [`MAX_BRACKET_DEPTH`], if any.
pub(crate) fn too_deep(src: &str) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut depth: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some(&c) = bytes.get(i) else { break };
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let end = lexeme_end(bytes, i).max(i + 1);
        match c {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_BRACKET_DEPTH {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i = end;
    }
    None
}

/// Applies every step (the multi-body split only to Rego v0); `None` when
/// the source needs no change.
pub(crate) fn preprocess(src: &str, v0: bool) -> Option<String> {
    let split = if v0 {
        split_multi_body_rules(src)
    } else {
        None
    };
    let text = split.as_deref().unwrap_or(src);
    separate_lines_starting_with_paren(text).or(split)
}

/// Rewrites additional rule bodies into separate rules; `None` when the
/// source has none.
pub(crate) fn split_multi_body_rules(src: &str) -> Option<String> {
    let bytes = src.as_bytes();
    let mut depth: usize = 0;
    let mut state = State::Head;
    let mut stmt_start: Option<usize> = None;
    let mut head: Option<(usize, usize)> = None;
    let mut previous: &str = "";
    let mut newline_since_previous = true;
    let mut inserts: Vec<(usize, (usize, usize))> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let Some(&c) = bytes.get(i) else { break };
        if c == b'\n' {
            newline_since_previous = true;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let end = lexeme_end(bytes, i).max(i + 1);
        let lexeme = src.get(i..end).unwrap_or("");
        if lexeme.starts_with('#') {
            i = end;
            continue;
        }
        if depth == 0 {
            match state {
                State::AfterBody if lexeme == "{" => {
                    if let Some(h) = head {
                        inserts.push((i, h));
                    }
                    state = State::Body;
                }
                State::AfterBody if lexeme == "else" => state = State::Else,
                State::AfterBody => {
                    stmt_start = Some(i);
                    head = None;
                    state = State::Head;
                }
                State::Else if lexeme == "{" && !is_operator(previous) => state = State::Body,
                State::Head => {
                    let starts_statement = stmt_start.is_none()
                        || (newline_since_previous
                            && !is_operator(previous)
                            && lexeme
                                .bytes()
                                .next()
                                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_'));
                    if starts_statement && lexeme != "{" {
                        stmt_start = Some(i);
                    }
                    if lexeme == "{" && !is_operator(previous) {
                        if let Some(start) = stmt_start {
                            let head_end =
                                src.get(start..i).map_or(i, |h| start + h.trim_end().len());
                            head = Some((start, head_end));
                        }
                        state = State::Body;
                    }
                }
                _ => {}
            }
        }
        match lexeme {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth = depth.saturating_sub(1);
                if depth == 0 && lexeme == "}" && state == State::Body {
                    state = State::AfterBody;
                }
            }
            _ => {}
        }
        previous = lexeme;
        newline_since_previous = false;
        i = end;
    }
    if inserts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(src.len() + inserts.len() * 32);
    let mut copied = 0;
    for (at, (start, end)) in inserts {
        out.push_str(src.get(copied..at)?);
        out.push_str(src.get(start..end)?);
        out.push(' ');
        copied = at;
    }
    out.push_str(src.get(copied..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{preprocess, split_multi_body_rules as split};

    #[test]
    fn deep_nesting_is_found_outside_strings() {
        let deep = format!("package x\np = {}1{}\n", "[".repeat(13), "]".repeat(13));
        assert_eq!(super::too_deep(&deep), Some(26));
        let ok = format!("package x\np = {}1{}\n", "[".repeat(12), "]".repeat(12));
        assert_eq!(super::too_deep(&ok), None);
        let quoted = format!(
            "package x\np = \"{}\"\n# {}\n",
            "[".repeat(40),
            "{".repeat(40)
        );
        assert_eq!(super::too_deep(&quoted), None);
    }

    #[test]
    fn a_line_starting_with_a_paren_is_a_new_expression() {
        let src = "package x\np {\n  input.a\n  (input.b - 1) >= 2\n}\n";
        assert_eq!(
            preprocess(src, true).unwrap(),
            "package x\np {\n  input.a;\n  (input.b - 1) >= 2\n}\n"
        );
        for unchanged in [
            "package x\np {\n  x := f(\n    1)\n}\n",
            "package x\np {\n  x := 1 +\n  (2)\n}\n",
            "package x\np {\n  not\n  (input.a)\n}\n",
            "package x\np { f(1) }\n",
        ] {
            assert_eq!(preprocess(unchanged, true), None, "{unchanged}");
        }
    }

    #[test]
    fn repeats_the_head_before_each_extra_body() {
        let src = "package x\n\nviolation[{\"msg\": m}] {\n  m := \"a\"\n} {\n  m := \"b\"\n}\n";
        let out = split(src).unwrap();
        assert_eq!(
            out,
            "package x\n\nviolation[{\"msg\": m}] {\n  m := \"a\"\n} violation[{\"msg\": m}] {\n  m := \"b\"\n}\n"
        );
        assert_eq!(out.lines().count(), src.lines().count());
    }

    #[test]
    fn functions_with_values_and_three_bodies() {
        let src = "f(o) = s {\n  o.kind == \"Pod\"\n  s := 1\n} {\n  s := 2\n} {\n  s := 3\n}\n";
        let out = split(src).unwrap();
        assert_eq!(out.matches("f(o) = s {").count(), 3, "{out}");
    }

    #[test]
    fn leaves_else_chains_values_and_single_bodies_alone() {
        for src in [
            "package x\np = 1 { false } else = 2 { true }\n",
            "package x\np = {\"a\": 1} { true }\nq := {1, 2}\nr { x := {\"k\": \"}\"} }\n",
            "package x\n# { not a body } {\ns[v] { v := \"{ } {\" }\nt { `raw { }` }\n",
            "package x\nimport future.keywords.if\nimport future.keywords.contains\nv contains {\"m\": 1} if { true }\n",
        ] {
            assert_eq!(split(src), None, "{src}");
        }
    }

    #[test]
    fn heads_after_bodiless_statements_are_found() {
        let src = "package x\nlimit := 3\ndefault allow = false\nd[m] { m := 1 } { m := 2 }\n";
        let out = split(src).unwrap();
        assert!(out.contains("d[m] { m := 1 } d[m] { m := 2 }"), "{out}");
    }
}
