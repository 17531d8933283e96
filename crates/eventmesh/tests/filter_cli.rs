//! `eventmesh filter eval`, run as the real binary: results as JSON on stdout with exit 0,
//! `error: <kind>: <message>` on stderr with exit 2.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_eventmesh");

const EVENT: &str = r#"{"specversion":"1.0","id":"1","source":"/shop/eu","type":"order.created","subject":"a\"b","seq":41,"flag":true}"#;

fn eval(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("filter")
        .arg("eval")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("eventmesh runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (exit code, stdout, stderr)
fn run(args: &[&str]) -> (i32, String, String) {
    let out = eval(args);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn should_print_results_as_json() {
    for (expr, want) in [
        ("type = 'order.created' AND source LIKE '/shop/%'", "true\n"),
        ("type = 'other'", "false\n"),
        ("seq + 1", "42\n"),
        ("flag", "true\n"),
        ("UPPER(source)", "\"/SHOP/EU\"\n"),
        ("subject", "\"a\\\"b\"\n"),
        ("-5", "-5\n"),
    ] {
        let (code, stdout, stderr) = run(&["--event", EVENT, expr]);
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (0, want, ""),
            "{expr}"
        );
    }
}

#[test]
fn should_evaluate_without_an_event() {
    assert_eq!(run(&["1 + 2 * 3"]), (0, "7\n".into(), String::new()));
    assert_eq!(run(&["EXISTS id"]), (0, "false\n".into(), String::new()));
    assert_eq!(
        run(&["CONCAT('a', 'b')"]),
        (0, "\"ab\"\n".into(), String::new())
    );
}

#[test]
fn should_report_errors_with_their_kind_and_exit_2() {
    let (code, stdout, stderr) = run(&["type ="]);
    assert_eq!(code, 2);
    assert_eq!(stdout, "", "a parse error prints no value");
    assert!(stderr.starts_with("error: parse: "), "{stderr}");
    assert!(stderr.contains("column"), "the position is named: {stderr}");

    for (args, value, kind) in [
        (vec!["1 / 0"], "0", "math"),
        (vec!["missing"], "false", "missingAttribute"),
        (vec!["INT('x')"], "0", "cast"),
        (vec!["NOSUCH(1)"], "false", "missingFunction"),
        (vec!["LEFT('abc', -1)"], "\"abc\"", "functionEvaluation"),
        (
            vec!["--event", EVENT, "nothere = 1"],
            "false",
            "missingAttribute",
        ),
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stdout, format!("{value}\n"), "{args:?}");
        assert!(
            stderr.starts_with(&format!("error: {kind}: ")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn should_refuse_a_bad_event_with_exit_2() {
    for bad in [
        "not json",
        "[1]",
        r#"{"specversion":"1.0","id":"1","type":"t"}"#,
        r#"{"specversion":"9.9","id":"1","source":"/s","type":"t"}"#,
    ] {
        let (code, stdout, stderr) = run(&["--event", bad, "TRUE"]);
        assert_eq!(code, 2, "{bad}");
        assert_eq!(stdout, "", "{bad}");
        assert!(
            stderr.starts_with("error: event: --event is not a valid CloudEvent: "),
            "{bad}: {stderr}"
        );
    }
    let (_, _, stderr) = run(&[
        "--event",
        r#"{"specversion":"1.0","id":"1","type":"t"}"#,
        "TRUE",
    ]);
    assert!(stderr.contains("source"), "names the attribute: {stderr}");
}

#[test]
fn should_read_the_event_from_stdin() {
    let mut child = Command::new(BIN)
        .args(["filter", "eval", "--event", "-", "type"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("eventmesh runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(EVENT.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("eventmesh exits");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "\"order.created\"\n");
}
