//! The layered loader: committed defaults → TOML file → `EVENTMESH_*` environment → flags.
//!
//! How it finds *every* problem in one pass:
//! 1. each layer is flattened into leaves (`server.tcp.listen = …`), checked against the defaults
//!    tree, which holds every key: a key missing there is unknown (with a "did you mean");
//! 2. each leaf is type-checked alone, by deserializing the defaults with only that leaf replaced,
//!    so one bad value cannot hide another;
//! 3. the good leaves are merged in layer order and the result is validated semantically, each
//!    finding attributed to the layer that set the key.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use toml::{Table, Value};

use crate::error::{ConfigError, Origin, Problem};
use crate::{Config, validate};

/// The prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "EVENTMESH_";

/// The environment variable naming the config file (the `--config` flag's `env`); the only
/// `EVENTMESH_*` variable that is not a config key.
pub const CONFIG_PATH_ENV: &str = "EVENTMESH_CONFIG";

/// The environment variable name of a dotted key: `server.tcp.listen` →
/// `EVENTMESH_SERVER__TCP__LISTEN`.
pub fn env_var_for(key: &str) -> String {
    let mut s = String::from(ENV_PREFIX);
    s.push_str(
        &key.split('.')
            .map(str::to_ascii_uppercase)
            .collect::<Vec<_>>()
            .join("__"),
    );
    s
}

/// The loaded configuration and where each non-default key came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The effective, validated configuration.
    pub config: Config,
    /// The dotted keys set by a layer above the defaults, with the last layer that set each.
    pub sources: BTreeMap<String, Origin>,
}

enum Layer {
    File(PathBuf),
    Text(PathBuf, String),
}

/// Builds a [`Config`] from the layers given. See the module docs.
#[derive(Default)]
pub struct Loader {
    files: Vec<Layer>,
    env: Vec<(OsString, OsString)>,
    overrides: Vec<(String, String, Origin)>,
}

struct Leaf {
    path: Vec<String>,
    value: Value,
    origin: Origin,
}

