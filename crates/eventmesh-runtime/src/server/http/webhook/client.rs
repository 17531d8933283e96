//! The HTTP client of webhook pushes: hyper's pooling client (HTTP/1.1 keep-alive) over a
//! connector that enforces the deny list on every new connection:
//! * the resolver drops resolved addresses in denied networks (so they are never dialled);
//! * the connector refuses an IP-literal host in a denied network, and checks the address of the
//!   socket it actually connected to before handing it over.
//!
//! Pooled connections were checked when they were made; a new DNS answer is checked when the
//! next connection is made.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;

use super::deny::DenyList;
use crate::server::http::metrics;

/// The most of a subscriber's answer body read (enough for `{"retCode":…}`).
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection refused by the deny list.
#[derive(Debug, thiserror::Error)]
#[error("{0} is in a denied network (server.http.webhook.deny_networks)")]
pub(crate) struct Denied(pub(crate) IpAddr);

/// Why a push got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// The address is in a denied network.
    #[error("{0}")]
    Denied(String),
    /// Connecting or sending failed.
    #[error("{0}")]
    Connection(String),
    /// The answer could not be read.
    #[error("reading the answer failed: {0}")]
    Answer(String),
}

/// A resolver that drops denied addresses.
#[derive(Clone)]
pub(crate) struct DenyResolver {
    deny: Arc<DenyList>,
}

impl Service<Name> for DenyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let deny = self.deny.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !deny.denies(a.ip()))
                .collect();
            if allowed.is_empty() && !all.is_empty() {
                metrics::denied();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    Denied(all[0].ip()),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// An HTTP connector refusing denied addresses (see the module docs).
#[derive(Clone)]
pub(crate) struct DenyConnector {
    inner: HttpConnector<DenyResolver>,
    deny: Arc<DenyList>,
}

impl Service<Uri> for DenyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let deny = self.deny.clone();
        Box::pin(async move {
            if let Some(host) = uri.host()
                && let Ok(ip) = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                && deny.denies(ip)
            {
                metrics::denied();
                return Err(Box::new(Denied(ip)) as BoxError);
            }
            let io = inner.call(uri).await?;
            let peer = io.inner().peer_addr()?;
            if deny.denies(peer.ip()) {
                metrics::denied();
                return Err(Box::new(Denied(peer.ip())) as BoxError);
            }
            Ok(io)
        })
    }
}

/// Resolves `host:port` and checks it against the deny list: `Err` names the problem.
pub(crate) async fn check_url_host(deny: &DenyList, host: &str, port: u16) -> Result<(), String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| format!("resolving `{host}` timed out"))?
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .collect()
    };
    if addrs.is_empty() {
        return Err(format!("`{host}` resolves to no address"));
    }
    if let Some(a) = addrs.iter().find(|a| deny.denies(a.ip())) {
        metrics::denied();
        return Err(format!(
            "`{host}` resolves to {}, which is in a denied network (server.http.webhook.deny_networks)",
            a.ip()
        ));
    }
    Ok(())
}

/// The client: cheap to clone.
#[derive(Clone)]
pub(crate) struct PushClient {
    client: Client<DenyConnector, Full<Bytes>>,
    pub(crate) deny: Arc<DenyList>,
}

/// A subscriber's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl PushClient {
    pub(crate) fn new(deny: DenyList, connect_timeout: Duration) -> Self {
        let deny = Arc::new(deny);
        let mut http = HttpConnector::new_with_resolver(DenyResolver { deny: deny.clone() });
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.enforce_http(true);
        let connector = DenyConnector {
            inner: http,
            deny: deny.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        PushClient { client, deny }
    }

    /// Sends `req` and reads the answer (at most [`MAX_ANSWER_BYTES`] of its body).
    pub(crate) async fn send(&self, req: Request<Full<Bytes>>) -> Result<Answer, PushError> {
        let resp = self.client.request(req).await.map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(d) = s.downcast_ref::<Denied>() {
                    return PushError::Denied(d.to_string());
                }
                if let Some(io) = s.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::PermissionDenied
                {
                    return PushError::Denied(io.to_string());
                }
                source = s.source();
            }
            PushError::Connection(error_chain(&e))
        })?;
        let (parts, body) = resp.into_parts();
        // Only the first bytes matter; a longer answer is cut, not an error.
        let body = match Limited::new(body, MAX_ANSWER_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Bytes::new(),
            Err(e) => return Err(PushError::Answer(e.to_string())),
        };
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_connector_refuses_denied_addresses_at_connect_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = PushClient::new(
            DenyList::new(&["127.0.0.0/8".to_owned()]),
            Duration::from_secs(2),
        );
        for host in ["127.0.0.1", "localhost"] {
            let req = Request::post(format!("http://{host}:{port}/"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            match client.send(req).await {
                Err(PushError::Denied(msg)) => assert!(msg.contains("127.0.0.1"), "{msg}"),
                Err(PushError::Connection(msg)) if host == "localhost" => {
                    // `localhost` may resolve to ::1 only, which the list does not deny, and
                    // nothing listens there.
                    assert!(!msg.is_empty());
                }
                other => panic!("{host}: {other:?}"),
            }
        }
        let d = DenyList::new(&["127.0.0.0/8".to_owned()]);
        assert!(check_url_host(&d, "127.0.0.1", port).await.is_err());
        assert!(
            check_url_host(&DenyList::default(), "127.0.0.1", port)
                .await
                .is_ok()
        );
    }
}
