//! Static analysis of parsed modules: what packages and rules they define,
//! and a recursion check.
//!
//! OPA rejects recursive rules and functions at compile time. regorus
//! detects recursive *rules* while evaluating, but a recursive *function*
//! recurses until the thread's stack overflows, which aborts the process.
//! So the call graph of functions is checked here, before a program is
//! accepted: any cycle is a compile error, as in OPA.

use std::collections::HashMap;

use regorus::unstable::{Expr, Literal, Module as Ast, Query, Rule, RuleHead};

use super::{Location, Module, Origin, RegoError};

/// A compiled module: its package and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The module's name (file name).
    pub name: String,
    /// Where it sits in an enclosing file.
    pub origin: Option<Origin>,
    /// The package, as path components (`["k8s", "labels"]`).
    pub package: Vec<String>,
    /// Its rules, one entry per name, in order of first definition.
    pub rules: Vec<RuleInfo>,
}

/// A rule (or function) a module defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The rule's name within its package (the first component of its head).
    pub name: String,
    /// Where it is first defined.
    pub location: Location,
    /// True for functions (`f(x) = y { ... }`).
    pub function: bool,
}

impl ModuleInfo {
    /// The package's path in `data`: `data.k8s.labels`.
    pub fn package_path(&self) -> String {
        path_string(&self.package)
    }

    /// The path of rule `name` in this package: `data.k8s.labels.violation`.
    pub fn rule_path(&self, name: &str) -> String {
        let mut components = self.package.clone();
        components.push(name.to_owned());
        path_string(&components)
    }

    /// True when the module defines a rule called `name`.
    pub fn defines(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r.name == name)
    }
}

/// `data` followed by each component, dotted when it is an identifier and
/// bracketed otherwise.
fn path_string(components: &[String]) -> String {
    let mut out = String::from("data");
    for c in components {
        let identifier = c
            .chars()
            .next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if identifier {
            out.push('.');
            out.push_str(c);
        } else {
            out.push('[');
            out.push_str(&serde_json::Value::from(c.as_str()).to_string());
            out.push(']');
        }
    }
    out
}

/// The components of a reference (`a.b["c"]`), when it is a plain one.
fn ref_path(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Var { value, .. } => Some(vec![value.as_string().ok()?.to_string()]),
        Expr::RefDot { refr, field, .. } => {
            let mut path = ref_path(refr)?;
            path.push(field.1.as_string().ok()?.to_string());
            Some(path)
        }
        Expr::RefBrack { refr, index, .. } => match index.as_ref() {
            Expr::String { value, .. } | Expr::RawString { value, .. } => {
                let mut path = ref_path(refr)?;
                path.push(value.as_string().ok()?.to_string());
                Some(path)
            }
            _ => None,
        },
        _ => None,
    }
}

/// A call site: the called path and where the call is.
type Call = (Vec<String>, u32, u32);

#[allow(unreachable_patterns)] // variants behind regorus features
fn visit_expr(expr: &Expr, calls: &mut Vec<Call>) {
    match expr {
        Expr::Call {
            span, fcn, params, ..
        } => {
            if let Some(path) = ref_path(fcn) {
                calls.push((path, span.line, span.col));
            }
            for p in params {
                visit_expr(p, calls);
            }
        }
        Expr::Array { items, .. } | Expr::Set { items, .. } => {
            for i in items {
                visit_expr(i, calls);
            }
        }
        Expr::Object { fields, .. } => {
            for (_, k, v) in fields {
                visit_expr(k, calls);
                visit_expr(v, calls);
            }
        }
        Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
            visit_expr(term, calls);
            visit_query(query, calls);
        }
        Expr::ObjectCompr {
            key, value, query, ..
        } => {
            visit_expr(key, calls);
            visit_expr(value, calls);
            visit_query(query, calls);
        }
        Expr::UnaryExpr { expr, .. } => visit_expr(expr, calls),
        Expr::RefDot { refr, .. } => visit_expr(refr, calls),
        Expr::RefBrack { refr, index, .. } => {
            visit_expr(refr, calls);
            visit_expr(index, calls);
        }
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => {
            visit_expr(lhs, calls);
            visit_expr(rhs, calls);
        }
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => {
            if let Some(k) = key {
                visit_expr(k, calls);
            }
            visit_expr(value, calls);
            visit_expr(collection, calls);
        }
        _ => {}
    }
}

