//! OPA's `sprintf`, with Go's `fmt.Sprintf` semantics.
//!
//! OPA converts each argument to a Go value — integers to `int` (or
//! `*big.Int`), other numbers to `float64`, strings to `string`, anything else
//! to its Rego text — and hands them to `fmt.Sprintf`. Go never fails: a
//! missing argument prints `%!v(MISSING)`, an extra one
//! `%!(EXTRA string=x)`, a verb of the wrong type `%!d(string=x)`. regorus's
//! own `sprintf` fails in those cases (so the policy's message, and with it
//! the violation, silently disappears) and can panic on some widths; this
//! implementation follows Go, including Go's bound on widths and precisions
//! (an absurd one ends the format with `%!(NOVERB)`), so a format string
//! cannot allocate without limit.

use std::fmt::Write as _;

use regorus::Value;

/// Go's limit on widths and precisions.
const MAX_WIDTH: usize = 1_000_000;

/// An argument as OPA hands it to Go.
#[derive(Debug, Clone)]
enum Arg {
    Int(i128),
    BigInt(String),
    Float(f64),
    Str(String),
}

impl Arg {
    fn from_value(v: &Value) -> Arg {
        match v {
            Value::Number(n) => {
                if n.is_integer() {
                    match v.as_i128() {
                        Ok(i) => Arg::Int(i),
                        Err(_) => Arg::BigInt(n.format_decimal()),
                    }
                } else {
                    Arg::Float(v.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Arg::Str(s.to_string()),
            other => Arg::Str(rego_text(other)),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Arg::Int(_) => "int",
            Arg::BigInt(_) => "*big.Int",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
        }
    }
}

/// A verb's flags, width and precision.
#[derive(Debug, Clone, Copy, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Go's `strconv.Quote`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if !c.is_control() && c != '\u{feff}' => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// The Rego text of a value, as OPA prints terms (`["a", 1]`, `{"k": true}`,
/// `{1, 2}`, `set()`).
fn rego_text(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.format_decimal(),
        Value::String(s) => quote(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(rego_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Set(s) if s.is_empty() => "set()".to_owned(),
        Value::Set(s) => format!(
            "{{{}}}",
            s.iter().map(rego_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter_sorted()
                .map(|(k, v)| format!("{}: {}", rego_text(k), rego_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Undefined => "undefined".to_owned(),
    }
}

/// Pads `body` (with its `sign` in front) to the spec's width.
fn pad(spec: &Spec, sign: &str, body: &str, numeric: bool) -> String {
    let len = sign.chars().count() + body.chars().count();
    let width = spec.width.unwrap_or(0);
    if len >= width {
        return format!("{sign}{body}");
    }
    let fill = width - len;
    if spec.minus {
        format!("{sign}{body}{}", " ".repeat(fill))
    } else if spec.zero && numeric {
        format!("{sign}{}{body}", "0".repeat(fill))
    } else {
        format!("{}{sign}{body}", " ".repeat(fill))
    }
}

fn sign_of(spec: &Spec, negative: bool) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_int(spec: &Spec, verb: char, i: i128) -> Option<String> {
    let magnitude = i.unsigned_abs();
    let (digits, prefix) = match verb {
        'v' | 'd' => (magnitude.to_string(), ""),
        'b' => (format!("{magnitude:b}"), if spec.sharp { "0b" } else { "" }),
        'o' => (format!("{magnitude:o}"), if spec.sharp { "0" } else { "" }),
        'O' => (format!("{magnitude:o}"), "0o"),
        'x' => (format!("{magnitude:x}"), if spec.sharp { "0x" } else { "" }),
        'X' => (format!("{magnitude:X}"), if spec.sharp { "0X" } else { "" }),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            return Some(pad(spec, "", &c.to_string(), false));
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            let quoted = quote(&c.to_string());
            let inner = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or("");
            let inner = if c == '"' { "\"" } else { inner };
            let inner = if c == '\'' { "\\'" } else { inner };
            return Some(pad(spec, "", &format!("'{inner}'"), false));
        }
        'U' => {
            return Some(pad(spec, "", &format!("U+{magnitude:04X}"), false));
        }
        _ => return None,
    };
    let digits = match spec.precision {
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        Some(0) if magnitude == 0 => String::new(),
        _ => digits,
    };
    let sign = sign_of(spec, i < 0);
    // With a precision, Go pads with spaces, not zeros.
    let zero_ok = spec.precision.is_none();
    let mut s = *spec;
    s.zero = s.zero && zero_ok;
    Some(pad(&s, &format!("{sign}{prefix}"), &digits, true))
}

/// Go's `%e`: mantissa, `e`, sign, at least two exponent digits.
fn go_exponent(rust: &str, upper: bool) -> String {
    let (mantissa, exp) = rust.split_once('e').unwrap_or((rust, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}{e}{sign}{:02}", exp.unsigned_abs())
}

fn strip_fraction_zeros(s: &str) -> String {
    if !s.contains('.') {
        return s.to_owned();
    }
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (s.get(..i).unwrap_or(s), s.get(i..).unwrap_or("")),
        None => (s, ""),
    };
    let trimmed = mantissa.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}{exp}")
}

fn format_float(spec: &Spec, verb: char, f: f64) -> Option<String> {
    if f.is_nan() || f.is_infinite() {
        let body = if f.is_nan() {
            "NaN".to_owned()
        } else {
            "Inf".to_owned()
        };
        let sign = if f.is_nan() {
            ""
        } else {
            sign_of(
                &Spec {
                    plus: true,
                    ..*spec
                },
                f < 0.0,
            )
        };
        return Some(pad(spec, sign, &body, false));
    }
    let negative = f.is_sign_negative() && f != 0.0;
    let a = f.abs();
    let body = match verb {
        'e' | 'E' => {
            let p = spec.precision.unwrap_or(6);
            go_exponent(&format!("{a:.p$e}"), verb == 'E')
        }
        'f' | 'F' => {
            let p = spec.precision.unwrap_or(6);
            format!("{a:.p$}")
        }
        'v' | 'g' | 'G' => {
            let upper = verb == 'G';
            match spec.precision {
                None => {
                    // Go's shortest form: exponent notation below 1e-4 and
                    // from 1e6 up ("1e+06"), plain decimals in between.
                    let shortest = format!("{a:e}");
                    let exp: i32 = shortest
                        .split_once('e')
                        .and_then(|(_, e)| e.parse().ok())
                        .unwrap_or(0);
                    if !(-4..6).contains(&exp) {
                        go_exponent(&shortest, upper)
                    } else {
                        format!("{a}")
                    }
                }
                Some(p) => {
                    let p = p.max(1);
                    let sci = format!("{a:.prec$e}", prec = p - 1);
                    let exp: i32 = sci
                        .split_once('e')
                        .and_then(|(_, e)| e.parse().ok())
                        .unwrap_or(0);
                    let p_i32 = i32::try_from(p).unwrap_or(i32::MAX);
                    if exp < -4 || exp >= p_i32 {
                        let s = go_exponent(&sci, upper);
                        if spec.sharp {
                            s
                        } else {
                            strip_fraction_zeros(&s)
                        }
                    } else {
                        let decimals = usize::try_from(p_i32 - 1 - exp).unwrap_or(0);
                        let s = format!("{a:.decimals$}");
                        if spec.sharp {
                            s
                        } else {
                            strip_fraction_zeros(&s)
                        }
                    }
                }
            }
        }
        _ => return None,
    };
    Some(pad(spec, sign_of(spec, negative), &body, true))
}

fn format_str(spec: &Spec, verb: char, s: &str) -> Option<String> {
    let truncated: String = match spec.precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_owned(),
    };
    let body = match verb {
        'v' | 's' => truncated,
        'q' => {
            if spec.sharp && !truncated.contains('`') && !truncated.chars().any(char::is_control) {
                format!("`{truncated}`")
            } else {
                quote(&truncated)
            }
        }
        'x' | 'X' => {
            let mut out = String::new();
            for (i, b) in truncated.bytes().enumerate() {
                if spec.space && i > 0 {
                    out.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    out.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    let _ = write!(out, "{b:02x}");
                } else {
                    let _ = write!(out, "{b:02X}");
                }
            }
            out
        }
        _ => return None,
    };
    Some(pad(spec, "", &body, false))
}

/// `%v` of an argument, for the `%!verb(type=value)` notes.
fn plain(arg: &Arg) -> String {
    let spec = Spec::default();
    match arg {
        Arg::Int(i) => i.to_string(),
        Arg::BigInt(s) | Arg::Str(s) => s.clone(),
        Arg::Float(f) => format_float(&spec, 'v', *f).unwrap_or_default(),
    }
}

fn format_arg(spec: &Spec, verb: char, arg: &Arg) -> String {
    let formatted = match (verb, arg) {
        ('T', _) => Some(pad(spec, "", arg.type_name(), false)),
        (_, Arg::Int(i)) => format_int(spec, verb, *i),
        ('v' | 'd' | 's', Arg::BigInt(s)) => Some(pad(spec, "", s, true)),
        (_, Arg::BigInt(_)) => None,
        (_, Arg::Float(f)) => format_float(spec, verb, *f),
        (_, Arg::Str(s)) => format_str(spec, verb, s),
    };
    formatted.unwrap_or_else(|| format!("%!{verb}({}={})", arg.type_name(), plain(arg)))
}

/// Reads a width or precision; `Err` when it is too large.
fn number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Option<usize>, ()> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        let value = n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize);
        n = Some(value);
        if value > MAX_WIDTH {
            // Consume the rest of the digits.
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            return Err(());
        }
    }
    Ok(n)
}

/// `fmt.Sprintf(format, args...)` as OPA calls it.
pub(crate) fn sprintf(format: &str, values: &[Value]) -> String {
    let args: Vec<Arg> = values.iter().map(Arg::from_value).collect();
    let mut out = String::with_capacity(format.len() + 16 * args.len());
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            chars.next();
        }
        // As in Go, an absurdly long width or precision ends the format.
        let Ok(width) = number(&mut chars) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        spec.width = width;
        if chars.peek() == Some(&'.') {
            chars.next();
            let Ok(precision) = number(&mut chars) else {
                out.push_str("%!(NOVERB)");
                break;
            };
            spec.precision = Some(precision.unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            Some(arg) => out.push_str(&format_arg(&spec, verb, arg)),
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
        }
        next += 1;
    }
    if next < args.len() {
        let extra: Vec<String> = args
            .get(next..)
            .unwrap_or_default()
            .iter()
            .map(|a| format!("{}={}", a.type_name(), plain(a)))
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: &str) -> Vec<Value> {
        match Value::from_json_str(json).unwrap() {
            Value::Array(a) => a.iter().cloned().collect(),
            other => vec![other],
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            ("%v <%v> %d", r#"["a", 1, 2]"#, "a <1> 2"),
            (
                "%s has %v",
                r#"["x", ["b", 1, true]]"#,
                "x has [\"b\", 1, true]",
            ),
            (
                "%v",
                r#"[{"k": {"b": 1, "a": null}}]"#,
                "{\"k\": {\"a\": null, \"b\": 1}}",
            ),
            ("%v %v", r#"[true, null]"#, "true null"),
            ("%q", r#"["a\"b"]"#, "\"a\\\"b\""),
            ("%5d|%-5d|%05d", "[42, 42, 42]", "   42|42   |00042"),
            ("%x %X %o %b", "[255, 255, 8, 5]", "ff FF 10 101"),
            (
                "%.2f %e %g",
                "[3.14159, 1234.5678, 0.5]",
                "3.14 1.234568e+03 0.5",
            ),
            ("%v", "[1.5]", "1.5"),
            ("%v %v", "[1234567.5, 0.00001]", "1.2345675e+06 1e-05"),
            ("%.3s", r#"["abcdef"]"#, "abc"),
            ("%+d %d", "[5, -5]", "+5 -5"),
            ("100%%", "[]", "100%"),
        ];
        for (format, args, want) in cases {
            assert_eq!(sprintf(format, &v(args)), want, "{format} {args}");
        }
    }

    #[test]
    fn mismatches_never_fail() {
        assert_eq!(sprintf("%v and %v", &v(r#"["a"]"#)), "a and %!v(MISSING)");
        assert_eq!(sprintf("%v", &v(r#"["a", 2]"#)), "a%!(EXTRA int=2)");
        assert_eq!(sprintf("%d", &v(r#"["a"]"#)), "%!d(string=a)");
        assert_eq!(sprintf("%f", &v("[5]")), "%!f(int=5)");
        assert_eq!(sprintf("%s", &v("[true]")), "true");
        assert_eq!(sprintf("end %", &v("[]")), "end %!(NOVERB)");
    }

    #[test]
    fn widths_are_bounded() {
        assert_eq!(
            sprintf("%99999999999d", &v("[1]")),
            "%!(NOVERB)%!(EXTRA int=1)"
        );
        assert_eq!(
            sprintf("%.99999999999f x", &v("[1.5]")),
            "%!(NOVERB)%!(EXTRA float64=1.5)"
        );
        assert_eq!(sprintf("%3d", &v("[1]")), "  1");
    }
}
