use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::*;

fn keys(t: &Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if let Value::Table(sub) = v {
            keys(sub, &key, out);
        } else {
            out.insert(key);
        }
    }
}

fn key_set(t: &Table) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    keys(t, "", &mut s);
    s
}

fn env(vars: &[(&str, &str)]) -> Loader {
    Loader::new().env_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn problems(r: Result<Config, ConfigError>) -> Vec<Problem> {
    r.expect_err("expected the configuration to be refused")
        .problems()
        .to_vec()
}

fn has(ps: &[Problem], key: &str, needle: &str) -> bool {
    ps.iter()
        .any(|p| p.key.as_deref() == Some(key) && p.message.contains(needle))
}

#[test]
fn committed_file_parses_and_equals_the_defaults() {
    let parsed: Config =
        toml::from_str(DEFAULT_TOML).expect("config/eventmesh.toml parses strictly");
    assert_eq!(parsed, Config::default());
    let file: Table = DEFAULT_TOML.parse().expect("valid TOML");
    assert_eq!(
        key_set(&file),
        key_set(&Config::default().to_table()),
        "the file must name every key, and only those"
    );
    assert_eq!(default_table(), file);
    Config::default()
        .validate()
        .expect("the defaults are valid");
}

#[test]
fn every_key_has_a_comment_or_its_section_does() {
    // Each `[section]` block in the committed file carries at least one comment line.
    for block in DEFAULT_TOML.split("\n[").skip(1) {
        assert!(
            block.lines().any(|l| l.trim_start().starts_with('#')) || block.starts_with("server."),
            "uncommented: [{block}"
        );
    }
}

#[test]
fn documented_defaults() {
    let c = Config::default();
    assert_eq!(c.node.data_dir, std::path::PathBuf::from("./data"));
    assert_eq!(
        c.server.tcp.listen,
        "127.0.0.1:10000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.http.listen.port(), 10105);
    assert_eq!(c.server.grpc.listen.port(), 10205);
    assert_eq!(c.server.mqtt.listen.port(), 11883);
    assert!(!c.server.mqtt.enabled && c.server.tcp.enabled);
    assert_eq!(
        c.admin.listen,
        "127.0.0.1:10106".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.limits.max_event_bytes, 4_194_304);
    assert_eq!(c.storage.kind, StorageKind::Embedded);
    assert_eq!(c.storage.embedded.fsync, FsyncPolicy::Batch);
    assert_eq!(
        c.storage.embedded.fsync_interval,
        Duration::from_millis(100)
    );
    assert_eq!(c.delivery.crash_lease, Duration::from_secs(120));
    assert_eq!(c.delivery.dead_letter_suffix, ".DLQ");
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.shutdown.timeout, Duration::from_secs(30));
}

#[test]
fn no_layers_gives_the_defaults() {
    assert_eq!(Loader::new().load().unwrap(), Config::default());
}

#[test]
fn file_overrides_defaults() {
    let c = Loader::new()
        .toml_text(
            "a.toml",
            r#"
            [node]
            id = "n1"
            [server.tcp]
            listen = "0.0.0.0:20000"
            [storage]
            type = "memory"
            [storage.embedded]
            fsync = "interval"
            fsync_interval = "250ms"
            [delivery]
            ack_timeout = "5s"
            crash_lease = "1m"
            [log]
            format = "json"
            "#,
        )
        .load()
        .unwrap();
    assert_eq!(c.node.id, "n1");
    assert_eq!(
        c.server.tcp.listen,
        "0.0.0.0:20000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.http, HttpServerConfig::default());
    assert_eq!(c.storage.kind, StorageKind::Memory);
    assert_eq!(c.storage.embedded.fsync, FsyncPolicy::Interval);
    assert_eq!(
        c.storage.embedded.fsync_interval,
        Duration::from_millis(250)
    );
    assert_eq!(c.delivery.ack_timeout, Duration::from_secs(5));
    assert_eq!(c.delivery.crash_lease, Duration::from_secs(60));
    assert_eq!(c.delivery.max_attempts, 16);
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let loaded = env(&[
        ("EVENTMESH_SERVER__TCP__LISTEN", "127.0.0.1:30000"),
        ("EVENTMESH_STORAGE__EMBEDDED__FSYNC", "never"),
        ("EVENTMESH_DELIVERY__MAX_ATTEMPTS", "5"),
        ("EVENTMESH_SERVER__MQTT__ENABLED", "true"),
        ("EVENTMESH_ADMIN__LISTEN", "127.0.0.1:40000"),
        ("PATH", "/bin"),
        ("EVENTMESH_CONFIG", "ignored-here.toml"),
    ])
    .toml_text(
        "f.toml",
        "[server.tcp]\nlisten = \"127.0.0.1:20000\"\n[delivery]\nmax_attempts = 3\nwindow = 7\n",
    )
    .set(
        "admin.listen",
        "127.0.0.1:0",
        Origin::Flag("--admin-listen".into()),
    )
    .load_with_sources()
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.server.tcp.listen.port(), 30000);
    assert_eq!(c.storage.embedded.fsync, FsyncPolicy::Never);
    assert_eq!(c.delivery.max_attempts, 5);
    assert_eq!(c.delivery.window, 7);
    assert!(c.server.mqtt.enabled);
    assert_eq!(c.admin.listen.port(), 0);
    assert_eq!(
        loaded.sources["delivery.window"],
        Origin::File("f.toml".into())
    );
    assert_eq!(
        loaded.sources["delivery.max_attempts"],
        Origin::Env("EVENTMESH_DELIVERY__MAX_ATTEMPTS".into())
    );
    assert_eq!(
        loaded.sources["admin.listen"],
        Origin::Flag("--admin-listen".into())
    );
    assert!(!loaded.sources.contains_key("node.id"));
}

#[test]
fn env_string_keys_keep_numeric_looking_text() {
    let c = env(&[
        ("EVENTMESH_NODE__ID", "123"),
        ("EVENTMESH_DELIVERY__DEAD_LETTER_SUFFIX", "\"q\""),
    ])
    .load()
    .unwrap();
    assert_eq!(c.node.id, "123");
    assert_eq!(c.delivery.dead_letter_suffix, "\"q\"");
}

#[test]
fn env_durations_and_quoted_scalars() {
    let c = env(&[
        ("EVENTMESH_DELIVERY__ACK_TIMEOUT", "10s"),
        ("EVENTMESH_DELIVERY__WINDOW", "\"9\""),
    ])
    .load();
    // `"9"` parses as a TOML string, which is not an integer.
    let ps = problems(c);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(has(&ps, "delivery.window", "invalid type"), "{ps:?}");
    let c = env(&[("EVENTMESH_DELIVERY__ACK_TIMEOUT", "10s")])
        .load()
        .unwrap();
    assert_eq!(c.delivery.ack_timeout, Duration::from_secs(10));
}

#[test]
fn unknown_keys_in_file_are_all_reported_with_paths_and_suggestions() {
    let ps = problems(
        Loader::new()
            .toml_text(
                "bad.toml",
                r#"
                colour = "red"
                [server.tcp]
                lisen = "127.0.0.1:1"
                [server.tcp.tls]
                cert = "x"
                [storage.embeded]
                fsync = "batch"
                [delivery]
                max_attempt = 3
                "#,
            )
            .load(),
    );
    let origin = Some(Origin::File("bad.toml".into()));
    for (key, needle) in [
        ("colour", "unknown key"),
        ("server.tcp.lisen", "did you mean `server.tcp.listen`"),
        ("server.tcp.tls", "unknown key"),
        ("storage.embeded", "did you mean `storage.embedded`"),
        (
            "delivery.max_attempt",
            "did you mean `delivery.max_attempts`",
        ),
    ] {
        assert!(
            ps.iter().any(|p| p.key.as_deref() == Some(key)
                && p.message.contains(needle)
                && p.origin == origin),
            "{key}: {ps:#?}"
        );
    }
    assert_eq!(ps.len(), 5, "{ps:#?}");
}

#[test]
fn unknown_env_vars_are_refused() {
    let ps = problems(
        env(&[
            ("EVENTMESH_SERVER__TCP__LISEN", "127.0.0.1:1"),
            ("EVENTMESH_NOPE", "1"),
            ("EVENTMESH_SERVER__TCP", "x"),
            ("EVENTMESH_NODE__ID__X", "x"),
            ("EVENTMESH_DELIVERY_MAX_ATTEMPTS", "3"),
        ])
        .load(),
    );
    assert_eq!(ps.len(), 5, "{ps:#?}");
    let by_var = |v: &str| {
        ps.iter()
            .find(|p| p.origin == Some(Origin::Env(v.into())))
            .unwrap_or_else(|| panic!("{v}: {ps:#?}"))
    };
    assert!(
        by_var("EVENTMESH_SERVER__TCP__LISEN")
            .message
            .contains("did you mean EVENTMESH_SERVER__TCP__LISTEN?")
    );
    assert!(by_var("EVENTMESH_NOPE").message.contains("unknown key"));
    assert!(
        by_var("EVENTMESH_SERVER__TCP")
            .message
            .contains("names a section")
    );
    assert!(
        by_var("EVENTMESH_NODE__ID__X")
            .message
            .contains("unknown key")
    );
    assert!(
        by_var("EVENTMESH_DELIVERY_MAX_ATTEMPTS")
            .message
            .contains("did you mean EVENTMESH_DELIVERY__MAX_ATTEMPTS?")
    );
}

#[test]
fn all_problems_at_once_across_layers() {
    let err = env(&[
        ("EVENTMESH_DELIVERY__WINDOW", "0"),
        ("EVENTMESH_STORAGE__EMBEDDED__FSYNC", "sometimes"),
    ])
    .toml_text(
        "all.toml",
        r#"
            unknown = 1
            [server.http]
            listen = "not-an-address"
            [limits]
            max_event_bytes = 0
            max_connections = "many"
            [delivery]
            ack_timeout = "60s"
            crash_lease = "30s"
            backoff_initial = "1 fortnight"
            "#,
    )
    .set(
        "admin.listen",
        "localhost:80",
        Origin::Flag("--admin-listen".into()),
    )
    .load()
    .unwrap_err();
    let ps = err.problems();
    assert!(has(ps, "unknown", "unknown key"));
    assert!(has(ps, "server.http.listen", "socket address"), "{ps:#?}");
    assert!(has(ps, "limits.max_event_bytes", "at least 1"));
    assert!(has(ps, "limits.max_connections", "invalid type"));
    assert!(has(
        ps,
        "delivery.crash_lease",
        "longer than `delivery.ack_timeout`"
    ));
    assert!(has(ps, "delivery.backoff_initial", ""));
    assert!(has(ps, "delivery.window", "at least 1"));
    assert!(
        has(ps, "storage.embedded.fsync", "unknown variant"),
        "{ps:#?}"
    );
    assert!(has(ps, "admin.listen", "socket address"), "{ps:#?}");
    assert_eq!(ps.len(), 9, "{ps:#?}");
    // Attribution.
    let p = ps
        .iter()
        .find(|p| p.key.as_deref() == Some("delivery.window"))
        .unwrap();
    assert_eq!(
        p.origin,
        Some(Origin::Env("EVENTMESH_DELIVERY__WINDOW".into()))
    );
    let p = ps
        .iter()
        .find(|p| p.key.as_deref() == Some("admin.listen"))
        .unwrap();
    assert_eq!(p.origin, Some(Origin::Flag("--admin-listen".into())));
    // One line per problem in the message.
    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration (9 problems):"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 10, "{text}");
    assert!(
        text.contains(
            "environment variable EVENTMESH_DELIVERY__WINDOW: `delivery.window`: must be at least 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("config file all.toml: `unknown`: unknown key"),
        "{text}"
    );
}

#[test]
fn relation_problems_are_attributed_to_whichever_side_was_set() {
    let ps = problems(env(&[("EVENTMESH_DELIVERY__ACK_TIMEOUT", "5m")]).load());
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].key.as_deref(), Some("delivery.crash_lease"));
    assert_eq!(
        ps[0].origin,
        Some(Origin::Env("EVENTMESH_DELIVERY__ACK_TIMEOUT".into()))
    );
}

