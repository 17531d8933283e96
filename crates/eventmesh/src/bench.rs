//! `eventmesh bench`: the flags, and running `eventmesh-bench` on a multi-threaded runtime.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use eventmesh_bench::{BenchConfig, BenchError, Limit, Mode, Report, Scenario, Transport};

use crate::cli::ModeArg;

/// The scenario to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScenarioArg {
    /// Publishers only; latency is publish to acknowledgement.
    Pub,
    /// Subscribers only, on --topic (events published by another process).
    Sub,
    /// Publishers and subscribers, end to end; latency is publish to delivery.
    Pubsub,
    /// Requests answered by SYNC subscribers; latency is request to reply.
    RequestReply,
    /// Publishers and a BROADCASTING group: every subscriber gets every event.
    Fanout,
}

/// The client protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportArg {
    /// The EventMesh TCP protocol (default address 127.0.0.1:10000).
    Tcp,
    /// HTTP request codes; subscribers are webhooks served by the bench on 127.0.0.1 (default
    /// address 127.0.0.1:10105).
    Http,
    /// gRPC; subscribers are streams (default address 127.0.0.1:10205).
    Grpc,
}

/// Flags of `bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The scenario.
    #[arg(value_enum)]
    pub(crate) scenario: ScenarioArg,
    /// The client protocol.
    #[arg(long, value_enum, default_value = "tcp")]
    pub(crate) protocol: TransportArg,
    /// The mesh's address for --protocol (default 127.0.0.1:10000 for tcp, 127.0.0.1:10105 for
    /// http, 127.0.0.1:10205 for grpc; http and grpc also take http://HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) addr: Option<String>,
    /// Event data size in bytes (a `k`/`KiB` suffix multiplies by 1024; at least 20).
    #[arg(long, value_name = "BYTES", default_value = "128", value_parser = parse_size)]
    pub(crate) size: usize,
    /// Publish this many events in all, then stop.
    #[arg(long, value_name = "N", conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,
    /// Publish for this long (default 10s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Publisher connections.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) publishers: usize,
    /// Subscriber connections.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) subscribers: usize,
    /// Target rate of all publishers together, in events/s, open loop (latency is measured
    /// from each event's scheduled send time). Default: as fast as the window allows.
    #[arg(long, value_name = "EVENTS_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) rate: Option<u64>,
    /// How the subscribers' group shares the topic.
    #[arg(long, value_enum, default_value = "clustering")]
    pub(crate) mode: ModeArg,
    /// Un-acknowledged publish calls (or requests) per publisher connection.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub(crate) window: usize,
    /// Events per publish call: gRPC batchPublish or HTTP batch publish (code 102). Every event
    /// is counted; a batch's latency is recorded once per event. Not for tcp, request-reply or
    /// sub.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) batch: usize,
    /// The topic (default: a fresh `bench-<random>` topic; `sub` needs one).
    #[arg(long)]
    pub(crate) topic: Option<String>,
    /// How long to wait for deliveries still in flight after publishing ends.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) drain: Duration,
    /// Also run the same workload straight against this broker with its own Rust client, right
    /// after the mesh run, and report both and the ratio (a same-run baseline):
    /// `nats://host:port` (JetStream), `redis://host:port` (a Redis stream),
    /// `amqp://user:pass@host:port[/vhost]` (RabbitMQ), `kafka://host:port[,host:port]` or
    /// `rocketmq://namesrv:port[,namesrv:port][?cluster=NAME]` (builds with the `rocketmq`
    /// feature); not for `sub` or `request-reply`.
    #[arg(long, value_name = "URL")]
    pub(crate) direct: Option<String>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// `1024`, `1k`, `1KiB`, `4kb` (all multiples of 1024 for the suffixes).
fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let (digits, factor) = ["kib", "kb", "k"]
        .iter()
        .find_map(|suffix| lower.strip_suffix(suffix).map(|d| (d.to_owned(), 1024)))
        .unwrap_or((lower, 1));
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size in bytes (e.g. 128, 1KiB)"))?;
    n.checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too large"))
}

impl BenchArgs {
    fn config(&self) -> BenchConfig {
        let scenario = match self.scenario {
            ScenarioArg::Pub => Scenario::Pub,
            ScenarioArg::Sub => Scenario::Sub,
            ScenarioArg::Pubsub => Scenario::PubSub,
            ScenarioArg::RequestReply => Scenario::RequestReply,
            ScenarioArg::Fanout => Scenario::Fanout,
        };
        let mut c = BenchConfig::new(scenario);
        c.transport = match self.protocol {
            TransportArg::Tcp => Transport::Tcp,
            TransportArg::Http => Transport::Http,
            TransportArg::Grpc => Transport::Grpc,
        };
        c.addr = self
            .addr
            .clone()
            .unwrap_or_else(|| c.transport.default_addr().to_owned());
        c.size = self.size;
        c.limit = match (self.count, self.duration) {
            (Some(n), _) => Limit::Count(n),
            (None, Some(d)) => Limit::Duration(d),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        };
        c.publishers = self.publishers;
        c.subscribers = self.subscribers;
        c.rate = self.rate;
        c.mode = match self.mode {
            ModeArg::Clustering => Mode::Clustering,
            ModeArg::Broadcasting => Mode::Broadcasting,
        };
        c.window = self.window;
        c.batch = self.batch;
        c.topic.clone_from(&self.topic);
        c.drain = self.drain;
        c.progress = !self.quiet;
        c
    }
}

