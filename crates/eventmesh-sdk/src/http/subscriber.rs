//! [`HttpSubscriber`]: a small webhook server that subscribes itself, heart-beats and hands
//! every push to a handler.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use eventmesh_core::{CloudEvent, SubscriptionMode, SubscriptionType};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::HttpConfig;
use super::error::HttpError;
use super::publisher::{Transport, content_of, ext_fields};
use super::push::{self, PushedEvent};

/// The largest push accepted.
const MAX_PUSH_BYTES: usize = 64 * 1024 * 1024;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<CloudEvent>, String>> + Send>>;

/// Handles pushed events. `Ok(None)`: done; `Ok(Some(reply))`: done, and for a request the reply
/// is sent back; `Err`: the mesh retries later.
pub trait PushHandler: Send + Sync + 'static {
    /// Handles one event.
    fn handle(&self, event: PushedEvent) -> HandlerFuture;
}

impl<F, Fut, E> PushHandler for F
where
    F: Fn(PushedEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<CloudEvent>, E>> + Send + 'static,
    E: std::fmt::Display,
{
    fn handle(&self, event: PushedEvent) -> HandlerFuture {
        let fut = self(event);
        Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
    }
}

struct Shared {
    transport: Transport,
    handler: Box<dyn PushHandler>,
    url: String,
    topics: Mutex<Vec<String>>,
}

/// A webhook subscriber. Dropping it (or [`HttpSubscriber::close`]) stops its server and
/// heartbeats; the mesh expires its URL when the heartbeats stop.
pub struct HttpSubscriber {
    shared: Arc<Shared>,
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl Drop for HttpSubscriber {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl HttpSubscriber {
    /// Starts the webhook server on `bind` (port 0 picks one) for `config.consumer_group`.
    /// The URL given to the mesh is `http://<bound address>/eventmesh-webhook` (127.0.0.1
    /// when bound to an unspecified address).
    pub async fn start(
        config: HttpConfig,
        bind: SocketAddr,
        handler: impl PushHandler,
    ) -> Result<Self, HttpError> {
        let listener = TcpListener::bind(bind).await.map_err(HttpError::Server)?;
        let addr = listener.local_addr().map_err(HttpError::Server)?;
        let host = if addr.ip().is_unspecified() {
            SocketAddr::new([127, 0, 0, 1].into(), addr.port())
        } else {
            addr
        };
        let url = format!("http://{host}/eventmesh-webhook");
        Self::start_on(config, listener, url, handler)
    }

    /// Starts the webhook server on `listener`, telling the mesh to push to `url`.
    pub fn start_on(
        config: HttpConfig,
        listener: TcpListener,
        url: String,
        handler: impl PushHandler,
    ) -> Result<Self, HttpError> {
        let addr = listener.local_addr().map_err(HttpError::Server)?;
        let heartbeat = config.heartbeat_interval;
        let shared = Arc::new(Shared {
            transport: Transport::new(config)?,
            handler: Box::new(handler),
            url,
            topics: Mutex::new(Vec::new()),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(serve(listener, shared.clone(), cancel.clone()));
        tokio::spawn(heartbeats(shared.clone(), heartbeat, cancel.clone()));
        Ok(HttpSubscriber {
            shared,
            addr,
            cancel,
        })
    }

    /// The URL the mesh pushes to.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The webhook server's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Subscribes to `topic` (code 206); returns once the mesh recorded the subscription.
    pub async fn subscribe(
        &self,
        topic: &str,
        mode: SubscriptionMode,
        ty: SubscriptionType,
    ) -> Result<(), HttpError> {
        self.subscribe_filtered(topic, mode, ty, None).await
    }

    /// [`HttpSubscriber::subscribe`] with a filter: a CloudEvents SQL (CESQL 1.0) expression,
    /// sent as the topic item's `filter`. The mesh pushes only the events it matches; the others
    /// are done for the group without delivery. The filter belongs to the (group, topic): every
    /// URL of the group must subscribe with the same one. A blank filter is none.
    ///
    /// # Errors
    /// As [`HttpSubscriber::subscribe`]; an invalid expression, or one that differs from the
    /// group's, is refused by the mesh with its reason (for a bad expression, the parse error).
    pub async fn subscribe_filtered(
        &self,
        topic: &str,
        mode: SubscriptionMode,
        ty: SubscriptionType,
        filter: Option<&str>,
    ) -> Result<(), HttpError> {
        let t = &self.shared.transport;
        let mut item = json!({"topic": topic, "mode": mode.as_str(), "type": ty.as_str()});
        if let Some(f) = filter.filter(|f| !f.trim().is_empty()) {
            item["filter"] = Value::String(f.to_owned());
        }
        let items = Value::Array(vec![item]);
        let form = vec![
            ("url", self.shared.url.clone()),
            ("consumerGroup", t.config.consumer_group.clone()),
            ("topic", items.to_string()),
        ];
        t.code("206", form, t.config.cloudevents_content, t.config.timeout)
            .await?;
        let mut topics = self.shared.topics.lock().await;
        if !topics.iter().any(|x| x == topic) {
            topics.push(topic.to_owned());
        }
        Ok(())
    }

    /// Unsubscribes from `topic` (code 207).
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), HttpError> {
        let t = &self.shared.transport;
        let form = vec![
            ("url", self.shared.url.clone()),
            ("consumerGroup", t.config.consumer_group.clone()),
            ("topic", json!([topic]).to_string()),
        ];
        t.code("207", form, false, t.config.timeout).await?;
        self.shared.topics.lock().await.retain(|x| x != topic);
        Ok(())
    }

    /// Unsubscribes every topic, then stops the server and the heartbeats.
    pub async fn close(self) {
        let topics = self.shared.topics.lock().await.clone();
        for t in topics {
            if let Err(error) = self.unsubscribe(&t).await {
                tracing::debug!(message = "Failed to unsubscribe on close.", %error, topic = %t);
            }
        }
        self.cancel.cancel();
    }
}

async fn heartbeats(shared: Arc<Shared>, every: std::time::Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let topics = shared.topics.lock().await.clone();
        if topics.is_empty() {
            continue;
        }
        let t = &shared.transport;
        let entities: Vec<Value> = topics
            .iter()
            .map(|topic| json!({"topic": topic, "url": shared.url, "serviceId": "eventmesh-sdk-rust", "instanceId": std::process::id().to_string()}))
            .collect();
        let form = vec![
            ("clientType", "SUB".to_owned()),
            ("consumerGroup", t.config.consumer_group.clone()),
            ("heartbeatEntities", Value::Array(entities).to_string()),
        ];
        if let Err(error) = t.code("203", form, false, t.config.timeout).await {
            tracing::warn!(message = "Heartbeat failed.", %error);
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut conns: JoinSet<()> = JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(error) => {
                    tracing::warn!(message = "Webhook accept failed.", %error);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let cancel = cancel.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(on_push(&shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

fn answer(status: StatusCode, ret_code: i32, msg: &str) -> Response<Full<Bytes>> {
    let body = json!({"retCode": ret_code, "retMsg": msg}).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn on_push(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_PUSH_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return answer(StatusCode::PAYLOAD_TOO_LARGE, 3, "push too large"),
    };
    let pushed = match push::parse(&parts.headers, &body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(message = "Cannot read a push; refusing it.", error = %e);
            return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, &e);
        }
    };
    let request = pushed.is_request
        || (pushed.event.extensions.contains_key("correlationid")
            && pushed.event.extensions.contains_key("replyto"));
    let topic = pushed.topic.clone();
    let original = pushed.event.clone();
    match shared.handler.handle(pushed).await {
        Ok(reply) => {
            if request
                && let Some(reply) = reply
                && let Err(error) = send_reply(shared, &topic, &original, reply).await
            {
                tracing::warn!(message = "Failed to send a reply; the request will be retried.", %error);
                return answer(StatusCode::OK, 2, "reply failed");
            }
            answer(StatusCode::OK, 0, "ok")
        }
        Err(e) => answer(StatusCode::OK, 2, &e),
    }
}

/// Sends `reply` to the request `original` with code 301, echoing its correlation extensions.
async fn send_reply(
    shared: &Shared,
    topic: &str,
    original: &CloudEvent,
    mut reply: CloudEvent,
) -> Result<(), HttpError> {
    for k in ["replyto", "correlationid", "expiresat"] {
        if let Some(v) = original.extension(k) {
            reply.extensions.insert(k.to_owned(), v.clone());
        }
    }
    let t = &shared.transport;
    let cloudevents = t.config.cloudevents_content;
    let form = vec![
        ("origtopic", topic.to_owned()),
        ("bizseqno", original.id.clone()),
        ("uniqueid", crate::random_id()),
        ("content", content_of(&reply, cloudevents)?),
        ("extFields", ext_fields(&reply)),
        ("producergroup", t.config.producer_group.clone()),
    ];
    t.code("301", form, cloudevents, t.config.timeout).await?;
    Ok(())
}
