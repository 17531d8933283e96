//! The HTTP client of webhook pushes: hyper's pooling client (HTTP/1.1 keep-alive) over a
//! connector that enforces the deny list on every new connection:
//! * the resolver drops resolved addresses in denied networks (so they are never dialled);
//! * the connector refuses an IP-literal host in a denied network, and checks the address of the
//!   socket it actually connected to before handing it over.
//!
//! Pooled connections were checked when they were made; a new DNS answer is checked when the
//! next connection is made.
//!
//! `https` URLs are served over rustls (ring), trusting the system's roots and the certificates
//! of `server.http.webhook.ca_file`; the deny-list check happens before the TLS handshake.

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
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
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

/// A connection to a subscriber: plain TCP or TLS.
pub(crate) enum PushStream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl hyper::rt::Read for PushStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PushStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PushStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for PushStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PushStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PushStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PushStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PushStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PushStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PushStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for PushStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// An HTTP(S) connector refusing denied addresses (see the module docs).
#[derive(Clone)]
pub(crate) struct DenyConnector {
    inner: HttpConnector<DenyResolver>,
    deny: Arc<DenyList>,
    tls: TlsConnector,
}

/// The TLS client config: the system's roots plus `ca_file`'s certificates.
fn tls_connector(ca_file: &str) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(message = "Skipping a system CA certificate.", %error);
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if !ca_file.is_empty() {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read CA certificates from {ca_file}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("{ca_file} holds no CERTIFICATE block"));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("a certificate of {ca_file} is unusable: {e}"))?;
        }
    }
    tracing::debug!(message = "Webhook TLS roots loaded.", system = added, ca_file = %ca_file);
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

impl Service<Uri> for DenyConnector {
    type Response = PushStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let deny = self.deny.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let https = match uri.scheme_str() {
                Some("http") => false,
                Some("https") => true,
                other => {
                    return Err(format!("unsupported URL scheme {other:?}").into());
                }
            };
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
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let io = inner.call(uri).await?;
            let peer = io.inner().peer_addr()?;
            if deny.denies(peer.ip()) {
                metrics::denied();
                return Err(Box::new(Denied(peer.ip())) as BoxError);
            }
            if !https {
                return Ok(PushStream::Plain(io));
            }
            let name =
                ServerName::try_from(host).map_err(|e| format!("not a TLS server name: {e}"))?;
            let stream = tls.connect(name, io.into_inner()).await?;
            Ok(PushStream::Tls(Box::new(TokioIo::new(stream))))
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
    pub(crate) fn new(
        deny: DenyList,
        connect_timeout: Duration,
        ca_file: &str,
    ) -> Result<Self, String> {
        let deny = Arc::new(deny);
        let mut http = HttpConnector::new_with_resolver(DenyResolver { deny: deny.clone() });
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.enforce_http(false);
        let connector = DenyConnector {
            inner: http,
            deny: deny.clone(),
            tls: tls_connector(ca_file)?,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(PushClient { client, deny })
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
            "",
        )
        .unwrap();
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
