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

/// Whether `expr` always evaluates to a Boolean (so [`truth`] can skip building a [`Value`]).
pub(crate) fn is_boolean(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(v) => v.ty() == Type::Boolean,
        Expr::Exists(_)
        | Expr::Not(_)
        | Expr::Logical { .. }
        | Expr::Like { .. }
        | Expr::In { .. } => true,
        Expr::Binary { op, .. } => matches!(
            op,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::Le
                | BinaryOp::Gt
                | BinaryOp::Ge
        ),
        Expr::Call { function, .. } => function.is_none_or(|f| f.return_type() == Type::Boolean),
        Expr::Attribute(_) | Expr::Neg(_) => false,
    }
}

/// [`eval`] for an expression for which [`is_boolean`] holds, straight to a `bool`, with the
/// common filter shapes (`attribute = 'text'`, `attribute LIKE 'pattern'`) taken directly.
pub(crate) fn truth<'a, E: Attributes + ?Sized, S: Sink>(
    expr: &'a Expr,
    event: &'a E,
    sink: &mut S,
) -> bool {
    match expr {
        Expr::Literal(Value::Boolean(b)) => *b,
        Expr::Exists(a) => event.has_attribute(a),
        Expr::Logical { op, operands } => logical(*op, operands, event, sink),
        Expr::Not(x) if is_boolean(x) => {
            let before = sink.count();
            let b = truth(x, event, sink);
            sink.count() == before && !b
        }
        Expr::Binary {
            op: op @ (BinaryOp::Eq | BinaryOp::NotEq),
            left,
            right,
        } => match (&**left, &**right) {
            (Expr::Attribute(a), Expr::Literal(Value::String(text))) => match event.attribute(a) {
                Some(v) => (to_string_cast(v) == **text) == (*op == BinaryOp::Eq),
                None => {
                    missing_attribute(a, sink);
                    false
                }
            },
            _ => binary(*op, left, right, event, sink) == Value::Boolean(true),
        },
        Expr::Binary {
            op: op @ (BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge),
            left,
            right,
        } => ordering(*op, left, right, event, sink),
        Expr::Like {
            negated,
            operand: x,
            pattern,
        } => {
            let v = match &**x {
                Expr::Attribute(a) => match event.attribute(a) {
                    Some(v) => v,
                    None => {
                        missing_attribute(a, sink);
                        return false;
                    }
                },
                other => match operand(other, event, sink) {
                    Some(v) => v,
                    None => return false,
                },
            };
            pattern.matches(&to_string_cast(v)) != *negated
        }
        other => eval(other, event, sink) == Value::Boolean(true),
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
        missing_attribute(a, sink);
        Type::Boolean.zero()
    })
}

fn missing_attribute<S: Sink>(a: &Attribute, sink: &mut S) {
    sink.error(ErrorKind::MissingAttribute, || {
        format!("the event has no attribute `{a}`")
    });
}

/// An operand of an Integer operator: computed straight to `i32` when it is itself
/// arithmetic (no [`Value`] on the way), else the value still to be cast.
enum Num<'a> {
    Int(i32),
    Val(Value<'a>),
}

impl Num<'_> {
    fn into_int<S: Sink>(self, sink: &mut S) -> i32 {
        match self {
            Num::Int(i) => i,
            Num::Val(v) => to_int(v, sink),
        }
    }
}

/// Evaluates an operand of an Integer operator; `None` when it raised an error.
fn num_operand<'a, E: Attributes + ?Sized, S: Sink>(
    x: &'a Expr,
    event: &'a E,
    sink: &mut S,
) -> Option<Num<'a>> {
    match x {
        Expr::Literal(Value::Integer(i)) => Some(Num::Int(*i)),
        Expr::Attribute(a) => match event.attribute(a) {
            Some(Value::Integer(i)) => Some(Num::Int(i)),
            Some(v) => Some(Num::Val(v)),
            None => {
                missing_attribute(a, sink);
                None
            }
        },
        Expr::Binary { op, left, right } if op.is_arithmetic() => {
            let before = sink.count();
            let i = arithmetic_node(*op, left, right, event, sink);
            (sink.count() == before).then_some(Num::Int(i))
        }
        other => operand(other, event, sink).map(Num::Val),
    }
}

/// The value of `left op right` for an arithmetic operator.
fn arithmetic_node<'a, E: Attributes + ?Sized, S: Sink>(
    op: BinaryOp,
    left: &'a Expr,
    right: &'a Expr,
    event: &'a E,
    sink: &mut S,
) -> i32 {
    let Some(l) = num_operand(left, event, sink) else {
        return 0;
    };
    let Some(r) = num_operand(right, event, sink) else {
        return 0;
    };
    let (a, b) = (l.into_int(sink), r.into_int(sink));
    arithmetic(op, a, b, sink)
}

/// The value of `left op right` for `<`, `<=`, `>`, `>=`.
fn ordering<'a, E: Attributes + ?Sized, S: Sink>(
    op: BinaryOp,
    left: &'a Expr,
    right: &'a Expr,
    event: &'a E,
    sink: &mut S,
) -> bool {
    let Some(l) = num_operand(left, event, sink) else {
        return false;
    };
    let Some(r) = num_operand(right, event, sink) else {
        return false;
    };
    let (a, b) = (l.into_int(sink), r.into_int(sink));
    match op {
        BinaryOp::Lt => a < b,
        BinaryOp::Le => a <= b,
        BinaryOp::Gt => a > b,
        _ => a >= b,
    }
}

fn binary<'a, E: Attributes + ?Sized, S: Sink>(
    op: BinaryOp,
    left: &'a Expr,
    right: &'a Expr,
    event: &'a E,
    sink: &mut S,
) -> Value<'a> {
    match op {
        BinaryOp::Eq | BinaryOp::NotEq => {
            let Some(l) = operand(left, event, sink) else {
                return Type::Boolean.zero();
            };
            let Some(r) = operand(right, event, sink) else {
                return Type::Boolean.zero();
            };
            Value::Boolean(equal(l, r, sink) == (op == BinaryOp::Eq))
        }
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            Value::Boolean(ordering(op, left, right, event, sink))
        }
        _ => Value::Integer(arithmetic_node(op, left, right, event, sink)),
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
        let y = match element {
            Expr::Literal(v) => v.borrowed(),
            other => operand(other, event, sink)?,
        };
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
        let b = if is_boolean(x) {
            let b = truth(x, event, sink);
            if sink.count() > before {
                return false;
            }
            b
        } else {
            let Some(v) = operand(x, event, sink) else {
                return false;
            };
            to_bool(v, sink)
        };
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
