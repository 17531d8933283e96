//! Subscription filters: a CloudEvents SQL (CESQL 1.0) expression per (group, topic), compiled
//! once when the binding is made and evaluated by the dispatcher per fetched event.
//!
//! * An expression that does not parse, or that the checker already knows will fail whenever it
//!   is evaluated (a function that does not exist, a cast of a literal that cannot succeed,
//!   division by a literal zero: [`Expression::diagnostics`]), is refused with `BadRequest`
//!   carrying the engine's message.
//! * A blank filter (empty or only whitespace) is no filter.
//! * Two filters are the same when their expressions are: the binding stores the canonical form
//!   ([`Expression`]'s `Display`), so `type='x'` and `type = 'x'` do not conflict.
//! * An event passes when the expression evaluates to Boolean `true` with no error (CESQL
//!   section 1.2); every other event is acked for the group without being delivered.

use std::sync::Arc;

use eventmesh_cesql::Expression;
use eventmesh_core::{ErrorCode, EventMeshError};

/// A compiled filter and its canonical text.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    pub(crate) canonical: String,
    pub(crate) expression: Arc<Expression>,
}

/// Compiles a subscription's filter: `Ok(None)` when there is none (or it is blank).
pub(crate) fn compile(source: Option<&str>) -> Result<Option<Filter>, EventMeshError> {
    let Some(source) = source.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let expression = Expression::parse(source).map_err(|e| {
        EventMeshError::new(
            ErrorCode::BadRequest,
            format!("invalid filter `{source}`: {}: {e}", e.kind()),
        )
    })?;
    if let Some(d) = expression.diagnostics().first() {
        return Err(EventMeshError::new(
            ErrorCode::BadRequest,
            format!(
                "invalid filter `{source}`: it fails whenever it is evaluated: {}: {d}",
                d.kind()
            ),
        ));
    }
    Ok(Some(Filter {
        canonical: expression.to_string(),
        expression: Arc::new(expression),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_none_and_spellings_share_a_canonical_form() {
        assert!(compile(None).unwrap().is_none());
        assert!(compile(Some("  ")).unwrap().is_none());
        let a = compile(Some("type='x'")).unwrap().unwrap();
        let b = compile(Some("TYPE = \"x\"")).unwrap().unwrap();
        assert_eq!(a.canonical, b.canonical);
    }

    #[test]
    fn parse_errors_and_diagnostics_are_refused() {
        let e = compile(Some("type = ")).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(e.message.contains("parse:"), "{}", e.message);
        let e = compile(Some("NOSUCH(type) = 'x'")).unwrap_err();
        assert!(e.message.contains("missingFunction"), "{}", e.message);
    }
}