#[test]
fn semantic_checks() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[node]\nid = \"has space\"",
            "node.id",
            "not a valid node id",
        ),
        ("[node]\nid = \"", "", ""),
        (
            "[node]\nadvertise = \"nohost\"",
            "node.advertise",
            "HOST:PORT",
        ),
        (
            "[node]\ndata_dir = \"\"",
            "node.data_dir",
            "must not be empty",
        ),
        (
            "[server.http.bridge]\ncallback_url = \"ftp://x/y\"",
            "server.http.bridge.callback_url",
            "not an http",
        ),
        (
            "[server.http.bridge]\ncallback_url = \"http:///no-host\"",
            "server.http.bridge.callback_url",
            "not an http",
        ),
        (
            "[server.http.bridge]\ngroup = \"a b\"",
            "server.http.bridge.group",
            "spaces",
        ),
        (
            "[limits]\nmax_event_bytes = 2000000000",
            "limits.max_event_bytes",
            "at most",
        ),
        (
            "[limits]\nmax_connections = 0",
            "limits.max_connections",
            "at least 1",
        ),
        (
            "[storage.embedded]\nsegment_bytes = 10",
            "storage.embedded.segment_bytes",
            "at least 4096",
        ),
        (
            "[storage.embedded]\nfsync = \"interval\"\nfsync_interval = \"0s\"",
            "storage.embedded.fsync_interval",
            "above 0",
        ),
        (
            "[delivery]\nack_timeout = \"0s\"",
            "delivery.ack_timeout",
            "above 0",
        ),
        (
            "[delivery]\nmax_attempts = 0",
            "delivery.max_attempts",
            "at least 1",
        ),
        (
            "[delivery]\nbackoff_initial = \"2m\"",
            "delivery.backoff_initial",
            "must not exceed",
        ),
        (
            "[delivery]\nprefetch = 0",
            "delivery.prefetch",
            "at least 1",
        ),
        (
            "[delivery]\ndead_letter_suffix = \"\"",
            "delivery.dead_letter_suffix",
            "non-empty",
        ),
        (
            "[delivery]\nrequest_ttl = \"0s\"",
            "delivery.request_ttl",
            "above 0",
        ),
        ("[log]\nlevel = \"loud\"", "log.level", "invalid directive"),
        ("[log]\nformat = \"xml\"", "log.format", "unknown variant"),
        (
            "[shutdown]\ntimeout = \"0s\"",
            "shutdown.timeout",
            "above 0",
        ),
        (
            "[server.grpc]\nlisten = \"127.0.0.1:10106\"",
            "server.grpc.listen",
            "already used by `admin.listen`",
        ),
        (
            "[storage]\ntype = \"pulsar\"",
            "storage.type",
            "unknown variant",
        ),
        (
            "[server.tcp]\nlisten = \"127.0.0.1:99999\"",
            "server.tcp.listen",
            "socket address",
        ),
    ];
    for (text, key, needle) in cases {
        let ps = problems(Loader::new().toml_text("c.toml", *text).load());
        if key.is_empty() {
            assert!(ps[0].message.contains("not valid TOML"), "{ps:#?}");
            continue;
        }
        assert!(has(&ps, key, needle), "{text}: {ps:#?}");
        assert_eq!(ps.len(), 1, "{text}: {ps:#?}");
    }
}

