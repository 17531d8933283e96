//! `eventmesh filter eval`: evaluates a CloudEvents SQL (CESQL 1.0) expression, the language of
//! subscription filters, against one event given as structured CloudEvents JSON.
//!
//! Output: the result as JSON on stdout (`true`, `42`, `"abc"`), exit code 0. When anything
//! fails, each problem is one line `error: <kind>: <message>` on **stderr** and the exit code is
//! 2. `<kind>` is the CESQL error kind as the specification spells it (`parse`, `math`, `cast`,
//! `missingFunction`, `functionEvaluation`, `missingAttribute`, `generic`), or `event` when the
//! `--event` document is not a valid CloudEvent. An expression that raises errors while being
//! evaluated still has a value (the specification's rule: the zero value of the failed
//! operator's type); it is printed on stdout as well, so `1 / 0` prints `0` and
//! `error: math: …`, then exits 2. A parse error or a bad event prints nothing on stdout.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use eventmesh_cesql::Expression;

/// Exit code when the expression, the event or the evaluation failed.
const EXIT_ERROR: u8 = 2;

/// Actions of `eventmesh filter`.
#[derive(Debug, Subcommand)]
pub(crate) enum FilterAction {
    /// Evaluates a CESQL expression against an event and prints the result as JSON (exit 0),
    /// or `error: <kind>: <message>` on stderr (exit 2).
    Eval(EvalArgs),
}

/// Flags of `filter eval`.
#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// The event as structured CloudEvents JSON (`-` reads it from stdin). Without it, every
    /// attribute is missing.
    #[arg(long, value_name = "JSON")]
    pub(crate) event: Option<String>,
    /// The CESQL expression, e.g. `type = 'order.created' AND source LIKE '/shop/%'`.
    #[arg(value_name = "EXPRESSION", allow_hyphen_values = true)]
    pub(crate) expression: String,
}

/// Runs a `filter` action.
pub(crate) fn run(action: FilterAction) -> ExitCode {
    match action {
        FilterAction::Eval(args) => eval(&args),
    }
}

fn eval(args: &EvalArgs) -> ExitCode {
    let expression = match Expression::parse(&args.expression) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}: {e}", e.kind().as_str());
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let event = match &args.event {
        None => None,
        Some(json) => {
            let text = if json == "-" {
                let mut s = String::new();
                if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                    eprintln!("error: event: cannot read the event from stdin: {e}");
                    return ExitCode::from(EXIT_ERROR);
                }
                s
            } else {
                json.clone()
            };
            match eventmesh_protocol::cloudevents::decode_event(text.trim().as_bytes()) {
                Ok(ev) => Some(ev),
                Err(e) => {
                    eprintln!("error: event: --event is not a valid CloudEvent: {e}");
                    return ExitCode::from(EXIT_ERROR);
                }
            }
        }
    };
    let evaluation = match &event {
        Some(ev) => expression.evaluate(ev),
        None => expression.evaluate_without_event(),
    };
    println!("{}", evaluation.value.to_json());
    if evaluation.errors.is_empty() {
        return ExitCode::SUCCESS;
    }
    for e in &evaluation.errors {
        eprintln!("error: {}: {e}", e.kind().as_str());
    }
    ExitCode::from(EXIT_ERROR)
}
