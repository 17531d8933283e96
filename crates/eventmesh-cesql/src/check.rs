//! The checker: runs once per expression after parsing. It resolves each function call to a
//! built-in by name and arity, infers static types, and reports what will certainly fail
//! whenever the subexpression runs:
//!
//! * a call that no function matches (`missingFunction`);
//! * a literal that an operator or function must cast and cannot (`cast`), e.g. `NOT 10`,
//!   `'abc' + 1`, `INT('x')`;
//! * division or modulo by a literal zero (`math`).
//!
//! These are reported by [`Expression::diagnostics`](crate::Expression::diagnostics); the
//! expression still parses, and evaluating it raises the same errors where the specification
//! says so (the test kit expects `CONCAT_WS()` to *evaluate* to `false` with a
//! `missingFunction` error). A subscription can refuse an expression with diagnostics.

use crate::ast::{BinaryOp, Expr};
use crate::error::{ErrorKind, EvalError};
use crate::eval::{Collect, missing_function_message, to_bool, to_int};
use crate::functions::Builtin;
use crate::value::{Type, Value};

/// Resolves functions in `expr` and returns the diagnostics.
pub(crate) fn check(expr: &mut Expr) -> Vec<EvalError> {
    let mut diagnostics = Vec::new();
    visit(expr, &mut diagnostics);
    diagnostics
}

/// Resolves and checks `expr`; returns its static type (`None` when it depends on the event:
/// an attribute).
fn visit(expr: &mut Expr, out: &mut Vec<EvalError>) -> Option<Type> {
    match expr {
        Expr::Literal(v) => Some(v.ty()),
        Expr::Attribute(_) => None,
        Expr::Exists(_) => Some(Type::Boolean),
        Expr::Not(x) => {
            visit(x, out);
            literal_cast(x, Type::Boolean, out);
            Some(Type::Boolean)
        }
        Expr::Neg(x) => {
            visit(x, out);
            literal_cast(x, Type::Integer, out);
            Some(Type::Integer)
        }
        Expr::Binary { op, left, right } => {
            visit(left, out);
            let right_type = visit(right, out);
            match op {
                BinaryOp::Eq | BinaryOp::NotEq => {
                    if let Some(t) = right_type {
                        literal_cast(left, t, out);
                    }
                    Some(Type::Boolean)
                }
                _ => {
                    literal_cast(left, Type::Integer, out);
                    literal_cast(right, Type::Integer, out);
                    if matches!(op, BinaryOp::Div | BinaryOp::Mod)
                        && matches!(**right, Expr::Literal(Value::Integer(0)))
                    {
                        out.push(EvalError::new(
                            ErrorKind::Math,
                            format!("{} by the literal 0", op.symbol()),
                        ));
                    }
                    match op {
                        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                            Some(Type::Boolean)
                        }
                        _ => Some(Type::Integer),
                    }
                }
            }
        }
        Expr::Logical { operands, .. } => {
            for x in operands.iter_mut() {
                visit(x, out);
                literal_cast(x, Type::Boolean, out);
            }
            Some(Type::Boolean)
        }
        Expr::Like { operand, .. } => {
            visit(operand, out);
            Some(Type::Boolean)
        }
        Expr::In { operand, set, .. } => {
            let t = visit(operand, out);
            for x in set.iter_mut() {
                visit(x, out);
                if let Some(t) = t {
                    literal_cast(x, t, out);
                }
            }
            Some(Type::Boolean)
        }
        Expr::Call {
            name,
            args,
            function,
        } => {
            for x in args.iter_mut() {
                visit(x, out);
            }
            *function = Builtin::resolve(name, args.len());
            match *function {
                None => {
                    out.push(EvalError::new(
                        ErrorKind::MissingFunction,
                        missing_function_message(name, args.len()),
                    ));
                    Some(Type::Boolean)
                }
                Some(f) => {
                    let params: &[Type] = match f {
                        Builtin::Left | Builtin::Right => &[Type::String, Type::Integer],
                        Builtin::Substring => &[Type::String, Type::Integer, Type::Integer],
                        Builtin::Abs | Builtin::Int => &[Type::Integer],
                        // BOOL() and the String functions accept any literal.
                        _ => &[],
                    };
                    for (x, t) in args.iter().zip(params) {
                        literal_cast(x, *t, out);
                    }
                    Some(f.return_type())
                }
            }
        }
    }
}

/// Records the error a cast of `x` to `to` raises, when `x` is a literal.
fn literal_cast(x: &Expr, to: Type, out: &mut Vec<EvalError>) {
    let Expr::Literal(v) = x else { return };
    let mut sink = Collect::default();
    match to {
        Type::Boolean => {
            to_bool(v.borrowed(), &mut sink);
        }
        Type::Integer => {
            to_int(v.borrowed(), &mut sink);
        }
        Type::String => {}
    }
    out.extend(sink.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn kinds(src: &str) -> Vec<ErrorKind> {
        let mut e = parse(src).unwrap();
        check(&mut e).iter().map(EvalError::kind).collect()
    }

    #[test]
    fn static_errors() {
        assert_eq!(kinds("type = 'x' AND source LIKE 'y%'"), vec![]);
        assert_eq!(kinds("CONCAT_WS()"), vec![ErrorKind::MissingFunction]);
        assert_eq!(kinds("nope(1)"), vec![ErrorKind::MissingFunction]);
        assert_eq!(kinds("NOT 10"), vec![ErrorKind::Cast]);
        assert_eq!(kinds("'abc' + 1"), vec![ErrorKind::Cast]);
        assert_eq!(kinds("INT('x') = 1"), vec![ErrorKind::Cast]);
        assert_eq!(kinds("LEFT('abc', 'x')"), vec![ErrorKind::Cast]);
        assert_eq!(kinds("x / 0"), vec![ErrorKind::Math]);
        assert_eq!(kinds("1 IN ('a', '1')"), vec![ErrorKind::Cast]);
        assert_eq!(kinds("'TRUE' = TRUE AND 5 + TRUE = 6"), vec![]);
    }
}