impl Loader {
    /// A loader with only the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a TOML file layer (`--config PATH`).
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(Layer::File(path.into()));
        self
    }

    /// Adds a TOML text layer, reported as the file `name` (tests, embedding).
    pub fn toml_text(mut self, name: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.push(Layer::Text(name.into(), text.into()));
        self
    }

    /// Adds the process's `EVENTMESH_*` environment variables.
    pub fn env_from_process(self) -> Self {
        self.env_vars(std::env::vars_os())
    }

    /// Adds environment variables; names without the `EVENTMESH_` prefix are ignored.
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets a dotted key from a flag (the top layer). `value` is read like an environment value.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>, origin: Origin) -> Self {
        self.overrides.push((key.into(), value.into(), origin));
        self
    }

    /// Loads and validates, reporting every problem at once.
    pub fn load(&self) -> Result<Config, ConfigError> {
        self.load_with_sources().map(|l| l.config)
    }

    /// Like [`Loader::load`], also telling which layer set each key.
    pub fn load_with_sources(&self) -> Result<Loaded, ConfigError> {
        let defaults = crate::default_table();
        let mut problems = Vec::new();
        let mut leaves = Vec::new();

        for layer in &self.files {
            let (path, text) = match layer {
                Layer::File(path) => match std::fs::read_to_string(path) {
                    Ok(t) => (path, t),
                    Err(error) => {
                        problems.push(Problem::new(
                            Some(Origin::File(path.clone())),
                            None,
                            format!("cannot read: {error}"),
                        ));
                        continue;
                    }
                },
                Layer::Text(path, text) => (path, text.clone()),
            };
            let origin = Origin::File(path.clone());
            match text.parse::<Table>() {
                Ok(table) => flatten(
                    &defaults,
                    table,
                    &mut Vec::new(),
                    &origin,
                    &mut leaves,
                    &mut problems,
                ),
                Err(error) => problems.push(Problem::new(
                    Some(origin),
                    None,
                    format!("not valid TOML: {}", error.to_string().trim_end()),
                )),
            }
        }

        let mut env: Vec<(String, String)> = Vec::new();
        for (name, value) in &self.env {
            let lossy = name.to_string_lossy();
            if !lossy.starts_with(ENV_PREFIX) {
                continue;
            }
            match (name.to_str(), value.to_str()) {
                (Some(n), Some(v)) => env.push((n.to_owned(), v.to_owned())),
                _ => problems.push(Problem::new(
                    Some(Origin::Env(lossy.into_owned())),
                    None,
                    "is not valid UTF-8",
                )),
            }
        }
        env.sort();
        for (name, raw) in env {
            if name == CONFIG_PATH_ENV {
                continue;
            }
            let path: Vec<String> = name[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect();
            let before = problems.len();
            leaf_from_str(
                &defaults,
                path,
                &raw,
                Origin::Env(name.clone()),
                &mut leaves,
                &mut problems,
            );
            if let Some(p) = problems.get_mut(before) {
                // Name the variable the user probably meant (a single `_` between levels, a typo).
                if p.message.starts_with("unknown key")
                    && let Some(var) = closest_env_var(&defaults, &name)
                {
                    p.message = format!("unknown key (did you mean {var}?)");
                }
            }
        }

        for (key, raw, origin) in &self.overrides {
            let path = key.split('.').map(str::to_owned).collect();
            leaf_from_str(
                &defaults,
                path,
                raw,
                origin.clone(),
                &mut leaves,
                &mut problems,
            );
        }

        // Type-check each leaf alone; merge the good ones in layer order.
        let mut merged = defaults.clone();
        let mut sources = BTreeMap::new();
        for leaf in leaves {
            let mut candidate = defaults.clone();
            set_path(&mut candidate, &leaf.path, leaf.value.clone());
            let key = leaf.path.join(".");
            match Value::Table(candidate).try_into::<Config>() {
                Ok(_) => {
                    set_path(&mut merged, &leaf.path, leaf.value);
                    sources.insert(key, leaf.origin);
                }
                Err(error) => problems.push(Problem::new(
                    Some(leaf.origin),
                    Some(key),
                    describe_type_error(error.message(), &leaf.value),
                )),
            }
        }

        let config = match Value::Table(merged).try_into::<Config>() {
            Ok(c) => c,
            Err(error) => {
                // Not reachable when every leaf passed alone; reported rather than assumed.
                problems.push(Problem::new(None, None, error.message().to_owned()));
                return Err(ConfigError::new(problems));
            }
        };

        for issue in validate::check(&config) {
            let origin = sources
                .get(issue.key)
                .or_else(|| issue.related.and_then(|r| sources.get(r)))
                .cloned()
                .unwrap_or(Origin::Default);
            problems.push(Problem::new(
                Some(origin),
                Some(issue.key.to_owned()),
                issue.message,
            ));
        }

        if problems.is_empty() {
            Ok(Loaded { config, sources })
        } else {
            Err(ConfigError::new(problems))
        }
    }
}

/// A deserialization message with the offending value and, for addresses, the expected form.
fn describe_type_error(message: &str, value: &Value) -> String {
    let shown = value.to_string();
    let mut out = message.trim_end().to_owned();
    let already = match value {
        Value::String(s) => !s.is_empty() && out.contains(s.as_str()),
        other => out.contains(&other.to_string()),
    };
    if !already {
        out.push_str(&format!(" (got {shown})"));
    }
    if out.contains("socket address") {
        out.push_str(
            "; expected IP:PORT such as 127.0.0.1:10000 (host names are not accepted here)",
        );
    }
    out
}

fn type_name(v: &Value) -> &'static str {
    v.type_str()
}

/// Walks a user table against the defaults, collecting leaves and unknown-key problems.
fn flatten(
    defaults: &Table,
    user: Table,
    prefix: &mut Vec<String>,
    origin: &Origin,
    leaves: &mut Vec<Leaf>,
    problems: &mut Vec<Problem>,
) {
    for (k, v) in user {
        prefix.push(k.clone());
        match defaults.get(&k) {
            None => problems.push(unknown_key(defaults, prefix, origin.clone())),
            Some(Value::Table(section)) => match v {
                Value::Table(t) => flatten(section, t, prefix, origin, leaves, problems),
                other => problems.push(Problem::new(
                    Some(origin.clone()),
                    Some(prefix.join(".")),
                    format!(
                        "is a section: expected a table, found a {}",
                        type_name(&other)
                    ),
                )),
            },
            Some(_) => leaves.push(Leaf {
                path: prefix.clone(),
                value: v,
                origin: origin.clone(),
            }),
        }
        prefix.pop();
    }
}

