//! Command-line flags. Every flag that sets a config key also reads the key's own
//! `EVENTMESH_*` variable, so a value has one name in the environment whether it comes through
//! the flag or the config loader.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand};
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
    #[arg(long, value_name = "embedded|memory", env = "EVENTMESH_STORAGE__TYPE")]
    pub(crate) store: Option<String>,
}

/// (flag id, flag name, config key) of every flag that sets a key.
const KEY_FLAGS: [(&str, &str, &str); 6] = [
    ("data_dir", "--data-dir", "node.data_dir"),
    ("tcp_listen", "--tcp-listen", "server.tcp.listen"),
    ("http_listen", "--http-listen", "server.http.listen"),
    ("grpc_listen", "--grpc-listen", "server.grpc.listen"),
    ("admin_listen", "--admin-listen", "admin.listen"),
    ("store", "--store", "storage.type"),
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
        let Command::Serve(serve) = cli.command;
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
