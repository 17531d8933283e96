//! `LIKE` patterns, compiled once when the expression is parsed.
//!
//! `%` matches any run of characters (none included), `_` exactly one character, `\%`, `\_` and
//! `\\` the character itself, and every other character (a `\` before anything else included)
//! itself, case-sensitively. Characters are Unicode scalar values.
//!
//! Matching never backtracks more than one segment: the pattern is split at each `%` into
//! segments of fixed length; the first must match at the start, the last at the end and the
//! others at their leftmost position after the previous one, which is O(len(value) ×
//! len(pattern)) at worst. Patterns of the common shapes (`abc`, `abc%`, `%abc`, `%abc%`)
//! without `_` reduce to one string comparison or search.

/// One element of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Elem {
    Char(char),
    /// `_`.
    Any,
}

/// A run of pattern elements between two `%`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Literal characters only.
    Text(Box<str>),
    /// At least one `_`.
    Mixed(Box<[Elem]>),
}

impl Segment {
    fn new(elems: Vec<Elem>) -> Segment {
        if elems.iter().all(|e| matches!(e, Elem::Char(_))) {
            Segment::Text(
                elems
                    .iter()
                    .filter_map(|e| match e {
                        Elem::Char(c) => Some(*c),
                        Elem::Any => None,
                    })
                    .collect::<String>()
                    .into(),
            )
        } else {
            Segment::Mixed(elems.into())
        }
    }

    /// Length in characters.
    fn chars(&self) -> usize {
        match self {
            Segment::Text(t) => t.chars().count(),
            Segment::Mixed(e) => e.len(),
        }
    }

    /// If the segment matches at the start of `s`, the number of bytes it covers.
    fn match_prefix(&self, s: &str) -> Option<usize> {
        match self {
            Segment::Text(t) => s.starts_with(&**t).then_some(t.len()),
            Segment::Mixed(elems) => {
                let mut chars = s.char_indices();
                for e in elems.iter() {
                    let (_, c) = chars.next()?;
                    if let Elem::Char(want) = e
                        && *want != c
                    {
                        return None;
                    }
                }
                Some(chars.next().map_or(s.len(), |(i, _)| i))
            }
        }
    }

    /// The leftmost match in `s`: (start, end) byte offsets.
    fn find(&self, s: &str) -> Option<(usize, usize)> {
        match self {
            Segment::Text(t) => s.find(&**t).map(|i| (i, i + t.len())),
            Segment::Mixed(_) => s
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(s.len()))
                .find_map(|i| self.match_prefix(&s[i..]).map(|n| (i, i + n))),
        }
    }
}

/// The common pattern shapes, matched without walking segments.
#[derive(Clone, Debug)]
enum Shape {
    /// `abc`
    Exact(Box<str>),
    /// `abc%`
    Prefix(Box<str>),
    /// `%abc`
    Suffix(Box<str>),
    /// `%abc%`
    Contains(Box<str>),
    /// Anything else.
    General,
}

/// A compiled `LIKE` pattern.
#[derive(Clone, Debug)]
pub(crate) struct LikePattern {
    source: Box<str>,
    /// The segments between `%`s; `segments.len() - 1` is the number of `%` runs.
    segments: Vec<Segment>,
    shape: Shape,
}

impl PartialEq for LikePattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for LikePattern {}

