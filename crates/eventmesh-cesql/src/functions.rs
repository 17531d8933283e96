//! The built-in functions (specification sections 3.5 and 3.7), dispatched by name and arity.
//!
//! | function | signature |
//! |---|---|
//! | `LENGTH(x)` | String → Integer (characters) |
//! | `CONCAT(x1, …)` | String^n → String, n ≥ 0 |
//! | `CONCAT_WS(d, x1, …)` | String × String^n → String, n ≥ 0 |
//! | `LOWER(x)`, `UPPER(x)`, `TRIM(x)` | String → String (Unicode) |
//! | `LEFT(x, n)`, `RIGHT(x, n)` | String × Integer → String |
//! | `SUBSTRING(x, pos)`, `SUBSTRING(x, pos, len)` | String × Integer (× Integer) → String |
//! | `ABS(x)` | Integer → Integer |
//! | `INT(x)`, `BOOL(x)`, `STRING(x)` | any → the named type (explicit casts) |

use std::borrow::Cow;

use crate::ast::Expr;
use crate::error::ErrorKind;
use crate::eval::{Sink, operand, to_bool_explicit, to_int, to_string};
use crate::event::Attributes;
use crate::value::{Type, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Length,
    Concat,
    ConcatWs,
    Lower,
    Upper,
    Trim,
    Left,
    Right,
    Substring,
    Abs,
    Int,
    Bool,
    String,
}

impl Builtin {
    /// The function called `name` (upper case) with `arity` arguments, if there is one.
    pub(crate) fn resolve(name: &str, arity: usize) -> Option<Builtin> {
        let (f, ok) = match name {
            "LENGTH" => (Builtin::Length, arity == 1),
            "CONCAT" => (Builtin::Concat, true),
            "CONCAT_WS" => (Builtin::ConcatWs, arity >= 1),
            "LOWER" => (Builtin::Lower, arity == 1),
            "UPPER" => (Builtin::Upper, arity == 1),
            "TRIM" => (Builtin::Trim, arity == 1),
            "LEFT" => (Builtin::Left, arity == 2),
            "RIGHT" => (Builtin::Right, arity == 2),
            "SUBSTRING" => (Builtin::Substring, arity == 2 || arity == 3),
            "ABS" => (Builtin::Abs, arity == 1),
            "INT" => (Builtin::Int, arity == 1),
            "BOOL" => (Builtin::Bool, arity == 1),
            "STRING" => (Builtin::String, arity == 1),
            _ => return None,
        };
        ok.then_some(f)
    }

    pub(crate) fn return_type(self) -> Type {
        match self {
            Builtin::Length | Builtin::Abs | Builtin::Int => Type::Integer,
            Builtin::Bool => Type::Boolean,
            _ => Type::String,
        }
    }
}

/// Calls `f` (already resolved, so `args` has a length it accepts).
pub(crate) fn call<'a, E: Attributes + ?Sized, S: Sink>(
    f: Builtin,
    args: &'a [Expr],
    event: &'a E,
    sink: &mut S,
) -> Value<'a> {
    // `None`: an argument raised an error, so the result is the zero value.
    apply(f, args, event, sink).unwrap_or_else(|| f.return_type().zero())
}

fn apply<'a, E: Attributes + ?Sized, S: Sink>(
    f: Builtin,
    args: &'a [Expr],
    event: &'a E,
    sink: &mut S,
) -> Option<Value<'a>> {
    let arg = |i: usize, sink: &mut S| match args.get(i) {
        Some(x) => operand(x, event, sink),
        // Unreachable for a resolved call; the zero value keeps it total anyway.
        None => Some(Type::String.zero()),
    };
    let string = |v: Value<'a>| -> Cow<'a, str> { to_string(v) };
    Some(match f {
        Builtin::Int => Value::Integer(to_int(arg(0, sink)?, sink)),
        Builtin::Bool => Value::Boolean(to_bool_explicit(arg(0, sink)?, sink)),
        Builtin::String => Value::String(string(arg(0, sink)?)),
        Builtin::Length => {
            let s = string(arg(0, sink)?);
            Value::Integer(i32::try_from(s.chars().count()).unwrap_or(i32::MAX))
        }
        Builtin::Lower => Value::String(Cow::Owned(string(arg(0, sink)?).to_lowercase())),
        Builtin::Upper => Value::String(Cow::Owned(string(arg(0, sink)?).to_uppercase())),
        Builtin::Trim => Value::String(match string(arg(0, sink)?) {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
        }),
        Builtin::Abs => {
            let i = to_int(arg(0, sink)?, sink);
            Value::Integer(i.checked_abs().unwrap_or_else(|| {
                sink.error(ErrorKind::Math, || format!("ABS({i}) overflows 32 bits"));
                i32::MAX
            }))
        }
        Builtin::Concat => {
            if args.len() == 1 {
                Value::String(string(arg(0, sink)?))
            } else {
                let mut out = String::new();
                for i in 0..args.len() {
                    out.push_str(&string(arg(i, sink)?));
                }
                Value::String(Cow::Owned(out))
            }
        }
        Builtin::ConcatWs => {
            let delimiter = string(arg(0, sink)?);
            let mut out = String::new();
            for i in 1..args.len() {
                if i > 1 {
                    out.push_str(&delimiter);
                }
                out.push_str(&string(arg(i, sink)?));
            }
            Value::String(Cow::Owned(out))
        }
        Builtin::Left | Builtin::Right => {
            let s = string(arg(0, sink)?);
            let n = to_int(arg(1, sink)?, sink);
            let len = s.chars().count();
            match usize::try_from(n) {
                Err(_) => {
                    sink.error(ErrorKind::FunctionEvaluation, || {
                        let name = if f == Builtin::Left { "LEFT" } else { "RIGHT" };
                        format!("{name}() needs a length of 0 or more, not {n}")
                    });
                    Value::String(s)
                }
                Ok(n) if n >= len => Value::String(s),
                Ok(n) if f == Builtin::Left => Value::String(slice_chars(s, 0, n)),
                Ok(n) => Value::String(slice_chars(s, len - n, n)),
            }
        }
        Builtin::Substring => {
            let s = string(arg(0, sink)?);
            let pos = to_int(arg(1, sink)?, sink);
            let take = match args.len() {
                3 => Some(to_int(arg(2, sink)?, sink)),
                _ => None,
            };
            substring(s, pos, take, sink)
        }
    })
}

