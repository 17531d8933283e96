//! The lexer: turns an expression into tokens with byte spans.
//!
//! * Blanks (space, tab, CR, LF) separate tokens and are skipped.
//! * A *word* is a run of ASCII letters, digits and `_`. All digits: an integer literal. One of
//!   `AND OR XOR NOT LIKE EXISTS IN TRUE FALSE` in any case: a keyword. Anything else: a name,
//!   which the parser takes as a function name (before `(`) or an attribute name.
//! * String literals are `'…'` or `"…"`. Inside, `\` followed by the delimiter or by `\` stands
//!   for that character, a doubled delimiter (`''`) stands for one, and any other `\x` is kept
//!   as the two characters (so `LIKE` sees `\%` and `\_`).

use crate::error::ParseError;

/// Longest accepted expression, in bytes.
pub(crate) const MAX_SOURCE_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Digits, already known to be at most 2,147,483,648 (the magnitude of `i32::MIN`).
    Int(u32),
    Str(String),
    Name(String),
    True,
    False,
    And,
    Or,
    Xor,
    Not,
    Like,
    Exists,
    In,
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eq,
    NotEq,
    Diamond,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

impl Tok {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Int(n) => format!("integer {n}"),
            Tok::Str(_) => "a string literal".to_owned(),
            Tok::Name(n) => format!("`{n}`"),
            Tok::Eof => "the end of the expression".to_owned(),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::True => "TRUE",
            Tok::False => "FALSE",
            Tok::And => "AND",
            Tok::Or => "OR",
            Tok::Xor => "XOR",
            Tok::Not => "NOT",
            Tok::Like => "LIKE",
            Tok::Exists => "EXISTS",
            Tok::In => "IN",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Eq => "=",
            Tok::NotEq => "!=",
            Tok::Diamond => "<>",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Int(_) | Tok::Str(_) | Tok::Name(_) | Tok::Eof => "",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    /// Byte offset of the first character.
    pub(crate) start: usize,
    /// Byte offset just past the last character.
    pub(crate) end: usize,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    if src.len() > MAX_SOURCE_BYTES {
        return Err(ParseError::new(
            src,
            MAX_SOURCE_BYTES,
            format!("the expression is longer than {MAX_SOURCE_BYTES} bytes"),
        ));
    }
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        let tok = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'\'' | b'"' => {
                let (s, end) = string_literal(src, start)?;
                i = end;
                Tok::Str(s)
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                word(src, start, &src[start..i])?
            }
            _ => {
                let next = bytes.get(i + 1).copied();
                let (tok, len) = match (b, next) {
                    (b'(', _) => (Tok::LParen, 1),
                    (b')', _) => (Tok::RParen, 1),
                    (b',', _) => (Tok::Comma, 1),
                    (b'+', _) => (Tok::Plus, 1),
                    (b'-', _) => (Tok::Minus, 1),
                    (b'*', _) => (Tok::Star, 1),
                    (b'/', _) => (Tok::Slash, 1),
                    (b'%', _) => (Tok::Percent, 1),
                    (b'=', _) => (Tok::Eq, 1),
                    (b'!', Some(b'=')) => (Tok::NotEq, 2),
                    (b'<', Some(b'>')) => (Tok::Diamond, 2),
                    (b'<', Some(b'=')) => (Tok::Le, 2),
                    (b'<', _) => (Tok::Lt, 1),
                    (b'>', Some(b'=')) => (Tok::Ge, 2),
                    (b'>', _) => (Tok::Gt, 1),
                    (b'!', _) => {
                        return Err(ParseError::new(src, start, "expected `=` after `!`"));
                    }
                    _ => {
                        let c = src[start..].chars().next().unwrap_or('\u{fffd}');
                        return Err(ParseError::new(
                            src,
                            start,
                            format!("unexpected character {c:?}"),
                        ));
                    }
                };
                i += len;
                tok
            }
        };
        out.push(Token { tok, start, end: i });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