#[test]
fn disabled_listeners_and_port_zero_never_clash() {
    let c = Loader::new()
        .toml_text(
            "c.toml",
            "[server.mqtt]\nlisten = \"127.0.0.1:10106\"\n[server.tcp]\nlisten = \"127.0.0.1:0\"\n[server.http]\nlisten = \"127.0.0.1:0\"",
        )
        .load();
    assert!(c.is_ok(), "{c:?}");
}

#[test]
fn a_section_given_a_scalar_and_a_key_given_a_table() {
    let ps = problems(
        Loader::new()
            .toml_text("c.toml", "server = 1\n[node.id]\nx = 1\n")
            .load(),
    );
    assert!(has(&ps, "server", "expected a table"), "{ps:#?}");
    assert!(has(&ps, "node.id", "invalid type"), "{ps:#?}");
    assert_eq!(ps.len(), 2);
}

#[test]
fn unreadable_file_is_named() {
    let ps = problems(Loader::new().file("/nonexistent/eventmesh.toml").load());
    assert_eq!(ps.len(), 1);
    assert_eq!(
        ps[0].origin,
        Some(Origin::File("/nonexistent/eventmesh.toml".into()))
    );
    assert!(ps[0].message.contains("cannot read"));
}

#[test]
fn a_real_file_loads() {
    let dir = std::env::temp_dir().join(format!("eventmesh-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, "[delivery]\nwindow = 5\n").unwrap();
    let c = Loader::new().file(&path).load().unwrap();
    assert_eq!(c.delivery.window, 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_toml_and_env_problems_are_reported_together() {
    let ps = problems(
        env(&[("EVENTMESH_X", "1")])
            .toml_text("c.toml", "[node\n")
            .load(),
    );
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert!(ps[0].message.contains("not valid TOML"));
    assert_eq!(ps[1].origin, Some(Origin::Env("EVENTMESH_X".into())));
}

#[test]
fn validate_reports_everything_for_configs_built_in_code() {
    let mut c = Config::default();
    c.delivery.window = 0;
    c.limits.max_event_bytes = 0;
    let err = c.validate().unwrap_err();
    assert_eq!(err.problems().len(), 2);
    assert!(err.problems().iter().all(|p| p.origin.is_none()));
}

#[test]
fn secrets_are_masked() {
    use storage::mask_url;
    assert_eq!(
        mask_url("nats://user:pw@host:4222/x"),
        "nats://user:***@host:4222/x"
    );
    assert_eq!(mask_url("redis://token@host"), "redis://***@host");
    assert_eq!(mask_url("nats://host:4222/a@b"), "nats://host:4222/a@b");
    assert_eq!(mask_url("plain"), "plain");
    assert_eq!(mask_url(""), "");
    let mut c = Config::default();
    c.storage.url = "amqp://u:secret@h/".into();
    let summary = c.summary();
    let url = summary.iter().find(|(k, _)| k == "storage.url").unwrap();
    assert_eq!(url.1, "\"amqp://u:***@h/\"");
    assert!(!format!("{summary:?}").contains("secret"));
    assert!(
        summary
            .iter()
            .any(|(k, v)| k == "delivery.ack_timeout" && v == "\"30s\"")
    );
    assert_eq!(summary.len(), key_set(&Config::default().to_table()).len());
}

#[test]
fn level_filters() {
    use log::check_level_filter;
    for ok in [
        "info",
        "DEBUG",
        "off",
        "info,eventmesh_runtime=debug",
        "warn,hyper::proto=error",
    ] {
        assert!(check_level_filter(ok).is_ok(), "{ok}");
    }
    for bad in ["", "loud", "info,=debug", "a b=info"] {
        assert!(check_level_filter(bad).is_err(), "{bad}");
    }
}

#[test]
fn nats_storage_section() {
    let c = Loader::new()
        .toml_text(
            "c.toml",
            "[storage]\ntype = \"nats\"\nurl = \"nats://u:pw@h1:4222,h2:4222\"\n[storage.nats]\nreplicas = 3\nstream_prefix = \"mesh-a\"\n",
        )
        .load()
        .unwrap();
    assert_eq!(c.storage.kind, StorageKind::Nats);
    assert_eq!(c.storage.nats.replicas, 3);
    assert_eq!(c.storage.nats.stream_prefix, "mesh-a");
    assert_eq!(c.storage.nats.request_timeout, Duration::from_secs(5));
    assert_eq!(c.storage.nats.member_expiry, Duration::from_secs(24 * 3600));
    assert_eq!(
        storage::mask_url(&c.storage.url),
        "nats://u:***@h1:4222,h2:4222"
    );
    let ps = problems(
        Loader::new()
            .toml_text(
                "c.toml",
                "[storage]\ntype = \"nats\"\nurl = \"redis://h:1\"\n[storage.nats]\nreplicas = 0\nstream_prefix = \"a.b\"\nmember_expiry = \"0s\"\nextra = 1\n",
            )
            .load(),
    );
    assert!(has(&ps, "storage.nats.extra", "unknown"), "{ps:#?}");
    assert!(has(&ps, "storage.url", "nats://"), "{ps:#?}");
    assert!(has(&ps, "storage.nats.replicas", "1 to 5"), "{ps:#?}");
    assert!(has(&ps, "storage.nats.stream_prefix", "letters"), "{ps:#?}");
    assert!(has(&ps, "storage.nats.member_expiry", "above 0"), "{ps:#?}");
}

#[test]
fn kafka_storage_section() {
    let c = Loader::new()
        .toml_text(
            "c.toml",
            "[storage]\ntype = \"kafka\"\nurl = \"kafka://h1:9092,h2:9092\"\n[storage.kafka]\npartitions = 3\ntopic_prefix = \"mesh.\"\nproperties = [\"security.protocol=SASL_SSL\", \"sasl.password=a=b\"]\n",
        )
        .load()
        .unwrap();
    assert_eq!(c.storage.kind, StorageKind::Kafka);
    assert_eq!(c.storage.kafka.partitions, 3);
    assert_eq!(c.storage.kafka.topic_prefix, "mesh.");
    assert_eq!(c.storage.kafka.group_prefix, "eventmesh.");
    assert_eq!(c.storage.kafka.publish_timeout, Duration::from_secs(5));
    assert_eq!(
        c.storage.kafka.property_pairs(),
        [
            ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
            ("sasl.password".to_owned(), "a=b".to_owned())
        ]
    );
    let ps = problems(
        Loader::new()
            .toml_text(
                "c.toml",
                "[storage]\ntype = \"kafka\"\nurl = \"nats://h:1\"\n[storage.kafka]\npartitions = 0\ngroup_prefix = \"a/b\"\npublish_timeout = \"0s\"\nproperties = [\"secret-without-equals\"]\nextra = 1\n",
            )
            .load(),
    );
    assert!(has(&ps, "storage.kafka.extra", "unknown"), "{ps:#?}");
    assert!(has(&ps, "storage.url", "kafka://"), "{ps:#?}");
    assert!(
        has(&ps, "storage.kafka.partitions", "1 to 10000"),
        "{ps:#?}"
    );
    assert!(has(&ps, "storage.kafka.group_prefix", "letters"), "{ps:#?}");
    assert!(
        has(&ps, "storage.kafka.publish_timeout", "100ms"),
        "{ps:#?}"
    );
    assert!(has(&ps, "storage.kafka.properties", "key=value"), "{ps:#?}");
    assert!(
        !format!("{ps:?}").contains("secret-without-equals"),
        "a malformed property is not echoed: {ps:#?}"
    );
}

#[test]
fn redis_storage_section() {
    let c = Loader::new()
        .toml_text(
            "c.toml",
            "[storage]\ntype = \"redis\"\nurl = \"redis://:pw@h:6379/2\"\n[storage.redis]\nkey_prefix = \"mesh-a\"\nfetch_block = \"100ms\"\n",
        )
        .load()
        .unwrap();
    assert_eq!(c.storage.kind, StorageKind::Redis);
    assert_eq!(c.storage.redis.key_prefix, "mesh-a");
    assert_eq!(c.storage.redis.fetch_block, Duration::from_millis(100));
    assert_eq!(c.storage.redis.request_timeout, Duration::from_secs(5));
    assert_eq!(
        c.storage.redis.member_expiry,
        Duration::from_secs(24 * 3600)
    );
    assert_eq!(storage::mask_url(&c.storage.url), "redis://:***@h:6379/2");
    let ps = problems(
        Loader::new()
            .toml_text(
                "c.toml",
                "[storage]\ntype = \"redis\"\nurl = \"nats://h:1\"\n[storage.redis]\nkey_prefix = \"\"\nrequest_timeout = \"0s\"\nfetch_block = \"0s\"\nextra = 1\n",
            )
            .load(),
    );
    assert!(has(&ps, "storage.redis.extra", "unknown"), "{ps:#?}");
    assert!(has(&ps, "storage.url", "redis://"), "{ps:#?}");
    assert!(has(&ps, "storage.redis.key_prefix", "empty"), "{ps:#?}");
    assert!(
        has(&ps, "storage.redis.request_timeout", "above 0"),
        "{ps:#?}"
    );
    assert!(has(&ps, "storage.redis.fetch_block", "above 0"), "{ps:#?}");
}

#[test]
fn rabbitmq_storage_section() {
    let c = Loader::new()
        .toml_text(
            "c.toml",
            "[storage]\ntype = \"rabbitmq\"\nurl = \"amqp://u:pw@h:5672/vh\"\n[storage.rabbitmq]\nprefix = \"mesh-a\"\nretention_age = \"7d\"\n",
        )
        .load()
        .unwrap();
    assert_eq!(c.storage.kind, StorageKind::Rabbitmq);
    assert_eq!(c.storage.rabbitmq.prefix, "mesh-a");
    assert_eq!(
        c.storage.rabbitmq.retention_age,
        Duration::from_secs(7 * 24 * 3600)
    );
    assert_eq!(c.storage.rabbitmq.confirm_timeout, Duration::from_secs(5));
    assert_eq!(storage::mask_url(&c.storage.url), "amqp://u:***@h:5672/vh");
    let ps = problems(
        Loader::new()
            .toml_text(
                "c.toml",
                "[storage]\ntype = \"rabbitmq\"\nurl = \"redis://h:1\"\n[storage.rabbitmq]\nprefix = \"amq.x\"\nprefetch = 0\nconfirm_timeout = \"0s\"\nmember_expiry = \"60d\"\nextra = 1\n",
            )
            .load(),
    );
    assert!(has(&ps, "storage.rabbitmq.extra", "unknown"), "{ps:#?}");
    assert!(has(&ps, "storage.url", "amqp://"), "{ps:#?}");
    assert!(has(&ps, "storage.rabbitmq.prefix", "amq."), "{ps:#?}");
    assert!(
        has(&ps, "storage.rabbitmq.prefetch", "at least 1"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, "storage.rabbitmq.confirm_timeout", "above 0"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, "storage.rabbitmq.member_expiry", "49 days"),
        "{ps:#?}"
    );
}

#[test]
fn rocketmq_storage_section() {
    let c = Loader::new()
        .toml_text(
            "c.toml",
            "[storage]\ntype = \"rocketmq\"\nurl = \"rocketmq://h1:9876,h2:9876\"\n[storage.rocketmq]\nprefix = \"mesh-a\"\n[storage.rocketmq.defibus]\nenabled = true\ncluster = \"dfb\"\n",
        )
        .load()
        .unwrap();
    assert_eq!(c.storage.kind, StorageKind::Rocketmq);
    assert_eq!(c.storage.rocketmq.prefix, "mesh-a");
    assert_eq!(c.storage.rocketmq.cluster, "DefaultCluster");
    assert_eq!(c.storage.rocketmq.request_timeout, Duration::from_secs(3));
    assert!(c.storage.rocketmq.defibus.enabled);
    assert_eq!(c.storage.rocketmq.defibus.cluster, "dfb");
    let ps = problems(
        Loader::new()
            .toml_text(
                "c.toml",
                "[storage]\ntype = \"rocketmq\"\nurl = \"nats://h:1\"\n[storage.rocketmq]\nprefix = \"a_b\"\ncluster = \"\"\nrequest_timeout = \"1ms\"\npull_batch = 0\nmax_message_bytes = 0\nextra = 1\n[storage.rocketmq.defibus]\ncluster = \"a b\"\n",
            )
            .load(),
    );
    assert!(has(&ps, "storage.rocketmq.extra", "unknown"), "{ps:#?}");
    assert!(has(&ps, "storage.url", "rocketmq://"), "{ps:#?}");
    assert!(has(&ps, "storage.rocketmq.prefix", "letters"), "{ps:#?}");
    assert!(has(&ps, "storage.rocketmq.cluster", "letters"), "{ps:#?}");
    assert!(
        has(&ps, "storage.rocketmq.defibus.cluster", "letters"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, "storage.rocketmq.request_timeout", "100ms"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, "storage.rocketmq.pull_batch", "1 to 1024"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, "storage.rocketmq.max_message_bytes", "above 0"),
        "{ps:#?}"
    );
}

#[test]
fn serde_round_trip() {
    let mut c = Config::default();
    c.storage.kind = StorageKind::Memory;
    c.delivery.request_ttl = Duration::from_millis(1500);
    let text = toml::to_string(&c).unwrap();
    let back: Config = toml::from_str(&text).unwrap();
    assert_eq!(back, c);
}
