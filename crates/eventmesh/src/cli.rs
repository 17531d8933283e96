//! Command-line flags. Every flag that sets a config key also reads the key's own
//! `EVENTMESH_*` variable, so a value has one name in the environment whether it comes through
//! the flag or the config loader.

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand, ValueEnum};
use eventmesh_config::{Loader, Origin};

/// EventMesh-rs: an event mesh (publish/subscribe, request-reply) with a durable embedded store.
#[derive(Debug, Parser)]
#[command(name = "eventmesh", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs a mesh node until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Publishes events to a mesh over TCP, HTTP with --http or gRPC with --grpc (one per data
    /// argument, or one per stdin line).
    Pub(PubArgs),
    /// Subscribes to a topic over TCP, HTTP with --http (a webhook) or gRPC with --grpc (a
    /// subscriber stream), and prints each event received, one per line.
    Sub(SubArgs),
    /// Works with CloudEvents SQL (CESQL 1.0) filter expressions.
    Filter {
        #[command(subcommand)]
        action: crate::filter::FilterAction,
    },
    /// Measures throughput and latency of a running mesh (see `eventmesh bench --help`).
    Bench(crate::bench::BenchArgs),
}

/// The body format of events on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProtocolArg {
    /// `eventmeshmessage` (the Java SDK's default; data must be UTF-8).
    Eventmeshmessage,
    /// Structured CloudEvents JSON.
    Cloudevents,
}

/// How a group shares a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Each event goes to one member of the group.
    Clustering,
    /// Each member of the group gets every event.
    Broadcasting,
}

/// Flags shared by `pub` and `sub`.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The mesh's TCP address (with --http: its HTTP address, default http://127.0.0.1:10105).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:10000")]
    pub(crate) server: String,
    /// Use the HTTP protocol instead of TCP (`sub` then serves a webhook).
    #[arg(long, conflicts_with = "grpc")]
    pub(crate) http: bool,
    /// Use the gRPC protocol instead of TCP (`sub` then opens a subscriber stream; --server
    /// defaults to http://127.0.0.1:10205).
    #[arg(long)]
    pub(crate) grpc: bool,
    /// The topic.
    #[arg(long)]
    pub(crate) topic: String,
    /// The body format on the wire.
    #[arg(long, value_enum, default_value = "eventmeshmessage")]
    pub(crate) protocol: ProtocolArg,
    /// Print events as structured CloudEvents JSON instead of their data.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Flags of `pub`.
#[derive(Debug, Args)]
pub(crate) struct PubArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The publisher's group.
    #[arg(long, default_value = "eventmesh-cli-pub")]
    pub(crate) group: String,
    /// Send with BROADCAST_MESSAGE_TO_SERVER.
    #[arg(long, conflicts_with = "request")]
    pub(crate) broadcast: bool,
    /// Send as a request and print the reply of a SYNC subscriber.
    #[arg(long)]
    pub(crate) request: bool,
    /// How long a request waits for its reply.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// Publish each event this many times.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: u64,
    /// The event data (text), or `-` to publish each line of stdin as one event.
    #[arg(value_name = "DATA")]
    pub(crate) data: String,
}

/// Flags of `sub`.
#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The subscriber's group (members of a group share a CLUSTERING topic).
    #[arg(long)]
    pub(crate) group: String,
    /// How the group shares the topic.
    #[arg(long, value_enum, default_value = "clustering")]
    pub(crate) mode: ModeArg,
    /// Exit after this many events (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,
    /// Only receive events matching this CESQL expression (every protocol), e.g.
    /// `type = 'order.created'`; it belongs to the (group, topic).
    #[arg(long, value_name = "EXPRESSION")]
    pub(crate) filter: Option<String>,
    /// With --http: where the webhook server listens (port 0 picks a free port).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    pub(crate) webhook_listen: std::net::SocketAddr,
}

/// Flags of `serve`. Layers: committed defaults < --config file < EVENTMESH_* environment < flags.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A TOML config file with the keys to change (see config/eventmesh.toml for every key).
    #[arg(long, value_name = "PATH", env = "EVENTMESH_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The data directory (node.data_dir).
    #[arg(long, value_name = "DIR", env = "EVENTMESH_NODE__DATA_DIR")]
    pub(crate) data_dir: Option<String>,
    /// The TCP protocol listen address (server.tcp.listen).
    #[arg(long, value_name = "IP:PORT", env = "EVENTMESH_SERVER__TCP__LISTEN")]
    pub(crate) tcp_listen: Option<String>,
    /// The HTTP protocol listen address (server.http.listen).
    #[arg(long, value_name = "IP:PORT", env = "EVENTMESH_SERVER__HTTP__LISTEN")]
    pub(crate) http_listen: Option<String>,
    /// The gRPC protocol listen address (server.grpc.listen).
    #[arg(long, value_name = "IP:PORT", env = "EVENTMESH_SERVER__GRPC__LISTEN")]
    pub(crate) grpc_listen: Option<String>,
    /// The admin API listen address (admin.listen); port 0 picks a free port, which is logged.
    #[arg(long, value_name = "IP:PORT", env = "EVENTMESH_ADMIN__LISTEN")]
    pub(crate) admin_listen: Option<String>,
    /// The event store (storage.type).
    #[arg(
        long,
        value_name = "embedded|memory|nats|redis|rabbitmq|kafka|rocketmq",
        env = "EVENTMESH_STORAGE__TYPE"
    )]
    pub(crate) store: Option<String>,
    /// The broker URL of a broker store (storage.url), e.g. `nats://h1:4222,h2:4222`,
    /// `redis://h:6379`, `amqp://user:pass@h:5672/vhost`, `kafka://h1:9092,h2:9092`,
    /// `rocketmq://namesrv:9876[,h2:9876]`.
    #[arg(long, value_name = "URL", env = "EVENTMESH_STORAGE__URL")]
    pub(crate) store_url: Option<String>,
}

