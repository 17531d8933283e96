//! CloudEvents SQL (CESQL 1.0): the expression language EventMesh-rs filters subscriptions with.
//!
//! An [`Expression`] is parsed and checked once (per subscription), then evaluated per event:
//!
//! ```
//! use eventmesh_cesql::{Expression, Value};
//! use eventmesh_core::CloudEvent;
//!
//! let filter = Expression::parse("type = 'order.created' AND source LIKE '/shop/%'")?;
//! let event = CloudEvent::new("1", "/shop/eu", "order.created");
//! assert!(filter.matches(&event));
//!
//! let sum = Expression::parse("seq + 1")?;
//! let event = event.with_extension("seq", "41");
//! let eval = sum.evaluate(&event);
//! assert_eq!(eval.value, Value::Integer(42));
//! assert!(eval.errors.is_empty());
//! # Ok::<(), eventmesh_cesql::ParseError>(())
//! ```
//!
//! # The language
//!
//! As specified by `cesql/spec.md` (version 1.0.0) of the CloudEvents specification repository,
//! and checked against its test kit (`tests/tck.rs` runs every case):
//!
//! * literals: `TRUE`/`FALSE` (any case), 32-bit integers (`-2147483648` included), strings in
//!   `'…'` or `"…"` (`\'`, `\"` and `\\` escape; `''` inside `'…'` is one `'`; any other `\x`
//!   stays as written, so `LIKE` patterns keep `\%` and `\_`);
//! * attributes: the context attributes `id`, `source`, `specversion`, `type`, `subject`,
//!   `time`, `datacontenttype`, `dataschema`, and any extension, by name (case-insensitive in
//!   the expression; CloudEvents names are lower case). `data` is not addressable;
//! * `EXISTS name`, `x [NOT] IN (y, …)`, `x [NOT] LIKE 'pattern'` (`%`, `_`, `\` escapes);
//! * `NOT`, `AND`, `OR`, `XOR`; `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`; unary `-`, `+`, `-`,
//!   `*`, `/` (truncating), `%` (sign of the dividend);
//! * functions (names case-insensitive): `LENGTH`, `CONCAT`, `CONCAT_WS`, `LOWER`, `UPPER`,
//!   `TRIM`, `LEFT`, `RIGHT`, `SUBSTRING` (2 or 3 arguments), `ABS`, and the casts `INT`,
//!   `BOOL`, `STRING`.
//!
//! Precedence and associativity are the grammar's (see the `parser` module): unary operators
//! bind tightest, then `LIKE`, `IN`, multiplicative, additive, comparison, and last `AND`, `OR`
//! and `XOR` **together, right-associative**: `a AND b OR c` is `a AND (b OR c)`. The
//! [`Display`](std::fmt::Display) of an expression shows the grouping with parentheses.
//!
//! # Errors and results
//!
//! Every expression has a value, even when something fails: an [`Evaluation`] is the value and
//! the list of errors raised on the way, each of an [`ErrorKind`] spelled as the specification
//! spells it (`parse`, `math`, `cast`, `missingFunction`, `functionEvaluation`,
//! `missingAttribute`, `generic`). An operator or function that fails yields the zero value of
//! its type (`false`, `0`, `""`), or the value the specification names (`LEFT('abc', -2)` is
//! `'abc'`); one whose operand raised an error yields its zero value without computing, so an
//! error makes every enclosing operator zero: `TRUE AND (1 != 1 / 0)` is `false` with a `math`
//! error, `1 / missing` is `0` with a `missingAttribute` error and no `math` error. A failed
//! implicit cast goes on with the zero value of the target type (`NOT 10` is `true` with a
//! `cast` error, as the test kit requires).
//!
//! Implicit casts: `NOT`, `AND`, `OR`, `XOR` cast operands to Boolean; unary `-`, arithmetic
//! and `<`, `<=`, `>`, `>=` to Integer; `LIKE` its left side to String; `=`, `!=`, `<>` the
//! left operand to the type of the right one (`'TRUE' = TRUE` is true, `TRUE = 'TRUE'` false);
//! `IN` each element to the type of the left operand. String to Integer accepts an optional
//! sign and decimal digits only; String to Boolean `true`/`false` in any case.
//!
//! As a filter ([`Expression::matches`]) an expression passes an event only when it evaluates
//! to Boolean `true` with no error, as section 1.2 of the specification requires.
//!
//! # Cost
//!
//! Attribute names are resolved when parsing (context attributes to enum variants), `LIKE`
//! patterns are compiled then, and strings are borrowed from the expression and the event, so
//! typical filters (comparisons, `LIKE`, `IN` of literals, integer arithmetic) evaluate without
//! allocating. [`Expression::matches`] does not format error messages. `time` (a timestamp in
//! the event model), integer-to-string casts and the string functions allocate.
//!
//! # Choices where the specification is silent or disagrees with itself
//!
//! * `AND`, `OR`, `XOR`: right-associative on one level, per the grammar (the prose says "left
//!   to right"); the test kit does not tell them apart.
//! * An *implicit* Integer to Boolean cast is a `cast` error (the kit's `NOT 10`), while the
//!   cast table's Integer to Boolean is what the explicit `BOOL()` does.
//! * Integer overflow in `+`, `-`, `*`, `/` and negation is a `math` error with the result
//!   saturated, like `ABS(-2147483648)`.
//! * `IN` stops at the first equal element, so later elements are not evaluated.
//! * A `+` sign must touch its digits (`+5`); `''` inside a string is one quote, as the grammar's
//!   lexer allows.
//! * With [`CloudEvent`](eventmesh_core::CloudEvent), `time` reads as RFC 3339 in UTC (the model
//!   keeps an instant, not the producer's offset).
//! * [`Expression::evaluate_without_event`] treats every attribute as missing, so `EXISTS id` is
//!   false there; the test kit's cases "without an event" run on a minimal valid event instead.
//!
//! # Invariants worth naming
//!
//! * No input panics the parser or the evaluator: nesting deeper than [`MAX_DEPTH`] and
//!   expressions over 1 MiB are parse errors, `LIKE` matching is polynomial, integer
//!   arithmetic is checked. (Property tests and the fuzz target in `fuzz/` check this.)
//! * `Expression::parse(&e.to_string())` gives an expression equal to `e`.
//! * Evaluation never mutates or retains the event.

