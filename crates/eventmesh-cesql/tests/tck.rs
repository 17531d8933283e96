//! The CloudEvents SQL 1.0 test kit (`shared/conformance/cesql-tck/`, copied unchanged from the
//! CloudEvents specification repository), every case of every file.
//!
//! Each case runs twice: on the kit's event as JSON (attributes exactly as the kit writes them,
//! through this file's `JsonEvent`), and on the same event converted to the mesh's
//! [`CloudEvent`]. The model keeps `time` as a UTC instant, so on the second run a timestamp
//! result is compared as an instant (`2018-04-26T14:48:09+02:00` is `…12:48:09Z`); everything
//! else must match exactly.
//!
//! The test fails if the kit is missing, if its files or their case counts differ from
//! `EXPECTED_FILES`, or if any case fails (all failures are listed).

// Helpers outside #[test] fns unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use eventmesh_cesql::{Attribute, Attributes, ErrorKind, Expression, Value};
use eventmesh_core::{CloudEvent, ExtensionValue, SpecVersion};
use serde::Deserialize;
use serde_norway::Value as Yaml;

/// Every file of the kit and how many cases it holds.
const EXPECTED_FILES: [(&str, usize); 18] = [
    ("binary_comparison_operators.yaml", 32),
    ("binary_logical_operators.yaml", 16),
    ("binary_math_operators.yaml", 18),
    ("case_sensitivity.yaml", 7),
    ("casting_functions.yaml", 21),
    ("context_attributes_access.yaml", 8),
    ("exists_expression.yaml", 7),
    ("in_expression.yaml", 16),
    ("integer_builtin_functions.yaml", 4),
    ("like_expression.yaml", 37),
    ("literals.yaml", 10),
    ("negate_operator.yaml", 6),
    ("not_operator.yaml", 6),
    ("parse_errors.yaml", 1),
    ("spec_examples.yaml", 13),
    ("string_builtin_functions.yaml", 42),
    ("sub_expression.yaml", 3),
    ("subscriptions_api_recreations.yaml", 28),
];

const EXPECTED_CASES: usize = 275;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    expression: String,
    result: Option<Yaml>,
    error: Option<String>,
    event: Option<BTreeMap<String, Yaml>>,
    event_overrides: Option<BTreeMap<String, Yaml>>,
}

/// The kit, vendored unchanged in `tests/cesql-tck/` (see its SOURCE.md), so a clean clone runs
/// it without anything beside the repository.
fn tck_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cesql-tck")
}

/// Where the project's shared folder keeps the kit, when it sits beside the repository.
fn shared_tck_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/cesql-tck")
}

#[test]
fn vendored_tck_matches_the_shared_copy_when_present() {
    let shared = shared_tck_dir();
    if !shared.is_dir() {
        // A clean clone without the shared folder beside it: the vendored copy is the kit.
        return;
    }
    for entry in std::fs::read_dir(&shared).expect("the shared kit is readable") {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name();
        let ours = std::fs::read(tck_dir().join(&name))
            .unwrap_or_else(|e| panic!("{} is not vendored: {e}", name.to_string_lossy()));
        let theirs = std::fs::read(entry.path()).expect("a shared kit file");
        assert_eq!(
            ours,
            theirs,
            "tests/cesql-tck/{} differs from the shared kit",
            name.to_string_lossy()
        );
    }
}

/// An event as the kit writes it: attribute name to YAML scalar.
struct JsonEvent(BTreeMap<String, Yaml>);

impl Attributes for JsonEvent {
    fn attribute(&self, attribute: &Attribute) -> Option<Value<'_>> {
        let name = attribute.name();
        if name == "data" || name == "data_base64" {
            return None;
        }
        Some(match self.0.get(name)? {
            Yaml::Bool(b) => Value::Boolean(*b),
            Yaml::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => Value::Integer(i),
                None => Value::String(Cow::Owned(n.to_string())),
            },
            Yaml::String(s) => Value::String(Cow::Borrowed(s)),
            other => panic!("attribute {name} is not a scalar: {other:?}"),
        })
    }
}

fn event_of(case: &Case) -> BTreeMap<String, Yaml> {
    let mut event = case.event.clone().unwrap_or_else(|| {
        // "If absent, any valid event can be passed."
        [
            ("specversion", "1.0"),
            ("id", "tck-default-id"),
            ("source", "/tck/default"),
            ("type", "tck.default.type"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Yaml::String(v.to_owned())))
        .collect()
    });
    for (k, v) in case.event_overrides.iter().flatten() {
        event.insert(k.clone(), v.clone());
    }
    event
}

