//! The evaluator.
//!
//! Every operator and function is total: on an error it records the error and goes on with the
//! zero value of the type it needed (`false`, `0`, `""`). Rules worth naming:
//!
//! * **Errors propagate as zero values.** An operator or function one of whose operands raised
//!   an error while being evaluated (anywhere inside it) returns the zero value of its own
//!   return type at once, without evaluating further operands or computing anything: `1 / 0`
//!   is `0` with a `math` error, so `TRUE AND (1 != 1 / 0)` is `false`; `missing / 0` is `0`
//!   with only a `missingAttribute` error; `NOT missing` is `false`. An attribute the event
//!   lacks raises `missingAttribute` and is `false` when it is the whole expression.
//! * **An operator's own errors do not zero it.** When the operator itself fails to cast an
//!   operand it goes on with the zero value of the cast's target type (`NOT 10` is `true` with
//!   a `cast` error); a function's own argument errors give the result the specification names
//!   (`LEFT('abc', -2)` is `'abc'` with a `functionEvaluation` error).
//! * **Implicit casts.** `NOT`, `AND`, `OR`, `XOR` cast operands to Boolean; `-`, arithmetic and
//!   `<`, `<=`, `>`, `>=` to Integer; `LIKE` its left side to String; `=`, `!=` and `<>` the left
//!   operand to the type of the right one; `IN` the set elements to the type of the left one.
//!   An implicit Integer to Boolean cast is a `cast` error with the value `false` (the test kit
//!   requires `NOT 10` to be `true` with a `cast` error), while the explicit `BOOL(10)` is `true`.
//! * **Short circuits.** `AND` stops at the first `false`, `OR` at the first `true`, `IN` at
//!   the first equal element. A chain `a AND b AND c` means `a AND (b AND c)`: an error inside
//!   any operand but the first makes the chain `false`.
//! * **Overflow.** Integer overflow (`+`, `-`, `*`, `/`, negation) is a `math` error with the
//!   result saturated to the 32-bit range, like `ABS(-2147483648)`.

use std::borrow::Cow;

use crate::ast::{Attribute, BinaryOp, Expr, LogicalOp};
use crate::error::{ErrorKind, EvalError};
use crate::event::Attributes;
use crate::functions;
use crate::value::{Type, Value, describe, parse_bool, parse_int, to_string_cast};

/// Where errors go: a list ([`Collect`]), or a flag when only "was there one" matters
/// ([`Flag`], for filters, so no message is ever formatted).
pub(crate) trait Sink {
    fn error(&mut self, kind: ErrorKind, message: impl FnOnce() -> String);

    /// How many errors were raised so far.
    fn count(&self) -> usize;
}

/// Collects every error.
#[derive(Default)]
pub(crate) struct Collect(pub(crate) Vec<EvalError>);

impl Sink for Collect {
    fn error(&mut self, kind: ErrorKind, message: impl FnOnce() -> String) {
        self.0.push(EvalError::new(kind, message()));
    }

    fn count(&self) -> usize {
        self.0.len()
    }
}

/// Counts errors.
#[derive(Default)]
pub(crate) struct Flag(pub(crate) usize);

impl Sink for Flag {
    fn error(&mut self, _: ErrorKind, _: impl FnOnce() -> String) {
        self.0 += 1;
    }

    fn count(&self) -> usize {
        self.0
    }
}

/// Evaluates an operand: `None` when it raised an error, so the caller returns its zero value.
pub(crate) fn operand<'a, E: Attributes + ?Sized, S: Sink>(
    expr: &'a Expr,
    event: &'a E,
    sink: &mut S,
) -> Option<Value<'a>> {
    let before = sink.count();
    let v = eval(expr, event, sink);
    (sink.count() == before).then_some(v)
}