fn visit_query(query: &Query, calls: &mut Vec<Call>) {
    for stmt in &query.stmts {
        match &stmt.literal {
            Literal::SomeVars { .. } => {}
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    visit_expr(k, calls);
                }
                visit_expr(value, calls);
                visit_expr(collection, calls);
            }
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => visit_expr(expr, calls),
            Literal::Every { domain, query, .. } => {
                visit_expr(domain, calls);
                visit_query(query, calls);
            }
        }
        for with in &stmt.with_mods {
            visit_expr(&with.refr, calls);
            visit_expr(&with.r#as, calls);
        }
    }
}

/// A rule's head path, whether it is a function, and every call it makes.
fn rule_parts(rule: &Rule) -> Option<(Vec<String>, bool, Vec<Call>)> {
    let mut calls = Vec::new();
    match rule {
        Rule::Spec { head, bodies, .. } => {
            let (refr, function) = match head {
                RuleHead::Compr { refr, assign, .. } => {
                    if let Some(a) = assign {
                        visit_expr(&a.value, &mut calls);
                    }
                    (refr, false)
                }
                RuleHead::Set { refr, key, .. } => {
                    if let Some(k) = key {
                        visit_expr(k, &mut calls);
                    }
                    (refr, false)
                }
                RuleHead::Func {
                    refr, args, assign, ..
                } => {
                    for a in args {
                        visit_expr(a, &mut calls);
                    }
                    if let Some(a) = assign {
                        visit_expr(&a.value, &mut calls);
                    }
                    (refr, true)
                }
            };
            for body in bodies {
                if let Some(a) = &body.assign {
                    visit_expr(&a.value, &mut calls);
                }
                visit_query(&body.query, &mut calls);
            }
            Some((ref_path(refr)?, function, calls))
        }
        Rule::Default {
            refr, args, value, ..
        } => {
            visit_expr(value, &mut calls);
            Some((ref_path(refr)?, !args.is_empty(), calls))
        }
    }
}

fn locate(module: &Module, line: u32, column: u32) -> Location {
    match &module.origin {
        Some(origin) => origin.translate(line, column),
        None => Location {
            file: module.name.clone(),
            line,
            column,
        },
    }
}

struct Node {
    name: String,
    location: Location,
    calls: Vec<usize>,
}