fn word(src: &str, start: usize, w: &str) -> Result<Tok, ParseError> {
    if w.bytes().all(|b| b.is_ascii_digit()) {
        return match w.parse::<u64>() {
            Ok(n) if n <= 1 << 31 => Ok(Tok::Int(n as u32)),
            _ => Err(ParseError::new(
                src,
                start,
                format!("integer literal {w} is out of the 32-bit range"),
            )),
        };
    }
    const KEYWORDS: [(&str, Tok); 9] = [
        ("AND", Tok::And),
        ("OR", Tok::Or),
        ("XOR", Tok::Xor),
        ("NOT", Tok::Not),
        ("LIKE", Tok::Like),
        ("EXISTS", Tok::Exists),
        ("IN", Tok::In),
        ("TRUE", Tok::True),
        ("FALSE", Tok::False),
    ];
    Ok(KEYWORDS
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(w))
        .map_or_else(|| Tok::Name(w.to_owned()), |(_, t)| t))
}

/// Reads the string literal opening at `start`; returns its value and the offset past it.
fn string_literal(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = src[start..].chars().next().unwrap_or('\'');
    let mut value = String::new();
    let mut chars = src[start + 1..].char_indices().peekable();
    while let Some((off, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, n)) if n == quote || n == '\\' => value.push(n),
                Some((_, n)) => {
                    value.push('\\');
                    value.push(n);
                }
                None => break,
            }
        } else if c == quote {
            if chars.peek().is_some_and(|&(_, n)| n == quote) {
                chars.next();
                value.push(quote);
            } else {
                return Ok((value, start + 1 + off + c.len_utf8()));
            }
        } else {
            value.push(c);
        }
    }
    Err(ParseError::new(src, start, "unterminated string literal"))
}

/// Writes `s` as a single-quoted literal that [`tokenize`] reads back as `s`.
pub(crate) fn quote(s: &str, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    out.write_char('\'')?;
    for c in s.chars() {
        match c {
            '\'' => out.write_str("\\'")?,
            '\\' => out.write_str("\\\\")?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('\'')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_keywords_and_operators() {
        assert_eq!(
            toks("a aNd 12 <> <= != >= 3b CONCAT_WS(x)"),
            vec![
                Tok::Name("a".into()),
                Tok::And,
                Tok::Int(12),
                Tok::Diamond,
                Tok::Le,
                Tok::NotEq,
                Tok::Ge,
                Tok::Name("3b".into()),
                Tok::Name("CONCAT_WS".into()),
                Tok::LParen,
                Tok::Name("x".into()),
                Tok::RParen,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(toks(r#"'a"b\'c'"#)[0], Tok::Str("a\"b'c".into()));
        assert_eq!(toks(r#""a'b\"c""#)[0], Tok::Str("a'b\"c".into()));
        assert_eq!(toks(r"'a\_b\%c\\d\x'")[0], Tok::Str(r"a\_b\%c\d\x".into()));
        assert_eq!(toks("'it''s'")[0], Tok::Str("it's".into()));
        assert_eq!(toks("'é'")[0], Tok::Str("é".into()));
        assert!(tokenize("'abc").is_err());
        assert!(tokenize(r"'abc\'").is_err());
        assert!(tokenize(r"'abc\").is_err());
    }

    #[test]
    fn quoting_round_trips() {
        for s in ["", "a'b", r"a\b", r"\'", "é\"", r"x\"] {
            let mut q = String::new();
            quote(s, &mut q).unwrap();
            assert_eq!(toks(&q)[0], Tok::Str(s.into()), "{q}");
        }
    }

    #[test]
    fn errors_carry_positions() {
        let e = tokenize("a = 1 # 2").unwrap_err();
        assert_eq!(e.offset(), 6);
        let e = tokenize("a ! b").unwrap_err();
        assert_eq!(e.offset(), 2);
        let e = tokenize("2147483649").unwrap_err();
        assert!(e.message().contains("32-bit"));
        assert_eq!(toks("2147483648")[0], Tok::Int(1 << 31));
    }
}