/// Runs `eventmesh bench`: exit 0 with the report on stdout; 2 for bad settings; 1 when the
/// mesh cannot be reached or nothing was counted.
pub(crate) fn main(args: &BenchArgs) -> ExitCode {
    let config = args.config();
    if let Err(e) = config.validate() {
        eprintln!("eventmesh bench: {e}");
        return ExitCode::from(crate::EXIT_CONFIG);
    }
    if args.direct.is_some() && matches!(config.scenario, Scenario::Sub | Scenario::RequestReply) {
        eprintln!(
            "eventmesh bench: --direct runs pub, pubsub and fanout, not {}",
            config.scenario.as_str()
        );
        return ExitCode::from(crate::EXIT_CONFIG);
    }
    let log = eventmesh_config::LogConfig {
        level: std::env::var("EVENTMESH_LOG__LEVEL").unwrap_or_else(|_| "warn".to_owned()),
        ..eventmesh_config::LogConfig::default()
    };
    if let Err(e) = eventmesh_runtime::telemetry::init_logging(&log) {
        eprintln!("eventmesh bench: cannot set up logging: {e}");
        return ExitCode::from(crate::EXIT_FAILURE);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("eventmesh-bench")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("eventmesh bench: cannot start the Tokio runtime: {e}");
            return ExitCode::from(crate::EXIT_FAILURE);
        }
    };
    let result = rt.block_on(async {
        let mesh = eventmesh_bench::run(config.clone()).await?;
        let direct = match &args.direct {
            Some(url) => Some(eventmesh_bench::run_direct(config, url).await?),
            None => None,
        };
        Ok::<_, BenchError>((mesh, direct))
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok((report, direct)) => {
            print_reports(args.json, &report, direct.as_ref());
            if report.published == 0 && report.delivered == 0 {
                eprintln!("eventmesh bench: no event was published or delivered");
                return ExitCode::from(crate::EXIT_FAILURE);
            }
            ExitCode::SUCCESS
        }
        Err(e @ (BenchError::Config(_) | BenchError::Unsupported(_))) => {
            eprintln!("eventmesh bench: {e}");
            ExitCode::from(crate::EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("eventmesh bench: {e}");
            ExitCode::from(crate::EXIT_FAILURE)
        }
    }
}

/// The mesh's report, and with `--direct` the broker's and how they compare.
fn print_reports(json: bool, mesh: &Report, direct: Option<&Report>) {
    let Some(direct) = direct else {
        if json {
            println!("{}", mesh.to_json());
        } else {
            println!("{mesh}");
        }
        return;
    };
    let ratio = if direct.events_per_sec > 0.0 {
        mesh.events_per_sec / direct.events_per_sec
    } else {
        0.0
    };
    let added_p99 = mesh.p99_us - direct.p99_us;
    if json {
        let mut v: serde_json::Value =
            serde_json::from_str(&mesh.to_json()).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "direct".into(),
                serde_json::from_str(&direct.to_json()).unwrap_or(serde_json::Value::Null),
            );
            o.insert(
                "direct_settings".into(),
                eventmesh_bench::direct_settings().into(),
            );
            o.insert("throughput_ratio".into(), round3(ratio).into());
            o.insert("added_p99_us".into(), round3(added_p99).into());
        }
        println!("{v}");
    } else {
        println!("== through the mesh\n{mesh}\n");
        println!(
            "== direct ({})\n{direct}\n",
            eventmesh_bench::direct_settings()
        );
        println!("mesh / direct throughput: {ratio:.2}x; p99 added by the mesh: {added_p99:.0} µs");
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn config(args: &[&str]) -> BenchConfig {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .expect("the flags parse");
        cli.bench.config()
    }

    #[test]
    fn each_protocol_has_its_default_address() {
        assert_eq!(config(&["pub"]).addr, "127.0.0.1:10000");
        assert_eq!(
            config(&["pub", "--protocol", "http"]).addr,
            "127.0.0.1:10105"
        );
        let c = config(&["pub", "--protocol", "grpc"]);
        assert_eq!(
            (c.transport, c.addr.as_str()),
            (Transport::Grpc, "127.0.0.1:10205")
        );
        let c = config(&["pub", "--protocol", "grpc", "--addr", "10.0.0.1:1"]);
        assert_eq!(c.addr, "10.0.0.1:1");
    }

    #[test]
    fn batches_default_to_one_and_are_checked() {
        assert_eq!(config(&["pubsub"]).batch, 1);
        let c = config(&["pub", "--protocol", "grpc", "--batch", "100"]);
        assert_eq!(c.batch, 100);
        assert!(c.validate().is_ok());
        let c = config(&["request-reply", "--protocol", "grpc", "--batch", "10"]);
        assert!(matches!(c.validate(), Err(BenchError::Config(_))));
        let c = config(&["pub", "--batch", "10"]);
        assert!(matches!(c.validate(), Err(BenchError::Config(_))));
    }

    #[test]
    fn sizes_take_kib_suffixes() {
        assert_eq!(parse_size("128"), Ok(128));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert!(parse_size("big").is_err());
    }
}