/// Evaluates `expr` against `event`.
pub(crate) fn eval<'a, E: Attributes + ?Sized, S: Sink>(
    expr: &'a Expr,
    event: &'a E,
    sink: &mut S,
) -> Value<'a> {
    match expr {
        Expr::Literal(v) => v.borrowed(),
        Expr::Attribute(a) => attribute(a, event, sink),
        Expr::Exists(a) => Value::Boolean(event.has_attribute(a)),
        Expr::Not(x) => match operand(x, event, sink) {
            Some(v) => Value::Boolean(!to_bool(v, sink)),
            None => Type::Boolean.zero(),
        },
        Expr::Neg(x) => match operand(x, event, sink) {
            Some(v) => {
                let i = to_int(v, sink);
                Value::Integer(i.checked_neg().unwrap_or_else(|| {
                    sink.error(ErrorKind::Math, || format!("-({i}) overflows 32 bits"));
                    i32::MAX
                }))
            }
            None => Type::Integer.zero(),
        },
        Expr::Binary { op, left, right } => binary(*op, left, right, event, sink),
        Expr::Logical { op, operands } => Value::Boolean(logical(*op, operands, event, sink)),
        Expr::Like {
            negated,
            operand: x,
            pattern,
        } => match operand(x, event, sink) {
            Some(v) => Value::Boolean(pattern.matches(&to_string_cast(v)) != *negated),
            None => Type::Boolean.zero(),
        },
        Expr::In {
            negated,
            operand: x,
            set,
        } => match in_set(x, set, event, sink) {
            Some(found) => Value::Boolean(found != *negated),
            None => Type::Boolean.zero(),
        },
        Expr::Call {
            function: Some(f),
            args,
            ..
        } => functions::call(*f, args, event, sink),
        Expr::Call {
            name,
            args,
            function: None,
        } => {
            sink.error(ErrorKind::MissingFunction, || {
                missing_function_message(name, args.len())
            });
            Type::Boolean.zero()
        }
    }
}

pub(crate) fn missing_function_message(name: &str, arity: usize) -> String {
    let s = if arity == 1 { "" } else { "s" };
    format!("no function {name} takes {arity} argument{s}")
}

fn attribute<'a, E: Attributes + ?Sized, S: Sink>(
    a: &Attribute,
    event: &'a E,
    sink: &mut S,
) -> Value<'a> {
    event.attribute(a).unwrap_or_else(|| {
        sink.error(ErrorKind::MissingAttribute, || {
            format!("the event has no attribute `{a}`")
        });
        Type::Boolean.zero()
    })
}

fn binary<'a, E: Attributes + ?Sized, S: Sink>(
    op: BinaryOp,
    left: &'a Expr,
    right: &'a Expr,
    event: &'a E,
    sink: &mut S,
) -> Value<'a> {
    let zero = match op {
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod | BinaryOp::Add | BinaryOp::Sub => {
            Type::Integer.zero()
        }
        _ => Type::Boolean.zero(),
    };
    let Some(l) = operand(left, event, sink) else {
        return zero;
    };
    let Some(r) = operand(right, event, sink) else {
        return zero;
    };
    match op {
        BinaryOp::Eq => Value::Boolean(equal(l, r, sink)),
        BinaryOp::NotEq => Value::Boolean(!equal(l, r, sink)),
        _ => {
            let (a, b) = (to_int(l, sink), to_int(r, sink));
            match op {
                BinaryOp::Lt => Value::Boolean(a < b),
                BinaryOp::Le => Value::Boolean(a <= b),
                BinaryOp::Gt => Value::Boolean(a > b),
                BinaryOp::Ge => Value::Boolean(a >= b),
                _ => Value::Integer(arithmetic(op, a, b, sink)),
            }
        }
    }
}

fn arithmetic<S: Sink>(op: BinaryOp, a: i32, b: i32, sink: &mut S) -> i32 {
    let (checked, saturated) = match op {
        BinaryOp::Add => (a.checked_add(b), a.saturating_add(b)),
        BinaryOp::Sub => (a.checked_sub(b), a.saturating_sub(b)),
        BinaryOp::Mul => (a.checked_mul(b), a.saturating_mul(b)),
        BinaryOp::Div | BinaryOp::Mod if b == 0 => {
            let what = if op == BinaryOp::Div {
                "division"
            } else {
                "modulo"
            };
            sink.error(ErrorKind::Math, || {
                format!("{what} by zero: {a} {} 0", op.symbol())
            });
            return 0;
        }
        // Truncated division; i32::MIN / -1 is the one overflow.
        BinaryOp::Div => (a.checked_div(b), i32::MAX),
        // The remainder of i32::MIN % -1 is 0, no overflow in the mathematical sense.
        BinaryOp::Mod => (Some(a.wrapping_rem(b)), 0),
        _ => (Some(0), 0),
    };
    checked.unwrap_or_else(|| {
        sink.error(ErrorKind::Math, || {
            format!("{a} {} {b} overflows 32 bits", op.symbol())
        });
        saturated
    })
}

