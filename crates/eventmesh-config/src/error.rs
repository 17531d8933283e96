//! Configuration errors: every problem found, each with the key and the layer it came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The committed defaults (`config/eventmesh.toml`).
    Default,
    /// A TOML file (`--config PATH`).
    File(PathBuf),
    /// An `EVENTMESH_*` environment variable, by name.
    Env(String),
    /// A command-line flag, by name (`--tcp-listen`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("defaults"),
            Origin::File(p) => write!(f, "config file {}", p.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// One problem with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The layer the offending value came from, when known.
    pub origin: Option<Origin>,
    /// The dotted key (`server.tcp.listen`), when the problem is about one.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(
        origin: Option<Origin>,
        key: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            origin,
            key,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The configuration is invalid; [`ConfigError::problems`] lists everything found, not just the
/// first problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    pub(crate) fn new(problems: Vec<Problem>) -> Self {
        debug_assert!(!problems.is_empty());
        ConfigError { problems }
    }

    /// Every problem found, in the order of the layers (file, env, flags), then validation.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