mod ast;
mod check;
mod error;
mod eval;
mod event;
mod functions;
mod lexer;
mod like;
mod parser;
mod value;

use std::fmt;
use std::str::FromStr;

pub use ast::Attribute;
pub use error::{ErrorKind, EvalError, ParseError, UnknownErrorKind};
pub use event::{Attributes, NoEvent};
pub use parser::MAX_DEPTH;
pub use value::{Type, Value};

use ast::Expr;
use eval::{Collect, Flag, eval};

/// A parsed and checked CESQL expression, ready to be evaluated against any number of events.
#[derive(Clone, Debug)]
pub struct Expression {
    root: Expr,
    diagnostics: Vec<EvalError>,
    /// Whether the root always evaluates to a Boolean.
    boolean: bool,
}

/// Equal when the syntax trees are equal (the source text's spacing, case and redundant
/// parentheses do not matter).
impl PartialEq for Expression {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root
    }
}

impl Eq for Expression {}

/// The outcome of [`Expression::evaluate`]: the value and every error raised on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation<'a> {
    /// The result (the zero value of the expression's type where an error decided it).
    pub value: Value<'a>,
    /// The errors, in the order they were raised; empty on success.
    pub errors: Vec<EvalError>,
}

impl Evaluation<'_> {
    /// Whether no error was raised.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether this passes a filter: Boolean `true` and no error.
    pub fn is_match(&self) -> bool {
        self.errors.is_empty() && self.value == Value::Boolean(true)
    }

    /// The evaluation with its value owned.
    pub fn into_owned(self) -> Evaluation<'static> {
        Evaluation {
            value: self.value.into_owned(),
            errors: self.errors,
        }
    }
}

