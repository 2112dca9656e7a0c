//! Extension builtins registered on every engine.
//!
//! regorus looks extensions up before its own builtins, which lets this
//! module both fill gaps and bound dangerous calls:
//!
//! - `sprintf` with Go's `fmt.Sprintf` semantics, as OPA has it (a missing
//!   or extra argument is printed, not an error; widths are bounded);
//! - `regex.match` and OPA's deprecated `re_match`, with a per-engine pattern
//!   cache (no process-wide lock on the request path);
//! - OPA's deprecated v0 builtins that regorus does not implement and that
//!   older Gatekeeper policies still call: `set_diff`, `any`,
//!   `all`, `cast_array`, `cast_set`, `cast_string`, `cast_boolean`,
//!   `cast_null`, `cast_object`, `net.cidr_overlap`;
//! - Gatekeeper's `external_data`, which answers with an error response (no
//!   external data providers here), so policies written to fail closed on
//!   provider errors do so;
//! - `numbers.range` and `numbers.range_step`, re-implemented with a bound on
//!   the array they build (the interpreter's own version reserves the whole
//!   array up front, so a huge range would abort the process);
//! - `test.sleep` and `http.send`, refused: a policy must not stall a worker
//!   or reach the network.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use anyhow::{anyhow, bail};
use regorus::Value;

use super::Limits;

/// How many compiled patterns each engine keeps for `re_match`.
const REGEX_CACHE: usize = 64;
/// The largest pattern `re_match` compiles (bytes of compiled program).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn arg(args: &[Value], i: usize) -> anyhow::Result<&Value> {
    args.get(i)
        .ok_or_else(|| anyhow!("missing argument {}", i + 1))
}

fn string_arg<'a>(name: &str, args: &'a [Value], i: usize) -> anyhow::Result<&'a str> {
    match arg(args, i)? {
        Value::String(s) => Ok(s),
        other => bail!(
            "{name}: operand {} must be a string, got {}",
            i + 1,
            type_name(other)
        ),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

fn elements(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) => Some(a.iter().cloned().collect()),
        Value::Set(s) => Some(s.iter().cloned().collect()),
        _ => None,
    }
}

fn integer(name: &str, v: &Value) -> anyhow::Result<i64> {
    match v {
        Value::Number(_) => v
            .as_i64()
            .map_err(|_| anyhow!("{name}: operand must be an integer")),
        other => bail!("{name}: operand must be a number, got {}", type_name(other)),
    }
}

fn bounded_range(name: &str, from: i64, to: i64, step: i64, max: usize) -> anyhow::Result<Value> {
    if step <= 0 {
        bail!("{name}: step must be a positive integer");
    }
    let span = u128::from(from.abs_diff(to));
    let count = span / u128::from(step.unsigned_abs()) + 1;
    if count > max as u128 {
        bail!("{name}: the range has {count} elements, more than the limit of {max}");
    }
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut v = from;
    loop {
        out.push(Value::from(v));
        let next = if to >= from {
            v.checked_add(step)
        } else {
            v.checked_sub(step)
        };
        match next {
            Some(n) if (to >= from && n <= to) || (to < from && n >= to) => v = n,
            _ => break,
        }
    }
    Ok(Value::from(out))
}

fn cidr_contains(cidr: &str, ip: &str) -> anyhow::Result<bool> {
    let (net, bits) = cidr
        .split_once('/')
        .ok_or_else(|| anyhow!("net.cidr_overlap: {cidr:?} is not a CIDR"))?;
    let net: IpAddr = net.parse()?;
    let bits: u32 = bits.parse()?;
    let addr: IpAddr = ip.split('/').next().unwrap_or(ip).parse()?;
    let (n, a, width) = match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            (u128::from(u32::from(n)), u128::from(u32::from(a)), 32u32)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128u32),
        _ => return Ok(false),
    };
    if bits > width {
        bail!("net.cidr_overlap: prefix length {bits} is too long");
    }
    let shift = width - bits;
    Ok(shift >= 128 || (n >> shift) == (a >> shift))
}

