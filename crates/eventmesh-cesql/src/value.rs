//! CESQL values, their types and the casts between them (specification section 3.7).

use std::borrow::Cow;
use std::fmt;

/// The three primitive CESQL types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// `true` or `false`.
    Boolean,
    /// A signed 32-bit integer.
    Integer,
    /// A sequence of Unicode characters (URI, URI-reference and Timestamp attributes included).
    String,
}

impl Type {
    /// The zero value of the type: `false`, `0` or `""`, what an operator or function returns
    /// when it fails.
    pub fn zero(self) -> Value<'static> {
        match self {
            Type::Boolean => Value::Boolean(false),
            Type::Integer => Value::Integer(0),
            Type::String => Value::String(Cow::Borrowed("")),
        }
    }

    /// The type's name as the specification writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Boolean => "Boolean",
            Type::Integer => "Integer",
            Type::String => "String",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CESQL value. Strings borrow from the expression or the event where they can.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value<'a> {
    /// A Boolean.
    Boolean(bool),
    /// An Integer.
    Integer(i32),
    /// A String.
    String(Cow<'a, str>),
}

impl<'a> Value<'a> {
    /// The value's type.
    pub fn ty(&self) -> Type {
        match self {
            Value::Boolean(_) => Type::Boolean,
            Value::Integer(_) => Type::Integer,
            Value::String(_) => Type::String,
        }
    }

    /// The value with its string (if any) owned.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Boolean(b) => Value::Boolean(b),
            Value::Integer(i) => Value::Integer(i),
            Value::String(s) => Value::String(Cow::Owned(s.into_owned())),
        }
    }

    /// A copy that borrows this value's string.
    pub fn borrowed(&self) -> Value<'_> {
        match self {
            Value::Boolean(b) => Value::Boolean(*b),
            Value::Integer(i) => Value::Integer(*i),
            Value::String(s) => Value::String(Cow::Borrowed(s)),
        }
    }

    /// The Boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The Integer, if this is one.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The String, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON: `true`, `42` or a quoted, escaped string.
    pub fn to_json(&self) -> String {
        match self {
            Value::Boolean(b) => b.to_string(),
            Value::Integer(i) => i.to_string(),
            Value::String(s) => {
                let mut out = String::with_capacity(s.len() + 2);
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                        c => out.push(c),
                    }
                }
                out.push('"');
                out
            }
        }
    }
}

/// Shows booleans as `true`/`false`, integers in base 10 and strings as they are (unquoted): the
/// `STRING()` cast of the value.
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::String(s) => f.write_str(s),
        }
    }
}

impl From<bool> for Value<'static> {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<i32> for Value<'static> {
    fn from(i: i32) -> Self {
        Value::Integer(i)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::String(Cow::Borrowed(s))
    }
}

impl From<String> for Value<'static> {
    fn from(s: String) -> Self {
        Value::String(Cow::Owned(s))
    }
}

/// `String -> Integer`: a base-10 32-bit integer with an optional leading `+` or `-`, nothing
/// else (no blanks).
pub(crate) fn parse_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `String -> Boolean`: `true` or `false` in any case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `Boolean -> String` and `Integer -> String` (never fails; only integers allocate).
#[inline]
pub(crate) fn to_string_cast<'a>(v: Value<'a>) -> Cow<'a, str> {
    match v {
        Value::String(s) => s,
        Value::Boolean(true) => Cow::Borrowed("true"),
        Value::Boolean(false) => Cow::Borrowed("false"),
        Value::Integer(i) => Cow::Owned(i.to_string()),
    }
}

/// A short, quoted rendering of a value for error messages (long strings are cut).
pub(crate) fn describe(v: &Value<'_>) -> String {
    const MAX: usize = 40;
    match v {
        Value::String(s) => {
            let mut cut: String = s.chars().take(MAX).collect();
            if s.chars().nth(MAX).is_some() {
                cut.push('…');
            }
            format!("String '{cut}'")
        }
        other => format!("{} {other}", other.ty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_integer_accepts_a_sign_and_digits_only() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("+42"), Some(42));
        assert_eq!(parse_int("-2147483648"), Some(i32::MIN));
        for bad in [
            "",
            "+",
            "-",
            " 1",
            "1 ",
            "2147483648",
            "1_000",
            "0x10",
            "--1",
            "١",
        ] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn string_to_boolean_ignores_case() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("fAlSe"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_bool(" true"), None);
    }

    #[test]
    fn json_rendering_escapes_strings() {
        assert_eq!(
            Value::from("a\"b\\c\n\u{1}").to_json(),
            r#""a\"b\\c\n\u0001""#
        );
        assert_eq!(Value::from(-3).to_json(), "-3");
        assert_eq!(Value::from(true).to_json(), "true");
    }

    #[test]
    fn zero_values() {
        assert_eq!(Type::Boolean.zero(), Value::Boolean(false));
        assert_eq!(Type::Integer.zero(), Value::Integer(0));
        assert_eq!(Type::String.zero(), Value::from(""));
    }
}