fn scalar_string(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn to_cloudevent(map: &BTreeMap<String, Yaml>) -> CloudEvent {
    let mut e = CloudEvent::default();
    for (name, v) in map {
        let s = || scalar_string(v);
        match name.as_str() {
            "id" => e.id = s(),
            "source" => e.source = s(),
            "type" => e.ty = s(),
            "specversion" => e.spec_version = SpecVersion::parse(&s()).unwrap(),
            "subject" => e.subject = Some(s()),
            "datacontenttype" => e.data_content_type = Some(s()),
            "dataschema" => e.data_schema = Some(s()),
            "time" => e.time = Some(DateTime::parse_from_rfc3339(&s()).unwrap().to_utc()),
            ext => {
                let value = match v {
                    Yaml::Bool(b) => ExtensionValue::Boolean(*b),
                    Yaml::Number(n) => ExtensionValue::Integer(n.as_i64().unwrap()),
                    _ => ExtensionValue::String(s()),
                };
                e.extensions.insert(ext.to_owned(), value);
            }
        }
    }
    e.validate().unwrap();
    e
}

fn expected_value(v: &Yaml) -> Value<'static> {
    match v {
        Yaml::Bool(b) => Value::Boolean(*b),
        Yaml::Number(n) => Value::Integer(i32::try_from(n.as_i64().unwrap()).unwrap()),
        Yaml::String(s) => Value::String(Cow::Owned(s.clone())),
        other => panic!("result is not a scalar: {other:?}"),
    }
}

fn as_instant(v: &Value<'_>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.to_utc())
}

/// Runs one case on one event; `Err` says what differed.
fn run_case<E: Attributes>(case: &Case, event: &E, instants: bool) -> Result<(), String> {
    let want_error = case
        .error
        .as_deref()
        .map(|e| e.parse::<ErrorKind>().map_err(|e| e.to_string()))
        .transpose()?;
    let expr = match Expression::parse(&case.expression) {
        Ok(expr) => expr,
        Err(parse) if want_error == Some(ErrorKind::Parse) => {
            // No value comes out of a parse error; where the kit names one it is the
            // specification's default for an undetermined type, false.
            return match &case.result {
                None | Some(Yaml::Bool(false)) => Ok(()),
                Some(other) => Err(format!(
                    "parse error ({parse}), but the kit wants {other:?}"
                )),
            };
        }
        Err(parse) => return Err(format!("unexpected parse error: {parse}")),
    };
    if want_error == Some(ErrorKind::Parse) {
        return Err(format!("parsed as {expr}, but the kit wants a parse error"));
    }
    let got = expr.evaluate(event);
    if let Some(result) = &case.result {
        let want = expected_value(result);
        let same = got.value == want
            || (instants && as_instant(&got.value).is_some_and(|t| Some(t) == as_instant(&want)));
        if !same {
            return Err(format!("value {:?}, want {want:?} ({expr})", got.value));
        }
    }
    let kinds: Vec<ErrorKind> = got.errors.iter().map(|e| e.kind()).collect();
    let errors_ok = match want_error {
        None => kinds.is_empty(),
        Some(k) => !kinds.is_empty() && kinds.iter().all(|&g| g == k),
    };
    if !errors_ok {
        return Err(format!(
            "errors {:?}, want {want_error:?} ({expr})",
            got.errors
                .iter()
                .map(|e| format!("{}: {e}", e.kind()))
                .collect::<Vec<_>>()
        ));
    }
    // A filter matches exactly when the evaluation is `true` without errors.
    if expr.matches(event) != got.is_match() {
        return Err("matches() disagrees with evaluate()".to_owned());
    }
    Ok(())
}

#[test]
fn cesql_tck_passes_in_full() {
    let dir = tck_dir();
    assert!(
        dir.is_dir(),
        "the CESQL TCK is missing: expected it at {} (vendored in tests/cesql-tck)",
        dir.display()
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    let expected: Vec<&str> = EXPECTED_FILES.iter().map(|(f, _)| *f).collect();
    assert_eq!(files, expected, "the kit's files changed");

    let mut run = 0;
    let mut failures = Vec::new();
    for (file, count) in EXPECTED_FILES {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let suite: Suite = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            suite.tests.len(),
            count,
            "{file} ({}) case count",
            suite.name
        );
        for case in &suite.tests {
            let event = event_of(case);
            let json = JsonEvent(event.clone());
            let cloudevent = to_cloudevent(&event);
            for (model, outcome) in [
                ("json", run_case(case, &json, false)),
                ("CloudEvent", run_case(case, &cloudevent, true)),
            ] {
                if let Err(why) = outcome {
                    failures.push(format!(
                        "{file} / {} [{model}]: `{}`: {why}",
                        case.name, case.expression
                    ));
                }
            }
            run += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {run} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(run, EXPECTED_CASES, "cases run");
    println!("CESQL TCK: {run} cases passed (each on a JSON event and on a CloudEvent)");
}