fn external_data_response(request: &Value) -> Value {
    let keys: Vec<Value> = match request {
        Value::Object(o) => o
            .get(&Value::from("keys"))
            .and_then(elements)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let message = "external data providers are not available in Tollgate";
    let errors: Vec<Value> = keys
        .into_iter()
        .map(|k| Value::from(vec![k, Value::from(message)]))
        .collect();
    let mut out = BTreeMap::new();
    out.insert(Value::from("responses"), Value::from(Vec::<Value>::new()));
    out.insert(Value::from("errors"), Value::from(errors));
    out.insert(Value::from("status_code"), Value::from(503u64));
    out.insert(Value::from("system_error"), Value::from(message));
    Value::from(out)
}

/// Registers every extension on `engine`.
pub(crate) fn register(engine: &mut regorus::Engine, limits: &Limits) -> anyhow::Result<()> {
    // `re_match` (OPA's deprecated name) and `regex.match` share one
    // implementation with a per-engine pattern cache: each worker keeps its
    // own, so matching takes no lock (regorus's own cache is process-wide).
    for name in ["re_match", "regex.match"] {
        let mut patterns: HashMap<String, regex::Regex> = HashMap::new();
        engine.add_extension(
            name.to_owned(),
            2,
            Box::new(move |args: Vec<Value>| {
                let pattern = string_arg(name, &args, 0)?;
                let text = string_arg(name, &args, 1)?;
                if !patterns.contains_key(pattern) {
                    let re = regex::RegexBuilder::new(pattern)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()?;
                    if patterns.len() >= REGEX_CACHE {
                        patterns.clear();
                    }
                    patterns.insert(pattern.to_owned(), re);
                }
                let matched = patterns.get(pattern).is_some_and(|re| re.is_match(text));
                Ok(Value::from(matched))
            }),
        )?;
    }
    engine.add_extension(
        "sprintf".to_owned(),
        2,
        Box::new(|args: Vec<Value>| {
            let format = string_arg("sprintf", &args, 0)?;
            let values = match arg(&args, 1)? {
                Value::Array(a) => a.iter().cloned().collect::<Vec<_>>(),
                other => bail!(
                    "sprintf: operand 2 must be an array, got {}",
                    type_name(other)
                ),
            };
            Ok(Value::from(super::sprintf::sprintf(format, &values)))
        }),
    )?;
    engine.add_extension(
        "set_diff".to_owned(),
        2,
        Box::new(|args: Vec<Value>| match (arg(&args, 0)?, arg(&args, 1)?) {
            (Value::Set(a), Value::Set(b)) => {
                let out: BTreeSet<Value> = a.iter().filter(|v| !b.contains(v)).cloned().collect();
                Ok(Value::from(out))
            }
            _ => bail!("set_diff: both operands must be sets"),
        }),
    )?;
    engine.add_extension(
        "any".to_owned(),
        1,
        Box::new(|args: Vec<Value>| {
            let items = elements(arg(&args, 0)?)
                .ok_or_else(|| anyhow!("any: operand must be an array or a set"))?;
            Ok(Value::from(items.iter().any(|v| *v == Value::from(true))))
        }),
    )?;
    engine.add_extension(
        "all".to_owned(),
        1,
        Box::new(|args: Vec<Value>| {
            let items = elements(arg(&args, 0)?)
                .ok_or_else(|| anyhow!("all: operand must be an array or a set"))?;
            Ok(Value::from(items.iter().all(|v| *v == Value::from(true))))
        }),
    )?;
    engine.add_extension(
        "cast_array".to_owned(),
        1,
        Box::new(|args: Vec<Value>| {
            elements(arg(&args, 0)?)
                .map(Value::from)
                .ok_or_else(|| anyhow!("cast_array: operand must be an array or a set"))
        }),
    )?;
    engine.add_extension(
        "cast_set".to_owned(),
        1,
        Box::new(|args: Vec<Value>| {
            elements(arg(&args, 0)?)
                .map(|items| Value::from(items.into_iter().collect::<BTreeSet<_>>()))
                .ok_or_else(|| anyhow!("cast_set: operand must be an array or a set"))
        }),
    )?;
    for (name, accepts) in [
        ("cast_string", "string"),
        ("cast_boolean", "boolean"),
        ("cast_null", "null"),
        ("cast_object", "object"),
    ] {
        engine.add_extension(
            name.to_owned(),
            1,
            Box::new(move |args: Vec<Value>| {
                let v = arg(&args, 0)?;
                if type_name(v) == accepts {
                    Ok(v.clone())
                } else {
                    bail!("{name}: operand must be {accepts}, got {}", type_name(v))
                }
            }),
        )?;
    }
    engine.add_extension(
        "net.cidr_overlap".to_owned(),
        2,
        Box::new(|args: Vec<Value>| {
            let cidr = string_arg("net.cidr_overlap", &args, 0)?;
            let ip = string_arg("net.cidr_overlap", &args, 1)?;
            Ok(Value::from(cidr_contains(cidr, ip)?))
        }),
    )?;
    engine.add_extension(
        "external_data".to_owned(),
        1,
        Box::new(|args: Vec<Value>| Ok(external_data_response(arg(&args, 0)?))),
    )?;
    let max = limits.max_builtin_elements;
    engine.add_extension(
        "numbers.range".to_owned(),
        2,
        Box::new(move |args: Vec<Value>| {
            let from = integer("numbers.range", arg(&args, 0)?)?;
            let to = integer("numbers.range", arg(&args, 1)?)?;
            bounded_range("numbers.range", from, to, 1, max)
        }),
    )?;
    engine.add_extension(
        "numbers.range_step".to_owned(),
        3,
        Box::new(move |args: Vec<Value>| {
            let from = integer("numbers.range_step", arg(&args, 0)?)?;
            let to = integer("numbers.range_step", arg(&args, 1)?)?;
            let step = integer("numbers.range_step", arg(&args, 2)?)?;
            bounded_range("numbers.range_step", from, to, step, max)
        }),
    )?;
    engine.add_extension(
        "test.sleep".to_owned(),
        1,
        Box::new(|_args: Vec<Value>| -> anyhow::Result<Value> {
            bail!("test.sleep is disabled: a policy may not pause evaluation")
        }),
    )?;
    engine.add_extension(
        "http.send".to_owned(),
        1,
        Box::new(|_args: Vec<Value>| -> anyhow::Result<Value> {
            bail!("http.send is disabled: policies may not make network requests")
        }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_bounded_and_exact() {
        let r = bounded_range("numbers.range", 1, 4, 1, 10).unwrap();
        assert_eq!(r, Value::from(vec![1.into(), 2.into(), 3.into(), 4.into()]));
        let r = bounded_range("numbers.range", 3, 1, 1, 10).unwrap();
        assert_eq!(r, Value::from(vec![3.into(), 2.into(), 1.into()]));
        let r = bounded_range("numbers.range_step", 0, 7, 3, 10).unwrap();
        assert_eq!(r, Value::from(vec![0.into(), 3.into(), 6.into()]));
        let err = bounded_range("numbers.range", 0, i64::MAX, 1, 10).unwrap_err();
        assert!(err.to_string().contains("more than the limit"), "{err}");
    }

    #[test]
    fn cidr_containment() {
        assert!(cidr_contains("10.0.0.0/8", "10.1.2.3").unwrap());
        assert!(!cidr_contains("10.0.0.0/8", "11.1.2.3").unwrap());
        assert!(cidr_contains("::/0", "fe80::1").unwrap());
        assert!(cidr_contains("0.0.0.0/0", "1.2.3.4").unwrap());
    }
}
