//! The parser: recursive descent over the token list, one function per precedence level.
//!
//! Precedence follows the specification's grammar (`CESQLParser.g4`), tightest first:
//!
//! 1. literals, attributes, `( … )`, function calls, `EXISTS name`;
//! 2. unary `NOT` and `-` (so `NOT a = b` is `(NOT a) = b`, as in the grammar);
//! 3. `x [NOT] LIKE 'pattern'` (the pattern must be a string literal);
//! 4. `x [NOT] IN (y, …)` (one element at least);
//! 5. `*`, `/`, `%`; 6. `+`, `-`; 7. `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=` (all left-associative);
//! 8. `AND`, `OR`, `XOR`: **one level, right-associative**, as the grammar's
//!    `<assoc=right> expression (AND | OR | XOR) expression` says, so `a AND b OR c` means
//!    `a AND (b OR c)`. Write parentheses when mixing them.
//!
//! A run of the same logical operator becomes one n-ary node, so long `OR` chains cost no
//! depth. Nesting is capped at [`MAX_DEPTH`] levels (of the tree and of the parser's recursion)
//! so no input can exhaust the stack, here or in the evaluator.
//!
//! `-` directly before an integer literal is folded into it, which is how `-2147483648` is
//! read; a `+` written directly before one is its sign.

use crate::ast::{Attribute, BinaryOp, Expr, LogicalOp};
use crate::error::ParseError;
use crate::lexer::{Tok, Token, tokenize};
use crate::like::LikePattern;
use crate::value::Value;

/// Deepest accepted nesting of an expression.
pub const MAX_DEPTH: usize = 64;

/// Deepest recursion of the parser: a little over [`MAX_DEPTH`] so that what `Display` prints
/// for any accepted expression (one more level of parentheses at most) parses back.
const MAX_RECURSION: usize = MAX_DEPTH + 2;

/// An expression and the depth of its tree.
type Parsed = (Expr, usize);

pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        src,
        tokens,
        pos: 0,
    };
    let (expr, _) = p.logical(0)?;
    match p.peek() {
        Tok::Eof => Ok(expr),
        Tok::RParen => Err(p.error("unbalanced `)`")),
        other => {
            let msg = format!(
                "expected an operator or the end, found {}",
                other.describe()
            );
            Err(p.error(msg))
        }
    }
}

enum Infix {
    Binary(BinaryOp),
    In(bool),
    Like(bool),
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn token(&self) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn peek(&self) -> &Tok {
        &self.token().tok
    }

    fn peek2(&self) -> &Tok {
        self.tokens.get(self.pos + 1).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn bump(&mut self) -> Token {
        let t = self.token().clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.src, self.token().start, message)
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(self.src, offset, message)
    }

    fn too_deep(&self, offset: usize) -> ParseError {
        self.error_at(
            offset,
            format!("the expression is nested more than {MAX_DEPTH} levels deep"),
        )
    }

    /// Checks the recursion depth `rec` before descending.
    fn enter(&self, rec: usize) -> Result<(), ParseError> {
        if rec > MAX_RECURSION {
            return Err(self.too_deep(self.token().start));
        }
        Ok(())
    }

