//! The request router and the shapes of every answer.
//!
//! Paths are matched by prefix, as the Java runtime's `HandlerService` does: the REST paths of
//! section 3.3 under `/eventmesh/`, and every other path (normally `POST /`) goes to the
//! request-code dispatcher, which reads the `code` header.
//!
//! Answers:
//! * request codes: `{"retCode":…,"retMsg":…,"resTime":…}` as `text/plain; charset=UTF-8`,
//!   with the `code` header echoed;
//! * REST and CloudEvents paths: `{"retCode":…,"retMsg":…}` (plus fields of the operation) as
//!   `application/json`, with the `uri` header;
//! * both carry `eventmeshcluster`, `eventmeship`, `eventmeshenv` and `eventmeshidc`.
//!
//! Success is HTTP 200 with retCode 0. A failure has the HTTP status of its error code
//! ([`ErrorCode::http_status`]) and the HEAD retCode ([`ErrorCode::http_ret_code`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use eventmesh_core::{ErrorCode, EventMeshError};
use serde_json::{Map, Value, json};

use super::auth::{self, AuthError};
use super::form::FieldError;
use super::{HttpContext, metrics, request_code, rest};

/// `retCode` of a request whose code is missing or unknown.
pub(crate) const RET_REQUESTCODE_INVALID: i32 = 2;
/// `retCode` of a bad header.
pub(crate) const RET_HEADER_ERR: i32 = 6;
/// `retCode` of a bad body.
pub(crate) const RET_BODY_ERR: i32 = 7;
/// `retCode` of an oversized body.
pub(crate) const RET_BODY_SIZE_ERR: i32 = 8;
/// `retCode` of a refused login.
pub(crate) const RET_ACL_ERR: i32 = 22;

pub(super) fn router(ctx: Arc<HttpContext>) -> Router {
    Router::new().fallback(dispatch).with_state(ctx)
}

/// What failed, with its HTTP status, retCode and message (and the attribute at fault, for
/// CloudEvents).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) ret_code: i32,
    pub(crate) message: String,
    pub(crate) attribute: Option<String>,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, ret_code: i32, message: impl Into<String>) -> Self {
        Failure {
            status,
            ret_code,
            message: message.into(),
            attribute: None,
        }
    }

    pub(crate) fn bad_body(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, RET_BODY_ERR, message)
    }

    pub(crate) fn bad_header(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, RET_HEADER_ERR, message)
    }

    pub(crate) fn with_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.attribute = Some(attribute.into());
        self
    }

    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }
}

impl From<EventMeshError> for Failure {
    fn from(e: EventMeshError) -> Self {
        let status =
            StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Failure::new(status, e.code.http_ret_code(), e.message)
    }
}

impl From<FieldError> for Failure {
    fn from(e: FieldError) -> Self {
        Failure::bad_body(e.to_string())
    }
}