impl LikePattern {
    /// Compiles the value of a string literal.
    pub(crate) fn new(source: &str) -> LikePattern {
        let mut segments = Vec::new();
        let mut current = Vec::new();
        let mut chars = source.chars().peekable();
        let mut last_was_percent = false;
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    // `%%` is the same as `%`: keep one (empty) segment boundary.
                    if !last_was_percent {
                        segments.push(Segment::new(std::mem::take(&mut current)));
                    }
                    last_was_percent = true;
                    continue;
                }
                '_' => current.push(Elem::Any),
                '\\' => match chars.peek() {
                    Some(&n @ ('%' | '_' | '\\')) => {
                        chars.next();
                        current.push(Elem::Char(n));
                    }
                    _ => current.push(Elem::Char('\\')),
                },
                c => current.push(Elem::Char(c)),
            }
            last_was_percent = false;
        }
        segments.push(Segment::new(current));
        let text = |s: &Segment| match s {
            Segment::Text(t) => Some(t.clone()),
            Segment::Mixed(_) => None,
        };
        let empty = |s: &Segment| matches!(s, Segment::Text(t) if t.is_empty());
        let shape = match segments.as_slice() {
            [only] => text(only).map(Shape::Exact),
            [first, last] if empty(last) => text(first).map(Shape::Prefix),
            [first, last] if empty(first) => text(last).map(Shape::Suffix),
            [first, middle, last] if empty(first) && empty(last) => {
                text(middle).map(Shape::Contains)
            }
            _ => None,
        }
        .unwrap_or(Shape::General);
        LikePattern {
            source: source.into(),
            segments,
            shape,
        }
    }

    /// The pattern as written (the string literal's value).
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Whether `s` matches the whole pattern.
    pub(crate) fn matches(&self, s: &str) -> bool {
        match &self.shape {
            Shape::Exact(t) => s == &**t,
            Shape::Prefix(t) => s.starts_with(&**t),
            Shape::Suffix(t) => s.ends_with(&**t),
            Shape::Contains(t) => s.contains(&**t),
            Shape::General => self.matches_segments(s),
        }
    }

    fn matches_segments(&self, s: &str) -> bool {
        let (first, rest) = match self.segments.split_first() {
            Some(x) => x,
            None => return s.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            // No `%`: the one segment must cover `s` exactly.
            return first.match_prefix(s) == Some(s.len());
        };
        let Some(mut pos) = first.match_prefix(s) else {
            return false;
        };
        for seg in middle {
            match seg.find(&s[pos..]) {
                Some((_, end)) => pos += end,
                None => return false,
            }
        }
        // The last segment must end the value and start at or after `pos`.
        let tail = &s[pos..];
        let mut start = tail.len();
        let mut from_end = tail.char_indices().rev();
        for _ in 0..last.chars() {
            match from_end.next() {
                Some((i, _)) => start = i,
                None => return false,
            }
        }
        last.match_prefix(&tail[start..]) == Some(tail.len() - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(s: &str, p: &str) -> bool {
        let pattern = LikePattern::new(p);
        let fast = pattern.matches(s);
        assert_eq!(fast, pattern.matches_segments(s), "{s:?} LIKE {p:?}");
        fast
    }

    #[test]
    fn wildcards() {
        assert!(like("abc", "abc"));
        assert!(!like("abcd", "abc"));
        assert!(like("abc", "a%b%c"));
        assert!(like("azzzbzzzc", "a%b%c"));
        assert!(!like("ac", "abc"));
        assert!(!like("", "abc"));
        assert!(like("", "%"));
        assert!(like("", ""));
        assert!(!like("a", ""));
        assert!(like(".ab.cde.", ".%.%."));
        assert!(!like("ab.cde", ".%.%."));
        assert!(like("azbzc", "a_b_c"));
        assert!(!like("abzc", "a_b_c"));
        assert!(like(".a.b.", "._._."));
        assert!(like("éa", "_a"));
        assert!(like("xéy", "x_y"));
        assert!(like("ab", "_b%"));
        assert!(like("abcd1", "_b%"));
        assert!(!like("b", "_b%"));
        assert!(!like("aBc", "_b%"));
        assert!(like("aaa", "%a%a%a%"));
        assert!(!like("aa", "%a%a%a%"));
        assert!(like("abab", "%ab"));
        assert!(like("xaby", "%a_%"));
        assert!(!like("xa", "%a_%"));
        assert!(like("aXbYb", "a%_b"));
        assert!(like("ab", "a%%b"));
    }

    #[test]
    fn escapes() {
        assert!(like("a_b_c", r"a\_b\_c"));
        assert!(!like("azbzc", r"a\_b\_c"));
        assert!(like("a%b%c", r"a\%b\%c"));
        assert!(!like("abc", r"a\%b\%c"));
        assert!(like(r"ab\c", r"ab\c"));
        assert!(like(r"a\", r"a\"));
        assert!(like(r"a\x", r"a\\%"));
        assert!(like("abc123123%456_dzf", r"abc%123\%456\_d_f"));
    }

    #[test]
    fn no_exponential_blowup() {
        let value = "a".repeat(5000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&value, &pattern));
    }
}