/// Describes `asts` (parsed from `sources`, same order) and rejects
/// recursion.
pub(crate) fn analyse(
    asts: &[regorus::unstable::Ref<Ast>],
    sources: &[Module],
) -> Result<Vec<ModuleInfo>, RegoError> {
    let mut infos = Vec::with_capacity(asts.len());
    // Every rule and function, by full path (package + head).
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_path: HashMap<Vec<String>, usize> = HashMap::new();
    let mut pending: Vec<(usize, usize, Vec<Call>)> = Vec::new();
    for (index, (ast, source)) in asts.iter().zip(sources).enumerate() {
        let package = ref_path(&ast.package.refr)
            .ok_or_else(|| RegoError::Compile {
                location: Some(locate(source, 1, 1)),
                message: "unsupported package path".to_owned(),
            })?
            .into_iter()
            .skip_while(|c| c == "data")
            .collect::<Vec<_>>();
        let mut rules: Vec<RuleInfo> = Vec::new();
        for rule in &ast.policy {
            let Some((head, function, calls)) = rule_parts(rule) else {
                continue;
            };
            let span = rule.span();
            let location = locate(source, span.line, span.col);
            let Some(name) = head.first().cloned() else {
                continue;
            };
            if !rules.iter().any(|r| r.name == name) {
                rules.push(RuleInfo {
                    name: name.clone(),
                    location: location.clone(),
                    function,
                });
            }
            let mut full = package.clone();
            full.extend(head.iter().cloned());
            let node = *by_path.entry(full).or_insert_with(|| {
                nodes.push(Node {
                    name: head.join("."),
                    location,
                    calls: Vec::new(),
                });
                nodes.len() - 1
            });
            pending.push((index, node, calls));
        }
        infos.push(ModuleInfo {
            name: source.name.clone(),
            origin: source.origin.clone(),
            package,
            rules,
        });
    }
    // Resolve call sites to the functions they name.
    for (module_index, node, calls) in pending {
        let (Some(ast), Some(info)) = (asts.get(module_index), infos.get(module_index)) else {
            continue;
        };
        for (path, _, _) in calls {
            let full = resolve(ast, &info.package, &path);
            if let Some(&callee) = full.as_ref().and_then(|f| by_path.get(f))
                && let Some(n) = nodes.get_mut(node)
                && !n.calls.contains(&callee)
            {
                n.calls.push(callee);
            }
        }
    }
    if let Some(cycle) = find_cycle(&nodes) {
        let names: Vec<&str> = cycle
            .iter()
            .filter_map(|&i| nodes.get(i).map(|n| n.name.as_str()))
            .collect();
        let location = cycle
            .first()
            .and_then(|&i| nodes.get(i))
            .map(|n| n.location.clone());
        return Err(RegoError::Compile {
            location,
            message: format!(
                "recursion is not allowed in Rego: {} calls itself ({})",
                names.first().copied().unwrap_or("a function"),
                names.join(" -> ")
            ),
        });
    }
    Ok(infos)
}

/// The full path (package + name) a call refers to, when it names a rule.
fn resolve(ast: &Ast, package: &[String], path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    if rest.is_empty() {
        let mut full = package.to_vec();
        full.push(first.clone());
        return Some(full);
    }
    if first == "data" {
        return Some(rest.to_vec());
    }
    for import in &ast.imports {
        let Some(target) = ref_path(&import.refr) else {
            continue;
        };
        let alias = match &import.r#as {
            Some(span) => span.text().to_owned(),
            None => match target.last() {
                Some(last) => last.clone(),
                None => continue,
            },
        };
        if alias == *first && target.first().map(String::as_str) == Some("data") {
            let mut full: Vec<String> = target.into_iter().skip(1).collect();
            full.extend(rest.iter().cloned());
            return Some(full);
        }
    }
    None
}

/// A cycle in the call graph, as node indices (first node repeated last).
fn find_cycle(nodes: &[Node]) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; nodes.len()];
    for start in 0..nodes.len() {
        if state.get(start) != Some(&0) {
            continue;
        }
        // Iterative depth-first search: (node, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        if let Some(s) = state.get_mut(start) {
            *s = 1;
        }
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            let next = nodes.get(node).and_then(|n| n.calls.get(*edge)).copied();
            *edge += 1;
            match next {
                Some(callee) => match state.get(callee) {
                    Some(0) => {
                        if let Some(s) = state.get_mut(callee) {
                            *s = 1;
                        }
                        stack.push((callee, 0));
                    }
                    Some(1) => {
                        let from = stack.iter().position(|&(n, _)| n == callee)?;
                        let mut cycle: Vec<usize> =
                            stack.get(from..)?.iter().map(|&(n, _)| n).collect();
                        cycle.push(callee);
                        return Some(cycle);
                    }
                    _ => {}
                },
                None => {
                    if let Some(s) = state.get_mut(node) {
                        *s = 2;
                    }
                    stack.pop();
                }
            }
        }
    }
    None
}