/// `x = y`: `x` is cast to the type of `y`.
fn equal<S: Sink>(x: Value<'_>, y: Value<'_>, sink: &mut S) -> bool {
    match y {
        Value::Boolean(b) => to_bool(x, sink) == b,
        Value::Integer(i) => to_int(x, sink) == i,
        Value::String(s) => to_string_cast(x) == s,
    }
}

/// Whether `x` is in `set`; `None` when evaluating `x` or an element raised an error.
fn in_set<'a, E: Attributes + ?Sized, S: Sink>(
    x: &'a Expr,
    set: &'a [Expr],
    event: &'a E,
    sink: &mut S,
) -> Option<bool> {
    let x = operand(x, event, sink)?;
    for element in set {
        let y = operand(element, event, sink)?;
        // The element is cast to the type of `x`.
        if equal(y, x.borrowed(), sink) {
            return Some(true);
        }
    }
    Some(false)
}

/// `AND`/`OR`/`XOR` over `a0 op (a1 op (… op an))`, each node of that right-nested tree
/// following the operator rules: an error raised inside any node below the first makes every
/// node above it, so the chain, `false`.
fn logical<'a, E: Attributes + ?Sized, S: Sink>(
    op: LogicalOp,
    operands: &'a [Expr],
    event: &'a E,
    sink: &mut S,
) -> bool {
    let last = operands.len().saturating_sub(1);
    let mut parity = false;
    for (i, x) in operands.iter().enumerate() {
        let before = sink.count();
        let Some(v) = operand(x, event, sink) else {
            return false;
        };
        let b = to_bool(v, sink);
        // A failed cast is an error of the node that casts this operand: node i, or for the
        // last operand node last - 1. Below the first node it zeroes the chain.
        if sink.count() > before && i.min(last.saturating_sub(1)) >= 1 {
            return false;
        }
        match op {
            LogicalOp::And if !b => return false,
            LogicalOp::Or if b => return true,
            LogicalOp::Xor => parity ^= b,
            _ => {}
        }
    }
    match op {
        LogicalOp::And => true,
        LogicalOp::Or => false,
        LogicalOp::Xor => parity,
    }
}

/// Implicit cast to Boolean.
pub(crate) fn to_bool<S: Sink>(v: Value<'_>, sink: &mut S) -> bool {
    match v {
        Value::Boolean(b) => b,
        Value::String(ref s) => parse_bool(s).unwrap_or_else(|| {
            sink.error(ErrorKind::Cast, || cast_message(&v, Type::Boolean));
            false
        }),
        Value::Integer(_) => {
            sink.error(ErrorKind::Cast, || {
                format!("{} is not implicitly a Boolean (use BOOL())", describe(&v))
            });
            false
        }
    }
}

/// Implicit (and explicit) cast to Integer.
pub(crate) fn to_int<S: Sink>(v: Value<'_>, sink: &mut S) -> i32 {
    match v {
        Value::Integer(i) => i,
        Value::Boolean(b) => i32::from(b),
        Value::String(ref s) => parse_int(s).unwrap_or_else(|| {
            sink.error(ErrorKind::Cast, || cast_message(&v, Type::Integer));
            0
        }),
    }
}

/// Explicit cast to Boolean (`BOOL()`): integers are `true` unless 0.
pub(crate) fn to_bool_explicit<S: Sink>(v: Value<'_>, sink: &mut S) -> bool {
    match v {
        Value::Integer(i) => i != 0,
        other => to_bool(other, sink),
    }
}

pub(crate) fn to_string<'a>(v: Value<'a>) -> Cow<'a, str> {
    to_string_cast(v)
}

fn cast_message(v: &Value<'_>, to: Type) -> String {
    format!("cannot cast {} to {to}", describe(v))
}