impl Expression {
    /// Parses and checks `source`. Fails only on syntax (a [`ParseError`] with the position);
    /// problems the checker finds that only matter when evaluated are in
    /// [`diagnostics`](Self::diagnostics).
    pub fn parse(source: &str) -> Result<Expression, ParseError> {
        let mut root = parser::parse(source)?;
        let diagnostics = check::check(&mut root);
        Ok(Expression {
            boolean: eval::is_boolean(&root),
            root,
            diagnostics,
        })
    }

    /// Errors the checker found without an event: calls to functions that do not exist (or not
    /// with that many arguments), casts of literals that cannot succeed (`NOT 10`), division by
    /// a literal zero. Each is raised again whenever its subexpression is evaluated. Filters
    /// should usually refuse expressions that have any.
    pub fn diagnostics(&self) -> &[EvalError] {
        &self.diagnostics
    }

    /// Evaluates the expression against `event`, collecting every error.
    pub fn evaluate<'a, E: Attributes + ?Sized>(&'a self, event: &'a E) -> Evaluation<'a> {
        let mut sink = Collect::default();
        let value = eval(&self.root, event, &mut sink);
        Evaluation {
            value,
            errors: sink.0,
        }
    }

    /// Evaluates the expression with no event: every attribute is missing and `EXISTS` is
    /// always false.
    pub fn evaluate_without_event(&self) -> Evaluation<'_> {
        self.evaluate(&NoEvent)
    }

    /// Whether `event` passes the expression as a filter: it evaluates to Boolean `true` with no
    /// error. Formats no error message.
    pub fn matches<E: Attributes + ?Sized>(&self, event: &E) -> bool {
        let mut sink = Flag::default();
        let pass = if self.boolean {
            eval::truth(&self.root, event, &mut sink)
        } else {
            eval(&self.root, event, &mut sink) == Value::Boolean(true)
        };
        pass && sink.0 == 0
    }
}

impl FromStr for Expression {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Expression::parse(s)
    }
}

