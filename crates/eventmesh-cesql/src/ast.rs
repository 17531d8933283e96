//! The syntax tree and its printer.
//!
//! `Display` writes every binary, `LIKE` and `IN` expression in parentheses, so what it prints
//! parses back to the same tree whatever the precedence rules (`(a AND (b OR c))`, `NOT x`,
//! `-(5)`, `LOWER(x)`).

use std::fmt;

use crate::functions::Builtin;
use crate::lexer::quote;
use crate::like::LikePattern;
use crate::value::Value;

/// An attribute an expression addresses, resolved when the expression is parsed: the
/// CloudEvents context attributes by variant, anything else as an extension name.
///
/// Names are lower case (CESQL identifiers are case-insensitive, CloudEvents attribute names
/// lower case). `data` is not addressable (the specification leaves it out); `data` and
/// `data_base64` resolve to extensions no event can carry, so they are always missing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// `id`.
    Id,
    /// `source`.
    Source,
    /// `specversion`.
    SpecVersion,
    /// `type`.
    Type,
    /// `subject`.
    Subject,
    /// `time`.
    Time,
    /// `datacontenttype`.
    DataContentType,
    /// `dataschema`.
    DataSchema,
    /// An extension attribute, by its lower-case name.
    Extension(Box<str>),
}

impl Attribute {
    /// Resolves a lower-case attribute name.
    pub fn from_name(name: &str) -> Attribute {
        match name {
            "id" => Attribute::Id,
            "source" => Attribute::Source,
            "specversion" => Attribute::SpecVersion,
            "type" => Attribute::Type,
            "subject" => Attribute::Subject,
            "time" => Attribute::Time,
            "datacontenttype" => Attribute::DataContentType,
            "dataschema" => Attribute::DataSchema,
            other => Attribute::Extension(other.into()),
        }
    }

    /// The attribute's name.
    pub fn name(&self) -> &str {
        match self {
            Attribute::Id => "id",
            Attribute::Source => "source",
            Attribute::SpecVersion => "specversion",
            Attribute::Type => "type",
            Attribute::Subject => "subject",
            Attribute::Time => "time",
            Attribute::DataContentType => "datacontenttype",
            Attribute::DataSchema => "dataschema",
            Attribute::Extension(name) => name,
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Arithmetic and comparison operators (left-associative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Mul,
    Div,
    Mod,
    Add,
    Sub,
    Eq,
    /// `!=` (`<>` parses to it too).
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinaryOp {
    /// `*`, `/`, `%`, `+` or `-`.
    pub(crate) fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod | BinaryOp::Add | BinaryOp::Sub
        )
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
        }
    }
}

/// `AND`, `OR`, `XOR`: one precedence level, right-associative, as in the specification's
/// grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogicalOp {
    And,
    Or,
    Xor,
}

impl LogicalOp {
    fn keyword(self) -> &'static str {
        match self {
            LogicalOp::And => "AND",
            LogicalOp::Or => "OR",
            LogicalOp::Xor => "XOR",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    Literal(Value<'static>),
    Attribute(Attribute),
    Exists(Attribute),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `a op b op c …` with one operator, meaning `a op (b op (c …))`; at least two operands.
    Logical {
        op: LogicalOp,
        operands: Vec<Expr>,
    },
    Like {
        negated: bool,
        operand: Box<Expr>,
        pattern: LikePattern,
    },
    In {
        negated: bool,
        operand: Box<Expr>,
        set: Vec<Expr>,
    },
    Call {
        /// Upper case.
        name: Box<str>,
        args: Vec<Expr>,
        /// Set by the checker; `None` means no function has that name and arity.
        function: Option<Builtin>,
    },
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(Value::Boolean(true)) => f.write_str("TRUE"),
            Expr::Literal(Value::Boolean(false)) => f.write_str("FALSE"),
            Expr::Literal(Value::Integer(i)) => write!(f, "{i}"),
            Expr::Literal(Value::String(s)) => quote(s, f),
            Expr::Attribute(a) => write!(f, "{a}"),
            // Prefix operators bind tightest, so they need no parentheses of their own (which
            // keeps the printed nesting within the parser's recursion cap).
            Expr::Exists(a) => write!(f, "EXISTS {a}"),
            Expr::Not(x) => write!(f, "NOT {x}"),
            // `-(5)` rather than `-5`, which would parse back as the literal -5.
            Expr::Neg(x) if matches!(**x, Expr::Literal(Value::Integer(_))) => write!(f, "-({x})"),
            Expr::Neg(x) => write!(f, "-{x}"),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Logical { op, operands } => {
                f.write_str("(")?;
                for (i, x) in operands.iter().enumerate() {
                    if i > 0 {
                        write!(f, " {} ", op.keyword())?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str(")")
            }
            Expr::Like {
                negated,
                operand,
                pattern,
            } => {
                write!(f, "({operand} {}LIKE ", if *negated { "NOT " } else { "" })?;
                quote(pattern.source(), f)?;
                f.write_str(")")
            }
            Expr::In {
                negated,
                operand,
                set,
            } => {
                write!(f, "({operand} {}IN (", if *negated { "NOT " } else { "" })?;
                write_list(f, set)?;
                f.write_str("))")
            }
            Expr::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                write_list(f, args)?;
                f.write_str(")")
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    Ok(())
}
