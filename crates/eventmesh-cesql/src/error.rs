//! The error kinds of CESQL 1.0 (section 3.3) and the two error types: [`ParseError`] from
//! [`Expression::parse`](crate::Expression::parse) and [`EvalError`] in an
//! [`Evaluation`](crate::Evaluation)'s error list.

use std::fmt;
use std::str::FromStr;

/// The error kinds every CESQL engine supports, spelled as the specification's test kit spells
/// them (`parse`, `math`, `cast`, `missingFunction`, `functionEvaluation`, `missingAttribute`,
/// `generic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The expression is not valid CESQL (`parse`).
    Parse,
    /// A mathematical operation failed: division by zero, overflow (`math`).
    Math,
    /// An implicit or explicit type cast failed (`cast`).
    Cast,
    /// A function that does not exist, or not with that many arguments (`missingFunction`).
    MissingFunction,
    /// A function was called with arguments it rejects (`functionEvaluation`).
    FunctionEvaluation,
    /// The expression addresses an attribute the event does not have (`missingAttribute`).
    MissingAttribute,
    /// Any other error (`generic`); this engine raises none.
    Generic,
}

impl ErrorKind {
    /// Every kind, in the specification's order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Parse,
        ErrorKind::Math,
        ErrorKind::Cast,
        ErrorKind::MissingFunction,
        ErrorKind::FunctionEvaluation,
        ErrorKind::MissingAttribute,
        ErrorKind::Generic,
    ];

    /// The kind's name as the test kit spells it, e.g. `"missingAttribute"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Parse => "parse",
            ErrorKind::Math => "math",
            ErrorKind::Cast => "cast",
            ErrorKind::MissingFunction => "missingFunction",
            ErrorKind::FunctionEvaluation => "functionEvaluation",
            ErrorKind::MissingAttribute => "missingAttribute",
            ErrorKind::Generic => "generic",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the seven error kinds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown CESQL error kind `{0}`")]
pub struct UnknownErrorKind(pub String);

impl FromStr for ErrorKind {
    type Err = UnknownErrorKind;

    /// Parses a kind as the test kit spells it (exact case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownErrorKind(s.to_owned()))
    }
}

/// Why an expression could not be parsed, with the position of the offending token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct ParseError {
    message: String,
    offset: usize,
    line: usize,
    column: usize,
}

impl ParseError {
    /// An error at byte `offset` of `source` (line and column are derived from it).
    pub(crate) fn new(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
        ParseError {
            message: message.into(),
            offset,
            line,
            column,
        }
    }

    /// Always [`ErrorKind::Parse`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Parse
    }

    /// What is wrong, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Byte offset into the expression where the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// 1-based line of [`offset`](Self::offset).
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column (in characters) of [`offset`](Self::offset).
    pub fn column(&self) -> usize {
        self.column
    }
}

/// One entry of an evaluation's error list.
///
/// `Display` shows the message only; the kind is [`kind`](Self::kind).
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    kind: ErrorKind,
    message: String,
}

impl EvalError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        EvalError {
            kind,
            message: message.into(),
        }
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_tck_names() {
        for kind in ErrorKind::ALL {
            assert_eq!(kind.as_str().parse::<ErrorKind>(), Ok(kind));
        }
        assert!("MissingAttribute".parse::<ErrorKind>().is_err());
    }

    #[test]
    fn parse_error_positions_count_lines_and_characters() {
        let e = ParseError::new("a AND\n  é +", 10, "boom");
        assert_eq!((e.line(), e.column(), e.offset()), (2, 4, 10));
        assert_eq!(e.to_string(), "boom at line 2, column 4");
        let e = ParseError::new("abc", 99, "end");
        assert_eq!((e.line(), e.column(), e.offset()), (1, 4, 3));
    }
}