/// The expression in canonical form: keywords and function names upper case, attribute names
/// lower case, strings single-quoted, and every binary, `LIKE` and `IN` subexpression in
/// parentheses.
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventmesh_core::{CloudEvent, ExtensionValue};

    fn eval_str(src: &str, event: &CloudEvent) -> (Value<'static>, Vec<ErrorKind>) {
        let e = Expression::parse(src).unwrap();
        let r = e.evaluate(event).into_owned();
        (r.value, r.errors.iter().map(EvalError::kind).collect())
    }

    #[test]
    fn errors_zero_every_enclosing_operator() {
        let ev = CloudEvent::new("1", "/s", "t");
        let ma = vec![ErrorKind::MissingAttribute];
        let cast = vec![ErrorKind::Cast];
        for (src, value, errors) in [
            ("missing", Value::Boolean(false), ma.clone()),
            ("NOT missing", Value::Boolean(false), ma.clone()),
            ("NOT (missing = 1)", Value::Boolean(false), ma.clone()),
            ("1 / missing", Value::Integer(0), ma.clone()),
            ("(missing * 5) + 2", Value::Integer(0), ma.clone()),
            ("LENGTH(missing)", Value::Integer(0), ma.clone()),
            ("CONCAT('a', missing)", Value::from(""), ma.clone()),
            ("missing IN (1)", Value::Boolean(false), ma.clone()),
            ("missing NOT IN (1)", Value::Boolean(false), ma.clone()),
            ("1 NOT IN (missing)", Value::Boolean(false), ma.clone()),
            ("TRUE OR missing", Value::Boolean(true), vec![]),
            ("FALSE OR missing", Value::Boolean(false), ma.clone()),
            ("NOT 10", Value::Boolean(true), cast.clone()),
            ("NOT NOT 10", Value::Boolean(false), cast.clone()),
            ("'a' + 1", Value::Integer(1), cast.clone()),
            ("('a' + 1) + 1", Value::Integer(0), cast.clone()),
            ("1 IN ('x', 1)", Value::Boolean(true), cast.clone()),
            (
                "LEFT('abc', -1) = 'abc'",
                Value::Boolean(false),
                vec![ErrorKind::FunctionEvaluation],
            ),
            ("FALSE AND 1 / 0 = 0", Value::Boolean(false), vec![]),
        ] {
            assert_eq!(eval_str(src, &ev), (value, errors), "{src}");
        }
    }

    #[test]
    fn logical_chains_match_their_right_nested_meaning() {
        let ev = CloudEvent::new("1", "/s", "t");
        // a op (b op (c op d)): an error below the first node zeroes the chain.
        for (src, want, errors) in [
            ("TRUE XOR TRUE XOR TRUE", true, 0),
            ("TRUE XOR FALSE XOR FALSE XOR FALSE", true, 0),
            ("TRUE XOR missing XOR TRUE", false, 1),
            ("missing XOR TRUE", false, 1),
            ("10 XOR TRUE", true, 1),
            ("TRUE XOR 10", true, 1),
            ("TRUE XOR TRUE XOR 10", false, 1),
            ("10 XOR TRUE XOR TRUE", false, 1),
            ("FALSE OR 10 OR TRUE", false, 1),
            ("10 OR TRUE", true, 1),
            ("10 AND TRUE", false, 1),
            ("TRUE AND TRUE AND 'x'", false, 1),
        ] {
            let expr = Expression::parse(src).unwrap();
            let flat = expr.evaluate(&ev);
            assert_eq!(flat.value, Value::Boolean(want), "{src}");
            assert_eq!(flat.errors.len(), errors, "{src}");
        }
    }

    #[test]
    fn matches_requires_true_and_no_error() {
        let ev = CloudEvent::new("1", "/s", "t").with_extension("n", ExtensionValue::Integer(3));
        let m = |src: &str| Expression::parse(src).unwrap().matches(&ev);
        assert!(m("n * 2 = 6"));
        assert!(!m("n * 2"));
        assert!(!m("NOT 0"), "a cast error never matches");
        assert!(!m("FALSE XOR missing = 1 OR TRUE"));
        assert!(m("type = 't'"));
        assert!(!m("'x'"));
    }

    #[test]
    fn overflow_saturates_with_a_math_error() {
        let ev = CloudEvent::default();
        let math = vec![ErrorKind::Math];
        assert_eq!(
            eval_str("2147483647 + 1", &ev),
            (Value::Integer(i32::MAX), math.clone())
        );
        assert_eq!(
            eval_str("-2147483648 - 1", &ev),
            (Value::Integer(i32::MIN), math.clone())
        );
        assert_eq!(
            eval_str("-2147483648 / -1", &ev),
            (Value::Integer(i32::MAX), math.clone())
        );
        assert_eq!(
            eval_str("-2147483648 % -1", &ev),
            (Value::Integer(0), vec![])
        );
        assert_eq!(
            eval_str("-(-2147483648)", &ev),
            (Value::Integer(i32::MAX), math.clone())
        );
        assert_eq!(eval_str("-7 % 3", &ev), (Value::Integer(-1), vec![]));
        assert_eq!(eval_str("-7 / 2", &ev), (Value::Integer(-3), vec![]));
    }

    #[test]
    fn display_round_trips() {
        for src in [
            "type = 'x' AND source LIKE 'y%'",
            "a AND b OR c XOR d",
            "(a AND b) OR c",
            "n NOT IN (1, 'two', TRUE, -3)",
            "-(5) + --5 - -(-5)",
            r"x LIKE 'a\%b\\c''d'",
            "SUBSTRING(s, -1, 2) = CONCAT_WS(',', 'a', \"b\")",
            "NOT EXISTS subject",
        ] {
            let e = Expression::parse(src).unwrap();
            let again = Expression::parse(&e.to_string()).unwrap();
            assert_eq!(e, again, "{src} -> {e}");
            assert_eq!(e.to_string(), again.to_string());
        }
    }

    #[test]
    fn expressions_can_be_shared_across_threads() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Expression>();
        shared::<EvalError>();
        shared::<ParseError>();
    }

    #[test]
    fn without_an_event_every_attribute_is_missing() {
        let e = Expression::parse("EXISTS id").unwrap();
        assert_eq!(e.evaluate_without_event().value, Value::Boolean(false));
        let e = Expression::parse("id").unwrap();
        let r = e.evaluate_without_event();
        assert_eq!(r.errors[0].kind(), ErrorKind::MissingAttribute);
    }
}
