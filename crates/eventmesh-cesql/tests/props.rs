//! Property tests: the parser never panics, printing and reparsing gives the same expression,
//! evaluation never panics and `matches` agrees with `evaluate`; and the nesting cap keeps the
//! deepest accepted expressions within a small stack.

// Helpers outside #[test] fns unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use chrono::TimeZone;
use eventmesh_cesql::{Expression, MAX_DEPTH, NoEvent};
use eventmesh_core::{CloudEvent, ExtensionValue};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn event() -> CloudEvent {
    let mut e = CloudEvent::new("id-1", "/orders/eu", "order.created")
        .with_extension("seq", ExtensionValue::Integer(42))
        .with_extension("flag", ExtensionValue::Boolean(true))
        .with_extension("name", "Ab'c\\%_")
        .with_extension("num", "17");
    e.subject = Some("s".to_owned());
    e.time = chrono::Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single();
    e
}

/// A single-quoted literal of `s`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|i| i.to_string()),
        (0..100i32).prop_map(|i| i.to_string()),
        prop::sample::select(vec![
            "id", "source", "type", "subject", "time", "seq", "flag", "name", "num", "missing",
            "TYPE", "Seq",
        ])
        .prop_map(String::from),
        "[a-zA-Z%_\\\\' 0-9é]{0,6}".prop_map(|s| quote(&s)),
        prop::sample::select(vec!["TRUE", "FALSE", "true", "False"]).prop_map(String::from),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    let ops = prop::sample::select(vec![
        "AND", "OR", "XOR", "and", "=", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%",
    ]);
    let functions = prop::sample::select(vec![
        "LENGTH",
        "CONCAT",
        "CONCAT_WS",
        "lower",
        "UPPER",
        "TRIM",
        "LEFT",
        "RIGHT",
        "SUBSTRING",
        "ABS",
        "INT",
        "BOOL",
        "STRING",
        "NOPE",
    ]);
    leaf().prop_recursive(6, 64, 4, move |inner| {
        prop_oneof![
            (inner.clone(), ops.clone(), inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            (inner.clone(), any::<bool>(), "[a-z%_\\\\]{0,5}").prop_map(|(a, not, p)| format!(
                "{a} {}LIKE {}",
                if not { "NOT " } else { "" },
                quote(&p)
            )),
            (
                inner.clone(),
                any::<bool>(),
                prop::collection::vec(inner.clone(), 1..4)
            )
                .prop_map(|(a, not, set)| format!(
                    "{a} {}IN ({})",
                    if not { "NOT " } else { "" },
                    set.join(", ")
                )),
            (
                functions.clone(),
                prop::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            prop::sample::select(vec!["id", "subject", "seq", "missing"])
                .prop_map(|a| format!("EXISTS {a}")),
        ]
    })
}

/// Everything that must hold for any source text.
fn check(src: &str) {
    let Ok(expr) = Expression::parse(src) else {
        return;
    };
    let printed = expr.to_string();
    let again = Expression::parse(&printed)
        .unwrap_or_else(|e| panic!("{src:?} printed as {printed:?}, which fails: {e}"));
    assert_eq!(expr, again, "{src:?} printed as {printed:?}");
    assert_eq!(printed, again.to_string());
    for event in [Some(event()), None] {
        let eval = match &event {
            Some(e) => expr.evaluate(e),
            None => expr.evaluate(&NoEvent),
        };
        let matched = match &event {
            Some(e) => expr.matches(e),
            None => expr.matches(&NoEvent),
        };
        assert_eq!(matched, eval.is_match(), "{src:?}");
        // The same expression reparsed evaluates the same.
        let eval_again = match &event {
            Some(e) => again.evaluate(e),
            None => again.evaluate(&NoEvent),
        };
        assert_eq!(eval, eval_again, "{src:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        check(&src);
    }

    #[test]
    fn cesql_alphabet_never_panics(src in "[a-zA-Z0-9_ '\"\\\\()%,=<>!+*/-]{0,60}") {
        check(&src);
    }

    #[test]
    fn generated_expressions_round_trip(src in expression()) {
        check(&src);
    }
}

#[test]
fn generated_expressions_mostly_parse() {
    // Guards the generator: round trips are only meaningful if most inputs parse.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = expression();
    let mut parsed = 0;
    for _ in 0..500 {
        let src = strategy.new_tree(&mut runner).unwrap().current();
        parsed += usize::from(Expression::parse(&src).is_ok());
    }
    assert!(
        parsed > 300,
        "only {parsed} of 500 generated expressions parse"
    );
}

/// The deepest accepted expressions parse, print, evaluate and drop on a 1 MiB stack in a
/// debug build, whose frames are large (the parser's are about 11 KiB per nesting level in
/// debug, 1.5 KiB in release; tokio's worker threads have 2 MiB).
#[test]
fn deepest_expressions_fit_a_small_stack() {
    let d = MAX_DEPTH - 1;
    let sources = [
        format!("{}TRUE{}", "(".repeat(d), ")".repeat(d)),
        "NOT ".repeat(d) + "TRUE",
        "-".repeat(d) + "1",
        "1".to_owned() + &" + 1".repeat(d),
        format!("{}1{}", "ABS(".repeat(d), ")".repeat(d)),
        format!("{}x{}", "LOWER(".repeat(d), ")".repeat(d)),
        "x".to_owned() + &" IN (1)".repeat(d),
        "a = 1".to_owned() + &" OR a = 1".repeat(50_000),
        (0..d / 2)
            .map(|_| "a AND b OR")
            .collect::<Vec<_>>()
            .join(" ")
            + " c",
    ];
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            let event = event();
            for src in &sources {
                let expr = Expression::parse(src)
                    .unwrap_or_else(|e| panic!("{}…: {e}", &src[..40.min(src.len())]));
                let printed = expr.to_string();
                assert_eq!(Expression::parse(&printed).unwrap(), expr);
                let _ = expr.evaluate(&event);
                let _ = expr.matches(&event);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