/// (flag id, flag name, config key) of every flag that sets a key.
const KEY_FLAGS: [(&str, &str, &str); 7] = [
    ("data_dir", "--data-dir", "node.data_dir"),
    ("tcp_listen", "--tcp-listen", "server.tcp.listen"),
    ("http_listen", "--http-listen", "server.http.listen"),
    ("grpc_listen", "--grpc-listen", "server.grpc.listen"),
    ("admin_listen", "--admin-listen", "admin.listen"),
    ("store", "--store", "storage.type"),
    ("store_url", "--store-url", "storage.url"),
];

impl ServeArgs {
    /// The loader for these flags: the defaults, the file, the process environment, then each
    /// flag given on the command line. Values clap took from the environment are left to the
    /// environment layer, so problems name the variable, not the flag.
    pub(crate) fn loader(&self, matches: &ArgMatches) -> Loader {
        let mut loader = Loader::new();
        if let Some(path) = &self.config {
            loader = loader.file(path);
        }
        loader = loader.env_from_process();
        for (id, flag, key) in KEY_FLAGS {
            if matches.value_source(id) != Some(ValueSource::CommandLine) {
                continue;
            }
            if let Some(value) = matches.get_one::<String>(id) {
                loader = loader.set(key, value.clone(), Origin::Flag(flag.to_owned()));
            }
        }
        loader
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    fn parse(args: &[&str]) -> (ServeArgs, ArgMatches) {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        let sub = matches.subcommand_matches("serve").unwrap().clone();
        (serve, sub)
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_become_top_layer_keys() {
        let (args, m) = parse(&[
            "eventmesh",
            "serve",
            "--data-dir",
            "/tmp/x",
            "--admin-listen",
            "127.0.0.1:0",
            "--store",
            "memory",
        ]);
        let loaded = args.loader(&m).load_with_sources().unwrap();
        assert_eq!(
            loaded.config.node.data_dir,
            std::path::PathBuf::from("/tmp/x")
        );
        assert_eq!(loaded.config.admin.listen.port(), 0);
        assert_eq!(
            loaded.config.storage.kind,
            eventmesh_config::StorageKind::Memory
        );
        assert_eq!(
            loaded.sources["admin.listen"],
            Origin::Flag("--admin-listen".into())
        );
    }

    #[test]
    fn store_url_flag_sets_the_storage_url() {
        let (args, m) = parse(&[
            "eventmesh",
            "serve",
            "--store",
            "nats",
            "--store-url",
            "nats://127.0.0.1:4333",
        ]);
        let loaded = args.loader(&m).load_with_sources().unwrap();
        assert_eq!(loaded.config.storage.url, "nats://127.0.0.1:4333");
        assert_eq!(
            loaded.sources["storage.url"],
            Origin::Flag("--store-url".into())
        );
    }

    #[test]
    fn bad_flag_values_are_config_problems() {
        let (args, m) = parse(&[
            "eventmesh",
            "serve",
            "--tcp-listen",
            "nope",
            "--store",
            "kafka",
        ]);
        let err = args.loader(&m).load().unwrap_err();
        assert_eq!(err.problems().len(), 2, "{err}");
        assert!(err.to_string().contains("flag --tcp-listen"), "{err}");
        assert!(err.to_string().contains("flag --store"), "{err}");
    }

    #[test]
    fn pub_and_sub_flags() {
        let cli = Cli::try_parse_from([
            "eventmesh",
            "pub",
            "--topic",
            "T",
            "--request",
            "--timeout",
            "2s",
            "--protocol",
            "cloudevents",
            "--count",
            "3",
            "hello",
        ])
        .unwrap();
        let Command::Pub(p) = cli.command else {
            panic!("not pub")
        };
        assert_eq!(p.client.server, "127.0.0.1:10000");
        assert!(p.request && !p.broadcast);
        assert_eq!(p.timeout, Duration::from_secs(2));
        assert_eq!(p.client.protocol, ProtocolArg::Cloudevents);
        assert_eq!((p.count, p.data.as_str()), (3, "hello"));

        assert!(
            Cli::try_parse_from([
                "eventmesh",
                "pub",
                "--topic",
                "T",
                "--broadcast",
                "--request",
                "x"
            ])
            .is_err(),
            "broadcast and request exclude each other"
        );
        assert!(
            Cli::try_parse_from(["eventmesh", "pub", "--topic", "T", "--count", "0", "x"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["eventmesh", "sub", "--topic", "T"]).is_err(),
            "sub needs a group"
        );

        let cli = Cli::try_parse_from([
            "eventmesh",
            "sub",
            "--server",
            "10.0.0.1:10000",
            "--topic",
            "T",
            "--group",
            "G",
            "--mode",
            "broadcasting",
            "--count",
            "5",
            "--json",
        ])
        .unwrap();
        let Command::Sub(s) = cli.command else {
            panic!("not sub")
        };
        assert_eq!(s.client.server, "10.0.0.1:10000");
        assert_eq!(s.mode, ModeArg::Broadcasting);
        assert_eq!(s.count, Some(5));
        assert!(s.client.json);
    }

    #[test]
    fn flag_env_names_are_config_keys() {
        for (_, _, key) in KEY_FLAGS {
            let var = eventmesh_config::env_var_for(key);
            let arg = Cli::command().find_subcommand("serve").and_then(|s| {
                s.get_arguments()
                    .find(|a| a.get_env().is_some_and(|e| e == var.as_str()))
                    .cloned()
            });
            assert!(arg.is_some(), "no flag reads {var}");
        }
    }
}
