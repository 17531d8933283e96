//! The `eventmesh` binary: `eventmesh serve` runs a mesh node; `eventmesh pub` and
//! `eventmesh sub` publish and subscribe over TCP with the SDK.
//!
//! Exit codes: 0 after a clean shutdown; 1 when the node cannot start (data directory unusable or
//! in use, store corrupt, port taken, …) or stopped because a critical task failed; 2 for a bad
//! command line or configuration (every problem is listed on stderr).

mod bench;
mod cli;
mod client;
mod console;
mod filter;
mod grpc_client;
mod http_client;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches};
use eventmesh_config::Config;
use eventmesh_runtime::lifecycle::ShutdownReason;
use eventmesh_runtime::{Runtime, ServerError, telemetry};
use tracing::{error, info, warn};

use crate::cli::{Cli, Command, ServeArgs};

/// Exit code for a bad configuration (clap uses 2 for bad usage too).
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failed start or a failed run.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Serve(args) => {
            let sub = matches
                .subcommand_matches("serve")
                .cloned()
                .unwrap_or_default();
            serve(&args, &sub)
        }
        Command::Pub(args) => run_client(client::publish(args)),
        Command::Sub(args) => run_client(client::subscribe(args)),
        Command::Bench(args) => bench::main(&args),
        Command::Filter { action } => filter::run(action),
    }
}

/// Runs `pub` or `sub`: logs (warnings by default, `EVENTMESH_LOG__LEVEL` to change) to stderr;
/// exit code 1 with the error on stderr when it fails.
fn run_client(work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let log = eventmesh_config::LogConfig {
        level: std::env::var("EVENTMESH_LOG__LEVEL").unwrap_or_else(|_| "warn".to_owned()),
        ..eventmesh_config::LogConfig::default()
    };
    if let Err(e) = telemetry::init_logging(&log) {
        eprintln!("eventmesh: cannot set up logging: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("eventmesh: cannot start the Tokio runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = rt.block_on(work);
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventmesh: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn serve(args: &ServeArgs, matches: &clap::ArgMatches) -> ExitCode {
    let config = match args.loader(matches).load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("eventmesh: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = telemetry::init_logging(&config.log) {
        eprintln!("eventmesh: cannot set up logging: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let summary = config
        .summary()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    info!(message = "Effective configuration.", version = env!("CARGO_PKG_VERSION"), config = %summary);

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("eventmesh")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(message = "Cannot start the Tokio runtime.", error = %e);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let code = rt.block_on(run(config));
    // Tasks abandoned at the shutdown deadline must not hold the process.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn run(config: Config) -> ExitCode {
    // Install the handlers before anything is announced as ready: a SIGTERM
    // that arrives right after "Node ready." must drain, not kill.
    let mut signals = match shutdown_signals() {
        Ok(s) => s,
        Err(e) => {
            error!(message = "Cannot install signal handlers.", error = %format!("{e:#}"));
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let handle = match Runtime::start(config).await {
        Ok(h) => h,
        Err(e) => {
            let code = if matches!(e, ServerError::Config(_)) {
                EXIT_CONFIG
            } else {
                EXIT_FAILURE
            };
            error!(message = "Startup failed.", error = %format!("{:#}", anyhow::Error::from(e)));
            return ExitCode::from(code);
        }
    };

    let signal = handle.shutdown_signal();
    tokio::select! {
        name = signals.next() => {
            info!(message = "Signal received; shutting down gracefully (send it again to exit at once).", signal = name);
            signal.trigger(ShutdownReason::Requested(name.to_owned()));
        }
        reason = handle.wait() => {
            warn!(message = "Shutting down.", reason = %reason);
        }
    }
    tokio::spawn(async move {
        let name = signals.next().await;
        warn!(
            message = "Second signal received; exiting without finishing the shutdown.",
            signal = name
        );
        std::process::exit(130);
    });

    let report = handle.shutdown().await;
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        error!(
            message = "Shutdown was not clean.",
            reason = %report.reason.as_ref().map(ToString::to_string).unwrap_or_default(),
            stragglers = ?report.stragglers,
            errors = ?report.errors,
        );
        ExitCode::from(EXIT_FAILURE)
    }
}

/// SIGINT and SIGTERM as one stream of signal names.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

fn shutdown_signals() -> anyhow::Result<Signals> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }
    #[cfg(not(unix))]
    {
        Ok(Signals {})
    }
}

impl Signals {
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
