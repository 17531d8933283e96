//! Reconnecting: the backoff policy, where to reconnect to (the configured address, or the one a
//! `REDIRECT_TO_CLIENT` named), and the reconnect loop of the connection task.
//!
//! A new session re-sends `HELLO_REQUEST`, then one `SUBSCRIBE_REQUEST` with every topic the
//! client had subscribed, then `LISTEN_REQUEST` (the Java SDK re-sends none of these). The loop
//! ends when a session is open, when the client is closed, or when the policy's attempts are
//! used up (the client is then closed).

use std::time::Duration;

use rand::Rng;
use tracing::{info, warn};

use crate::tcp::session::{Session, Task};

/// How the client reconnects after losing its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Delay before the first attempt after a lost connection (a redirect is followed at once).
    pub initial_delay: Duration,
    /// The delay doubles per failed attempt up to this.
    pub max_delay: Duration,
    /// Attempts before giving up and closing the client; `None` = never give up.
    pub max_attempts: Option<u32>,
    /// Whether delays are randomised by up to ±20 % (spreads reconnect storms).
    pub jitter: bool,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_attempts: None,
            jitter: true,
        }
    }
}

impl ReconnectPolicy {
    /// A policy that never reconnects: a lost connection closes the client.
    #[must_use]
    pub fn disabled() -> Self {
        ReconnectPolicy {
            max_attempts: Some(0),
            ..ReconnectPolicy::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_delay < self.initial_delay {
            return Err("reconnect max_delay must not be below initial_delay".into());
        }
        Ok(())
    }

    /// The delay before attempt `attempt` (0-based), without jitter.
    pub(crate) fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.initial_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        if !self.jitter || base.is_zero() {
            return base;
        }
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }
}

/// Where to connect: the configured address, or a redirect target first.
#[derive(Clone, Debug)]
pub(crate) struct Targets {
    configured: String,
    redirect: Option<String>,
    next_is_redirect: bool,
}

impl Targets {
    pub(crate) fn new(configured: String) -> Self {
        Targets {
            configured,
            redirect: None,
            next_is_redirect: false,
        }
    }

    /// The server told us to use `address`: it is tried next.
    pub(crate) fn redirect(&mut self, address: String) {
        self.redirect = Some(address);
        self.next_is_redirect = true;
    }

    /// The next address to try. After a redirect the redirect target is tried first; while it
    /// fails, it alternates with the configured address.
    pub(crate) fn next(&mut self) -> String {
        match &self.redirect {
            Some(r) if self.next_is_redirect => {
                self.next_is_redirect = false;
                r.clone()
            }
            Some(_) => {
                self.next_is_redirect = true;
                self.configured.clone()
            }
            None => self.configured.clone(),
        }
    }

    /// A session opened on `address`: keep using it first.
    pub(crate) fn connected(&mut self, address: &str) {
        self.next_is_redirect = self.redirect.as_deref() == Some(address);
    }
}

/// Why a session ended, which decides how the next one is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reconnect {
    /// After the policy's initial delay.
    AfterDelay,
    /// At once (a redirect).
    Now,
}

impl Task {
    /// Opens a new session, with backoff. `None` when the client was closed meanwhile or the
    /// attempts are used up.
    pub(crate) async fn reconnect(&mut self, how: Reconnect) -> Option<Session> {
        let policy = self.config.reconnect.clone();
        let mut attempt: u32 = 0;
        loop {
            if policy.max_attempts.is_some_and(|max| attempt >= max) {
                warn!(
                    message = "Giving up reconnecting; the client is closed.",
                    attempts = attempt
                );
                return None;
            }
            let delay = if attempt == 0 && how == Reconnect::Now {
                Duration::ZERO
            } else {
                policy.delay(attempt)
            };
            attempt += 1;
            tokio::select! {
                () = self.cancel.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            let address = self.targets.next();
            let cancel = self.cancel.clone();
            let opened = tokio::select! {
                () = cancel.cancelled() => return None,
                opened = self.open_session(&address) => opened,
            };
            match opened {
                Ok(session) => {
                    info!(message = "Reconnected.", address = %address, attempt);
                    return Some(session);
                }
                Err(error) => {
                    warn!(message = "Reconnect attempt failed.", address = %address, attempt, %error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: None,
            jitter: false,
        };
        let delays: Vec<_> = (0..6).map(|a| p.base_delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.base_delay(u32::MAX), Duration::from_secs(1));
        let jittered = ReconnectPolicy {
            jitter: true,
            ..p.clone()
        }
        .delay(0);
        assert!(jittered >= Duration::from_millis(80) && jittered <= Duration::from_millis(120));
    }

    #[test]
    fn redirect_is_tried_first_then_alternates() {
        let mut t = Targets::new("a:1".into());
        assert_eq!(t.next(), "a:1");
        assert_eq!(t.next(), "a:1");
        t.redirect("b:2".into());
        assert_eq!(t.next(), "b:2");
        assert_eq!(t.next(), "a:1");
        assert_eq!(t.next(), "b:2");
        t.connected("b:2");
        assert_eq!(t.next(), "b:2");
    }
}
