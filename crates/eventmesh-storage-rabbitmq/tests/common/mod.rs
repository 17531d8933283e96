//! Starts private RabbitMQ nodes for the tests: `rabbitmq-server` with its own ports, node name,
//! data and log directories and config file (so the machine's own broker and its config are
//! never touched), one node shared by the tests of a binary and a fresh vhost per test.
//!
//! If `rabbitmq-server` is not installed the tests fail with a message saying how to install it
//! (`scripts/install-deps`); they never skip.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use eventmesh_storage::testkit::process::{ChildProcess, Place, Readiness, find_binary, free_port};

static NODES: AtomicUsize = AtomicUsize::new(0);

/// How long a node may take to pass `rabbitmqctl await_startup`.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// A private RabbitMQ node.
pub struct Broker {
    pub node: String,
    pub port: u16,
    env: NodeEnv,
    process: Mutex<ChildProcess>,
}

/// What the node's server and its ctl tool are run with: its name, ports and directory.
#[derive(Clone)]
struct NodeEnv {
    node: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
}

fn tool(name: &str) -> PathBuf {
    find_binary(
        name,
        None,
        &[Place::System, Place::Dir("/usr/lib/rabbitmq/bin")],
        "The RabbitMQ store tests cannot start their broker. Install it with \
         `scripts/install-deps` (apt-get install --no-install-recommends rabbitmq-server).",
    )
}

fn chmod_open(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // The server runs as the `rabbitmq` user; it must be able to write here.
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

impl Broker {
    /// Starts a new node and waits until it is ready.
    pub fn start(label: &str) -> Broker {
        let n = NODES.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let node = format!("em{label}{pid}n{n}@localhost");
        // The server runs as the `rabbitmq` user, which must reach the directory: /tmp rather than
        // a TMPDIR that may sit in root's home.
        let base = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("em-rabbit-{label}-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["", "mnesia", "log"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            chmod_open(&d);
        }
        let env = NodeEnv {
            node: node.clone(),
            port: free_port(),
            dist_port: free_port(),
            dir: dir.clone(),
        };
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.local = 127.0.0.1:{}\nloopback_users.guest = true\n",
                env.port
            ),
        )
        .unwrap_or_else(|e| panic!("writing the broker config: {e}"));
        std::fs::write(dir.join("rabbitmq-env.conf"), "")
            .unwrap_or_else(|e| panic!("writing the broker env file: {e}"));
        std::fs::write(dir.join("enabled_plugins"), "[].\n")
            .unwrap_or_else(|e| panic!("writing the plugins file: {e}"));
        let broker = Broker {
            node,
            port: env.port,
            process: Mutex::new(env.server()),
            env,
        };
        broker.spawn();
        broker.watchdog();
        broker
    }

    fn process(&self) -> MutexGuard<'_, ChildProcess> {
        self.process.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the server process (again, after a kill: same data, ports and name) and waits
    /// until `rabbitmqctl await_startup` passes.
    pub fn spawn(&self) {
        if let Err(e) = self.process().spawn() {
            panic!(
                "RabbitMQ node {} did not start (port {}): {e}",
                self.node, self.port
            );
        }
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        self.env.ctl(args)
    }

    /// Stops the node when this test process is gone, however it ends.
    fn watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             RABBITMQ_CONF_ENV_FILE={dir}/rabbitmq-env.conf {ctl} -n {node} stop >/dev/null 2>&1; \
             sleep 1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.env.dir.display(),
            ctl = tool("rabbitmqctl").display(),
            node = self.node
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// A fresh vhost on this node, with guest allowed; returns its AMQP URL.
    pub fn vhost(&self, label: &str) -> String {
        let vh = format!("{label}-{:08x}", rand::random::<u32>());
        for args in [
            vec!["add_vhost", vh.as_str()],
            vec![
                "set_permissions",
                "-p",
                vh.as_str(),
                "guest",
                ".*",
                ".*",
                ".*",
            ],
        ] {
            let out = self.ctl(&args);
            assert!(
                out.status.success(),
                "rabbitmqctl {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        format!("amqp://guest:guest@127.0.0.1:{}/{vh}", self.port)
    }

    /// SIGKILLs the broker's Erlang VM (a crash, not a shutdown).
    pub fn kill(&self) {
        let pid_file = self
            .env
            .dir
            .join("mnesia")
            .join(format!("{}.pid", self.node));
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", pid_file.display()));
        let status = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -9 {} failed", pid.trim());
        // The server's start script ends with the VM.
        self.process().wait();
    }

    /// Stops the node cleanly.
    pub fn stop(&self) {
        let _ = self.ctl(&["stop"]);
        self.process().wait();
    }
}

impl NodeEnv {
    /// Sets the node's environment on a `rabbitmq-server` or `rabbitmqctl` command.
    fn apply(&self, cmd: &mut Command) {
        let d = |s: &str| self.dir.join(s).display().to_string();
        cmd.env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            );
    }

    /// Runs `rabbitmqctl -n <node> <args>` and returns its output.
    fn ctl(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(tool("rabbitmqctl"));
        self.apply(&mut cmd);
        cmd.arg("-n")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running rabbitmqctl {args:?}: {e}"))
    }

    /// The `rabbitmq-server` process (not started), ready once `rabbitmqctl await_startup`
    /// passes.
    fn server(&self) -> ChildProcess {
        let bin = tool("rabbitmq-server");
        let (env, ctl_env) = (self.clone(), self.clone());
        let ready = Readiness::check("pass `rabbitmqctl await_startup`", move || {
            let out = ctl_env.ctl(&["--timeout", "30", "await_startup"]);
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
            }
        })
        .within(READY_WITHIN)
        .polling_every(Duration::from_millis(500));
        ChildProcess::new(
            format!("rabbitmq-server (node {})", self.node),
            self.dir.join("server.out"),
            move || {
                let mut cmd = Command::new(&bin);
                env.apply(&mut cmd);
                cmd
            },
            ready,
        )
    }
}

/// The node shared by the tests of this binary (started on first use).
pub fn shared() -> &'static Broker {
    static SHARED: OnceLock<Broker> = OnceLock::new();
    SHARED.get_or_init(|| Broker::start("kit"))
}