    /// The depth of a node over children of depth `child`, checked.
    fn node_depth(&self, child: usize, offset: usize) -> Result<usize, ParseError> {
        let d = child + 1;
        if d > MAX_DEPTH {
            return Err(self.too_deep(offset));
        }
        Ok(d)
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), ParseError> {
        if self.peek() == want {
            self.bump();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.peek().describe())))
        }
    }

    fn logical(&mut self, rec: usize) -> Result<Parsed, ParseError> {
        self.enter(rec)?;
        let (mut cur, mut cur_depth) = self.binary(rec, 1)?;
        // Open groups of one operator: (op, operands so far, their max depth, op offset).
        let mut groups: Vec<(LogicalOp, Vec<Expr>, usize, usize)> = Vec::new();
        loop {
            let op = match self.peek() {
                Tok::And => LogicalOp::And,
                Tok::Or => LogicalOp::Or,
                Tok::Xor => LogicalOp::Xor,
                _ => break,
            };
            let at = self.bump().start;
            match groups.last_mut() {
                Some((last, operands, depth, _)) if *last == op => {
                    operands.push(cur);
                    *depth = (*depth).max(cur_depth);
                }
                _ => {
                    if groups.len() >= MAX_DEPTH {
                        return Err(self.too_deep(at));
                    }
                    groups.push((op, vec![cur], cur_depth, at));
                }
            }
            (cur, cur_depth) = self.binary(rec, 1)?;
        }
        while let Some((op, mut operands, depth, at)) = groups.pop() {
            operands.push(cur);
            cur_depth = self.node_depth(depth.max(cur_depth), at)?;
            cur = Expr::Logical { op, operands };
        }
        Ok((cur, cur_depth))
    }

    /// Precedence climbing over the levels between unary and logical operators: binary
    /// operators recurse for their right operand at the next level up (so at most five frames
    /// deep), `IN` and `LIKE` are postfix.
    fn binary(&mut self, rec: usize, min_level: u8) -> Result<Parsed, ParseError> {
        let (mut left, mut depth) = self.unary(rec)?;
        loop {
            let (level, kind) = match (self.peek(), self.peek2()) {
                (Tok::Eq, _) => (1, Infix::Binary(BinaryOp::Eq)),
                (Tok::NotEq | Tok::Diamond, _) => (1, Infix::Binary(BinaryOp::NotEq)),
                (Tok::Lt, _) => (1, Infix::Binary(BinaryOp::Lt)),
                (Tok::Le, _) => (1, Infix::Binary(BinaryOp::Le)),
                (Tok::Gt, _) => (1, Infix::Binary(BinaryOp::Gt)),
                (Tok::Ge, _) => (1, Infix::Binary(BinaryOp::Ge)),
                (Tok::Plus, _) => (2, Infix::Binary(BinaryOp::Add)),
                (Tok::Minus, _) => (2, Infix::Binary(BinaryOp::Sub)),
                (Tok::Star, _) => (3, Infix::Binary(BinaryOp::Mul)),
                (Tok::Slash, _) => (3, Infix::Binary(BinaryOp::Div)),
                (Tok::Percent, _) => (3, Infix::Binary(BinaryOp::Mod)),
                (Tok::In, _) => (4, Infix::In(false)),
                (Tok::Not, Tok::In) => (4, Infix::In(true)),
                (Tok::Like, _) => (5, Infix::Like(false)),
                (Tok::Not, Tok::Like) => (5, Infix::Like(true)),
                _ => break,
            };
            if level < min_level {
                break;
            }
            let at = self.bump().start;
            (left, depth) = match kind {
                Infix::Binary(op) => {
                    let (right, right_depth) = self.binary(rec, level + 1)?;
                    let expr = Expr::Binary {
                        op,
                        left: Box::new(left),
                        right: Box::new(right),
                    };
                    (expr, self.node_depth(depth.max(right_depth), at)?)
                }
                Infix::In(negated) => self.in_set(rec, negated, left, depth, at)?,
                Infix::Like(negated) => self.like(negated, left, depth, at)?,
            };
        }
        Ok((left, depth))
    }

    /// `left [NOT] IN (…)`, after the `IN` or `NOT` token.
    fn in_set(
        &mut self,
        rec: usize,
        negated: bool,
        left: Expr,
        depth: usize,
        at: usize,
    ) -> Result<Parsed, ParseError> {
        if negated {
            self.bump();
        }
        self.expect(&Tok::LParen, "`(` opening the IN set")?;
        let (set, set_depth) = self.list(rec, "the IN set")?;
        let expr = Expr::In {
            negated,
            operand: Box::new(left),
            set,
        };
        Ok((expr, self.node_depth(depth.max(set_depth), at)?))
    }

    /// `left [NOT] LIKE 'pattern'`, after the `LIKE` or `NOT` token.
    fn like(
        &mut self,
        negated: bool,
        left: Expr,
        depth: usize,
        at: usize,
    ) -> Result<Parsed, ParseError> {
        if negated {
            self.bump();
        }
        let Tok::Str(pattern) = self.peek().clone() else {
            let msg = format!(
                "the LIKE pattern must be a string literal, found {}",
                self.peek().describe()
            );
            return Err(self.error(msg));
        };
        self.bump();
        let expr = Expr::Like {
            negated,
            operand: Box::new(left),
            pattern: LikePattern::new(&pattern),
        };
        Ok((expr, self.node_depth(depth, at)?))
    }

    /// Comma-separated expressions up to and including `)` (the `(` is already read); at
    /// least one.
    fn list(&mut self, rec: usize, what: &str) -> Result<(Vec<Expr>, usize), ParseError> {
        let mut items = Vec::new();
        let mut depth = 0;
        loop {
            let (item, d) = self.logical(rec + 1)?;
            depth = depth.max(d);
            items.push(item);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok((items, depth));
                }
                other => {
                    let msg = format!("expected `,` or `)` in {what}, found {}", other.describe());
                    return Err(self.error(msg));
                }
            }
        }
    }

    fn unary(&mut self, rec: usize) -> Result<Parsed, ParseError> {
        self.enter(rec)?;
        let at = self.token().start;
        match self.peek() {
            Tok::Not => {
                self.bump();
                let (x, d) = self.unary(rec + 1)?;
                Ok((Expr::Not(Box::new(x)), self.node_depth(d, at)?))
            }
            Tok::Minus => {
                self.bump();
                if let Tok::Int(n) = *self.peek() {
                    self.bump();
                    let v = i32::try_from(-i64::from(n))
                        .map_err(|_| self.error_at(at, "integer literal out of range"))?;
                    return Ok((Expr::Literal(Value::Integer(v)), 1));
                }
                let (x, d) = self.unary(rec + 1)?;
                Ok((Expr::Neg(Box::new(x)), self.node_depth(d, at)?))
            }
            Tok::Plus => {
                let adjacent = self.tokens.get(self.pos + 1).is_some_and(|next| {
                    matches!(next.tok, Tok::Int(_)) && next.start == self.token().end
                });
                if !adjacent {
                    return Err(self.error("unexpected `+` (a sign must touch its digits)"));
                }
                self.bump();
                self.primary(rec)
            }
            _ => self.primary(rec),
        }
    }

    fn primary(&mut self, rec: usize) -> Result<Parsed, ParseError> {
        let token = self.bump();
        let at = token.start;
        let expr = match token.tok {
            Tok::Int(n) => Expr::Literal(Value::Integer(i32::try_from(n).map_err(|_| {
                self.error_at(
                    at,
                    format!("integer literal {n} is out of the 32-bit range"),
                )
            })?)),
            Tok::Str(s) => Expr::Literal(Value::from(s)),
            Tok::True => Expr::Literal(Value::Boolean(true)),
            Tok::False => Expr::Literal(Value::Boolean(false)),
            Tok::LParen => {
                let inner = self.logical(rec + 1)?;
                self.expect(&Tok::RParen, "`)`")?;
                return Ok(inner);
            }
            Tok::Exists => {
                let name_at = self.token().start;
                let Tok::Name(name) = self.bump().tok else {
                    return Err(self.error_at(name_at, "expected an attribute name after EXISTS"));
                };
                Expr::Exists(self.attribute(&name, name_at)?)
            }
            Tok::Name(name) if *self.peek() == Tok::LParen => return self.call(&name, at, rec),
            Tok::Name(name) => Expr::Attribute(self.attribute(&name, at)?),
            other => {
                let msg = format!("expected an expression, found {}", other.describe());
                return Err(self.error_at(at, msg));
            }
        };
        Ok((expr, 1))
    }

    fn attribute(&self, name: &str, at: usize) -> Result<Attribute, ParseError> {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(self.error_at(
                at,
                format!("`{name}` is not an attribute name (letters and digits only)"),
            ));
        }
        Ok(Attribute::from_name(&name.to_ascii_lowercase()))
    }

    fn call(&mut self, name: &str, at: usize, rec: usize) -> Result<Parsed, ParseError> {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
        if !valid {
            return Err(self.error_at(
                at,
                format!("`{name}` is not a function name (letters and `_` only)"),
            ));
        }
        self.bump(); // (
        let (args, depth) = if *self.peek() == Tok::RParen {
            self.bump();
            (Vec::new(), 0)
        } else {
            self.list(rec, &format!("the arguments of {name}"))?
        };
        let expr = Expr::Call {
            name: name.to_ascii_uppercase().into(),
            args,
            function: None,
        };
        Ok((expr, self.node_depth(depth, at)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(src: &str) -> String {
        parse(src).unwrap().to_string()
    }

    #[test]
    fn precedence_follows_the_grammar() {
        assert_eq!(shape("4 * 2 + 4 / 2"), "((4 * 2) + (4 / 2))");
        assert_eq!(shape("a AND b OR c"), "(a AND (b OR c))");
        assert_eq!(shape("a OR b AND c"), "(a OR (b AND c))");
        assert_eq!(shape("a AND b AND c"), "(a AND b AND c)");
        assert_eq!(shape("NOT EXISTS a"), "NOT EXISTS a");
        assert_eq!(
            shape("x NOT LIKE 'a%' IN (TRUE)"),
            "((x NOT LIKE 'a%') IN (TRUE))"
        );
        assert_eq!(shape("a + b IN (1, 2)"), "(a + (b IN (1, 2)))");
        assert_eq!(shape("1 < 2 = TRUE"), "((1 < 2) = TRUE)");
        assert_eq!(shape("-4 - -1"), "(-4 - -1)");
        assert_eq!(shape("4 -1"), "(4 - 1)");
        assert_eq!(shape("--10"), "-(-10)");
        assert_eq!(shape("-'10'"), "-'10'");
        assert_eq!(shape("-(10)"), "-(10)");
        assert_eq!(shape("NOT a = b"), "(NOT a = b)");
        assert_eq!(shape("+7"), "7");
        assert_eq!(shape("-2147483648"), "-2147483648");
        assert_eq!(shape("SOURCE <> Id"), "(source != id)");
        assert_eq!(shape("concat_ws(',', a)"), "CONCAT_WS(',', a)");
        assert_eq!(shape("f()"), "F()");
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            ("ABC(", 4, "expected an expression"),
            ("x LIKE 123", 7, "string literal"),
            ("1 +", 3, "expected an expression"),
            ("(1", 2, "expected `)`"),
            ("1)", 1, "unbalanced"),
            ("a IN ()", 6, "expected an expression"),
            ("2147483648", 0, "32-bit"),
            ("a_b", 0, "not an attribute name"),
            ("f1(2)", 0, "not a function name"),
            ("EXISTS 1", 7, "attribute name"),
            ("+ 1", 0, "sign"),
            ("a NOT b", 2, "expected an operator"),
            ("", 0, "expected an expression"),
        ];
        for (src, offset, text) in cases {
            let e = parse(src).unwrap_err();
            assert_eq!(e.offset(), offset, "{src}: {e}");
            assert!(e.message().contains(text), "{src}: {e}");
        }
    }

    #[test]
    fn nesting_is_capped() {
        let ok = format!(
            "{}1{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&ok).is_ok());
        for deep in [
            format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000)),
            "NOT ".repeat(100_000) + "TRUE",
            "-".repeat(100_000) + "x",
            "1".to_owned() + &" + 1".repeat(100_000),
            "a".to_owned() + &" = a".repeat(100_000),
            "x".to_owned() + &" IN (1)".repeat(100_000),
            "x".to_owned() + &" LIKE 'a'".repeat(100_000),
            "f(".repeat(100_000),
            "a".to_owned() + &" AND b OR c".repeat(10_000),
        ] {
            let e = parse(&deep).unwrap_err();
            assert!(e.message().contains("nested"), "{e}");
        }
        // A long chain of one logical operator is flat.
        let wide = "a = 1".to_owned() + &" OR a = 1".repeat(50_000);
        assert!(parse(&wide).is_ok());
    }
}