/// `SUBSTRING(s, pos[, len])`: 1-based `pos`, negative from the end, 0 gives `""`.
fn substring<'a, S: Sink>(s: Cow<'a, str>, pos: i32, len: Option<i32>, sink: &mut S) -> Value<'a> {
    let n = s.chars().count();
    let in_range = i64::from(pos).unsigned_abs() <= n as u64;
    if !in_range || len.is_some_and(|l| l < 0) {
        sink.error(ErrorKind::FunctionEvaluation, || match len {
            Some(l) if l < 0 => format!("SUBSTRING() needs a length of 0 or more, not {l}"),
            _ => format!("SUBSTRING() position {pos} is outside a string of {n} characters"),
        });
        return Type::String.zero();
    }
    if pos == 0 {
        return Type::String.zero();
    }
    let start = if pos > 0 {
        pos.unsigned_abs() as usize - 1
    } else {
        n - pos.unsigned_abs() as usize
    };
    let available = n - start;
    let take = len.map_or(available, |l| (l.unsigned_abs() as usize).min(available));
    Value::String(slice_chars(s, start, take))
}

/// Characters `start..start + count` of `s` (which has at least that many).
fn slice_chars(s: Cow<'_, str>, start: usize, count: usize) -> Cow<'_, str> {
    let byte = |s: &str, nth: usize| s.char_indices().nth(nth).map_or(s.len(), |(i, _)| i);
    match s {
        Cow::Borrowed(b) => {
            let from = byte(b, start);
            let to = from + byte(&b[from..], count);
            Cow::Borrowed(&b[from..to])
        }
        Cow::Owned(o) => {
            let from = byte(&o, start);
            let to = from + byte(&o[from..], count);
            Cow::Owned(o[from..to].to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Collect;

    fn sub(s: &str, pos: i32, len: Option<i32>) -> (String, usize) {
        let mut sink = Collect::default();
        let v = substring(Cow::Borrowed(s), pos, len, &mut sink);
        (v.to_string(), sink.0.len())
    }

    #[test]
    fn substring_positions() {
        assert_eq!(sub("abcdef", 1, None), ("abcdef".into(), 0));
        assert_eq!(sub("abcdef", 6, None), ("f".into(), 0));
        assert_eq!(sub("abcdef", 7, None), ("".into(), 1));
        assert_eq!(sub("Sakila", -3, None), ("ila".into(), 0));
        assert_eq!(sub("Sakila", -6, None), ("Sakila".into(), 0));
        assert_eq!(sub("Sakila", -7, None), ("".into(), 1));
        assert_eq!(sub("Sakila", -5, Some(3)), ("aki".into(), 0));
        assert_eq!(sub("abcdef", 2, Some(100)), ("bcdef".into(), 0));
        assert_eq!(sub("abcdef", 2, Some(-1)), ("".into(), 1));
        assert_eq!(sub("abcdef", 0, Some(1)), ("".into(), 0));
        assert_eq!(sub("héllo", 2, Some(2)), ("él".into(), 0));
        assert_eq!(sub("", 1, None), ("".into(), 1));
        assert_eq!(sub("ab", i32::MIN, None), ("".into(), 1));
    }

    #[test]
    fn arities() {
        assert_eq!(Builtin::resolve("CONCAT", 0), Some(Builtin::Concat));
        assert_eq!(Builtin::resolve("CONCAT_WS", 0), None);
        assert_eq!(Builtin::resolve("SUBSTRING", 4), None);
        assert_eq!(Builtin::resolve("NOPE", 1), None);
    }
}
