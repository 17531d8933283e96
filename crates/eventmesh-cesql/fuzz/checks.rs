//! The properties the fuzz target checks, shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so CI exercises them without cargo-fuzz.

use eventmesh_cesql::{Expression, NoEvent};
use eventmesh_core::{CloudEvent, ExtensionValue};

/// The event expressions are evaluated against (besides no event at all).
fn event() -> CloudEvent {
    let mut e = CloudEvent::new("id-1", "/orders/eu", "order.created")
        .with_extension("seq", ExtensionValue::Integer(42))
        .with_extension("big", ExtensionValue::Integer(1 << 40))
        .with_extension("flag", ExtensionValue::Boolean(true))
        .with_extension("name", "Ab'c\\%_é")
        .with_extension("num", "-17");
    e.subject = Some("orders/1.priority".to_owned());
    e.data_content_type = Some("application/json".to_owned());
    e
}

/// Reads `data` as an expression (UTF-8, lossily). Nothing may panic; an expression that parses
/// must print to text that parses to the same expression, and evaluate, with and without an
/// event, to a result that `matches` agrees with.
pub(crate) fn parse_eval(data: &[u8]) {
    let src = String::from_utf8_lossy(data);
    let Ok(expr) = Expression::parse(&src) else {
        return;
    };
    let printed = expr.to_string();
    let again = Expression::parse(&printed).expect("the printed form parses");
    assert_eq!(again, expr, "printed as {printed:?}");
    let event = event();
    let eval = expr.evaluate(&event);
    assert_eq!(expr.matches(&event), eval.is_match());
    assert_eq!(again.evaluate(&event), eval);
    let eval = expr.evaluate(&NoEvent);
    assert_eq!(expr.matches(&NoEvent), eval.is_match());
    let _ = expr.diagnostics();
}