/// A leaf from an environment variable or a flag: the key must name a value in the defaults;
/// the text is taken as a string where the default is a string, else as a TOML scalar when it
/// parses as one (else as a string, which the type check then refuses).
fn leaf_from_str(
    defaults: &Table,
    path: Vec<String>,
    raw: &str,
    origin: Origin,
    leaves: &mut Vec<Leaf>,
    problems: &mut Vec<Problem>,
) {
    let mut table = defaults;
    for (i, seg) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match table.get(seg) {
            None => {
                problems.push(unknown_key(table, &path[..=i], origin));
                return;
            }
            Some(Value::Table(t)) if !last => table = t,
            Some(Value::Table(_)) => {
                problems.push(Problem::new(
                    Some(origin),
                    Some(path.join(".")),
                    "names a section, not a key (add `__KEY` to the variable name)",
                ));
                return;
            }
            Some(_) if !last => {
                problems.push(unknown_key(table, &path[..=i + 1], origin));
                return;
            }
            Some(default) => {
                let value = coerce(raw, default);
                leaves.push(Leaf {
                    path,
                    value,
                    origin,
                });
                return;
            }
        }
    }
}

fn coerce(raw: &str, default: &Value) -> Value {
    if default.is_str() {
        return Value::String(raw.to_owned());
    }
    let parsed = format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .filter(|t| t.len() == 1)
        .and_then(|mut t| t.remove("v"));
    match parsed {
        Some(
            v @ (Value::Integer(_)
            | Value::Float(_)
            | Value::Boolean(_)
            | Value::String(_)
            | Value::Datetime(_)),
        ) => v,
        _ => Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut Table, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("a leaf path is never empty");
    let mut t = table;
    for seg in parents {
        t = t
            .entry(seg.clone())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .expect("parents of a leaf are tables in the defaults");
    }
    t.insert(last.clone(), value);
}

fn unknown_key(siblings: &Table, path: &[String], origin: Origin) -> Problem {
    let key = path.join(".");
    let name = path.last().map(String::as_str).unwrap_or_default();
    let mut message = "unknown key".to_owned();
    if let Some(best) = closest(name, siblings.keys().map(String::as_str)) {
        let mut suggestion: Vec<&str> = path[..path.len() - 1].iter().map(String::as_str).collect();
        suggestion.push(best);
        message.push_str(&format!(" (did you mean `{}`?)", suggestion.join(".")));
    }
    Problem::new(Some(origin), Some(key), message)
}

/// The known variable closest to `name`, comparing names without underscores.
fn closest_env_var(defaults: &Table, name: &str) -> Option<String> {
    fn leaves(t: &Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Table(sub) => leaves(sub, &key, out),
                _ => out.push(env_var_for(&key)),
            }
        }
    }
    let mut vars = Vec::new();
    leaves(defaults, "", &mut vars);
    let squash = |s: &str| s.replace('_', "");
    let target = squash(name);
    vars.into_iter()
        .map(|v| (edit_distance(&target, &squash(&v)), v))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names() {
        assert_eq!(
            env_var_for("server.tcp.listen"),
            "EVENTMESH_SERVER__TCP__LISTEN"
        );
        assert_eq!(
            env_var_for("delivery.max_attempts"),
            "EVENTMESH_DELIVERY__MAX_ATTEMPTS"
        );
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("lisen", "listen"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("lisen", ["enabled", "listen"].into_iter()),
            Some("listen")
        );
        assert_eq!(closest("zzzzzzzz", ["enabled", "listen"].into_iter()), None);
    }

    #[test]
    fn coercion() {
        assert_eq!(coerce("5", &Value::Integer(1)), Value::Integer(5));
        assert_eq!(coerce("true", &Value::Boolean(false)), Value::Boolean(true));
        assert_eq!(
            coerce("abc", &Value::Integer(1)),
            Value::String("abc".into())
        );
        assert_eq!(
            coerce("1\nx = 2", &Value::Integer(1)),
            Value::String("1\nx = 2".into())
        );
        assert_eq!(
            coerce("[1]", &Value::Integer(1)),
            Value::String("[1]".into())
        );
        // A string default keeps the raw text, even when it looks like a number.
        assert_eq!(
            coerce("123", &Value::String(String::new())),
            Value::String("123".into())
        );
    }
}