/// The body of a request, at most `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Failure> {
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err(Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    RET_BODY_SIZE_ERR,
                    format!("the request body is over the limit of {limit} bytes"),
                ))
            } else {
                Err(Failure::bad_body(format!(
                    "cannot read the request body: {e}"
                )))
            }
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn instance_headers(ctx: &HttpContext, resp: &mut Response) {
    let h = resp.headers_mut();
    for (name, value) in [
        ("eventmeshcluster", &ctx.options.cluster),
        ("eventmeship", &ctx.options.ip),
        ("eventmeshenv", &ctx.options.env),
        ("eventmeshidc", &ctx.options.idc),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
}

/// A request-code answer.
pub(crate) fn legacy(
    ctx: &HttpContext,
    status: StatusCode,
    code: &str,
    ret_code: i32,
    message: impl Into<String>,
) -> Response {
    let body = json!({"retCode": ret_code, "retMsg": message.into(), "resTime": now_ms()});
    let mut resp = (
        status,
        [(CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body.to_string(),
    )
        .into_response();
    instance_headers(ctx, &mut resp);
    if let Ok(v) = HeaderValue::from_str(code) {
        resp.headers_mut()
            .insert(HeaderName::from_static("code"), v);
    }
    resp
}

/// A request-code failure.
pub(crate) fn legacy_failure(ctx: &HttpContext, code: &str, f: Failure) -> Response {
    legacy(ctx, f.status, code, f.ret_code, f.message)
}

/// A REST answer: `{"retCode":…,"retMsg":…}` plus `extra`.
pub(crate) fn rest_reply(
    ctx: &HttpContext,
    status: StatusCode,
    uri: &str,
    ret_code: i32,
    message: impl Into<String>,
    extra: Map<String, Value>,
) -> Response {
    let mut body = Map::new();
    body.insert("retCode".into(), json!(ret_code));
    body.insert("retMsg".into(), json!(message.into()));
    body.extend(extra);
    let mut resp = (
        status,
        [(CONTENT_TYPE, "application/json")],
        Value::Object(body).to_string(),
    )
        .into_response();
    instance_headers(ctx, &mut resp);
    if let Ok(v) = HeaderValue::from_str(uri) {
        resp.headers_mut().insert(HeaderName::from_static("uri"), v);
    }
    resp
}

/// A REST success with `extra` fields.
pub(crate) fn rest_ok(ctx: &HttpContext, uri: &str, extra: Map<String, Value>) -> Response {
    rest_reply(ctx, StatusCode::OK, uri, 0, "success", extra)
}

/// A REST failure; CloudEvents failures name the attribute at fault (`attribute`) and the error
/// (`error`).
pub(crate) fn rest_failure(ctx: &HttpContext, uri: &str, f: Failure) -> Response {
    let mut extra = Map::new();
    if let Some(a) = f.attribute {
        extra.insert("attribute".into(), json!(a));
    }
    rest_reply(ctx, f.status, uri, f.ret_code, f.message, extra)
}

/// Which handler a path goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Publish,
    PublishBatch,
    BridgePublish,
    SubscribeLocal,
    SubscribeRemote,
    UnsubscribeLocal,
    UnsubscribeRemote,
    TopicCreate,
    TopicDelete,
    SubscriptionQuery,
    UnknownRest,
    RequestCode,
}

impl Route {
    pub(crate) fn of(path: &str) -> Route {
        let path = path.trim_end_matches('/');
        if !path.starts_with("/eventmesh/") && path != "/eventmesh" {
            return Route::RequestCode;
        }
        match path {
            "/eventmesh/publish/batch" => Route::PublishBatch,
            "/eventmesh/publish" => Route::Publish,
            p if p.starts_with("/eventmesh/publish/") => Route::Publish,
            "/eventmesh/bridge/publish" => Route::BridgePublish,
            "/eventmesh/subscribe/local" => Route::SubscribeLocal,
            "/eventmesh/subscribe/remote" => Route::SubscribeRemote,
            "/eventmesh/unsubscribe/local" => Route::UnsubscribeLocal,
            "/eventmesh/unsubscribe/remote" => Route::UnsubscribeRemote,
            "/eventmesh/topic/create" => Route::TopicCreate,
            "/eventmesh/topic/delete" => Route::TopicDelete,
            // The Java runtime's path is misspelled; both are served.
            "/eventmesh/subscrition/query" | "/eventmesh/subscription/query" => {
                Route::SubscriptionQuery
            }
            _ => Route::UnknownRest,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Route::Publish => "publish",
            Route::PublishBatch => "publish_batch",
            Route::BridgePublish => "bridge_publish",
            Route::SubscribeLocal => "subscribe_local",
            Route::SubscribeRemote => "subscribe_remote",
            Route::UnsubscribeLocal => "unsubscribe_local",
            Route::UnsubscribeRemote => "unsubscribe_remote",
            Route::TopicCreate => "topic_create",
            Route::TopicDelete => "topic_delete",
            Route::SubscriptionQuery => "subscription_query",
            Route::UnknownRest => "unknown",
            Route::RequestCode => "request_code",
        }
    }
}

async fn dispatch(State(ctx): State<Arc<HttpContext>>, req: Request) -> Response {
    let route = Route::of(req.uri().path());
    let resp = if ctx.options.auth_enabled()
        && let Err(e) = auth::check(&ctx.options.auth, req.headers())
    {
        tracing::debug!(message = "HTTP request refused by auth.", error = %e, route = route.label());
        unauthorized(&ctx, route, req.uri().path(), &e)
    } else if route == Route::RequestCode {
        request_code::handle(&ctx, req).await
    } else {
        rest::handle(&ctx, route, req).await
    };
    metrics::request(route.label(), resp.status().as_u16());
    resp
}

fn unauthorized(ctx: &HttpContext, route: Route, uri: &str, e: &AuthError) -> Response {
    let f = Failure::new(
        StatusCode::UNAUTHORIZED,
        RET_ACL_ERR,
        format!("{e} ({})", ErrorCode::Unauthenticated.name()),
    );
    let mut resp = if route == Route::RequestCode {
        legacy_failure(ctx, "", f)
    } else {
        rest_failure(ctx, uri, f)
    };
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(AuthError::challenge(ctx.options.auth.mode)),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_prefix() {
        assert_eq!(Route::of("/"), Route::RequestCode);
        assert_eq!(Route::of("/anything"), Route::RequestCode);
        assert_eq!(Route::of("/eventmesh/publish/orders"), Route::Publish);
        assert_eq!(Route::of("/eventmesh/publish/batch"), Route::PublishBatch);
        assert_eq!(
            Route::of("/eventmesh/subscrition/query"),
            Route::SubscriptionQuery
        );
        assert_eq!(
            Route::of("/eventmesh/subscription/query/"),
            Route::SubscriptionQuery
        );
        assert_eq!(Route::of("/eventmesh/nope"), Route::UnknownRest);
    }
}
