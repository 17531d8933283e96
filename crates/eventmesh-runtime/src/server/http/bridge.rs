//! Mesh-to-mesh bridging (section 3.3): `/eventmesh/subscribe/remote`,
//! `/eventmesh/unsubscribe/remote` and `/eventmesh/bridge/publish`.
//!
//! ```text
//!   this mesh (B)                                   remote mesh (A)
//!   POST /eventmesh/subscribe/remote  ──────────▶   POST /eventmesh/subscribe/local
//!     {topic, remoteMesh: A}                          {url: B/eventmesh/bridge/publish,
//!                                                      consumerGroup: <bridge group>, topic}
//!   POST /eventmesh/bridge/publish    ◀──────────   form push of every event of the topic
//!     → published into B's store, pushed on to B's own subscribers
//! ```
//!
//! As in the Java runtime, the request's `url` and `consumerGroup` are replaced: the remote
//! mesh pushes to this node's bridge URL (`server.http.bridge.callback_url`) with this mesh's
//! bridge group (`server.http.bridge.group`, the same on every node of a cluster), so each event
//! is bridged once per cluster. Every topic is subscribed CLUSTERING on the remote mesh for the
//! same reason; this mesh's own subscribers keep their modes. Pushes come as forms with the
//! structured CloudEvent in `content` (`format=form-cloudevents`, `protocoltype: cloudevents`),
//! which keeps every attribute; the legacy form push of a Java mesh is accepted too.
//!
//! `remoteMesh` is the remote mesh's HTTP base URL (`http://host:10105`), or its
//! `/eventmesh/subscribe/local` URL as the Java documentation writes it. Calls to it go through
//! the webhook client: the deny list applies and the push timeout bounds them. A topic that
//! both meshes bridge to each other loops; nothing stops that yet.

use axum::body::Body;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::{Map, Value, json};

use super::HttpContext;
use super::form::{FieldError, Fields};
use super::request_code::{publish_pushed_form, topic_names};
use super::routes::Failure;
use super::webhook::{self, RemoteCallError};

/// `retCode` of a failed call to the remote mesh.
const RET_REMOTE_FAIL: i32 = 1;

const SUBSCRIBE_LOCAL: &str = "/eventmesh/subscribe/local";
const UNSUBSCRIBE_LOCAL: &str = "/eventmesh/unsubscribe/local";

/// `POST /eventmesh/subscribe/remote`.
pub(super) async fn subscribe_remote(
    ctx: &HttpContext,
    f: &Fields,
) -> Result<Map<String, Value>, Failure> {
    // Checked as a local subscribe is, though the remote mesh gets other values.
    f.required("url")?;
    f.required("consumerGroup")?;
    let Some(topics) = f.json("topic")? else {
        return Err(FieldError::Missing("topic").into());
    };
    let items = webhook::topic_items(&topics, f.get("filter"))?;
    let base = remote_base(f.required("remoteMesh")?)?;
    let topic: Vec<Value> = items
        .iter()
        .map(|(item, filter)| {
            let mut o = json!({
                "topic": item.topic.name(),
                "mode": "CLUSTERING",
                "type": item.ty.as_str(),
            });
            if let Some(filter) = filter {
                o["filter"] = json!(filter);
            }
            o
        })
        .collect();
    let body = json!({
        "url": ctx.options.bridge_callback_url,
        "consumerGroup": ctx.options.bridge_group,
        "topic": topic,
        "format": "form-cloudevents",
    });
    call(ctx, &format!("{base}{SUBSCRIBE_LOCAL}"), &body).await?;
    tracing::info!(message = "Subscribed on a remote mesh.", remote = %base, topics = items.len(), group = %ctx.options.bridge_group, callback = %ctx.options.bridge_callback_url);
    Ok(answer(ctx, &base))
}

/// `POST /eventmesh/unsubscribe/remote`.
pub(super) async fn unsubscribe_remote(
    ctx: &HttpContext,
    f: &Fields,
) -> Result<Map<String, Value>, Failure> {
    let topics = topic_names(f.json("topic")?)?;
    let base = remote_base(f.required("remoteMesh")?)?;
    let body = json!({
        "url": ctx.options.bridge_callback_url,
        "consumerGroup": ctx.options.bridge_group,
        "topic": topics.iter().map(|t| t.name()).collect::<Vec<_>>(),
    });
    call(ctx, &format!("{base}{UNSUBSCRIBE_LOCAL}"), &body).await?;
    tracing::info!(message = "Unsubscribed on a remote mesh.", remote = %base, topics = topics.len(), group = %ctx.options.bridge_group);
    Ok(answer(ctx, &base))
}

/// `POST /eventmesh/bridge/publish`: an event a remote mesh pushed, published here.
pub(super) async fn bridge_publish(
    ctx: &HttpContext,
    parts: &Parts,
    body: Body,
) -> Result<Map<String, Value>, Failure> {
    publish_pushed_form(ctx, parts, body).await?;
    Ok(Map::new())
}

fn answer(ctx: &HttpContext, base: &str) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("remoteMesh".into(), json!(base));
    extra.insert("callbackUrl".into(), json!(ctx.options.bridge_callback_url));
    extra.insert("consumerGroup".into(), json!(ctx.options.bridge_group));
    extra
}

/// The remote mesh's base URL: `remoteMesh` without a trailing `/` or a trailing
/// `/eventmesh/subscribe/local` (or `unsubscribe/local`).
fn remote_base(remote: &str) -> Result<String, Failure> {
    let r = remote.trim().trim_end_matches('/');
    let r = r
        .strip_suffix(SUBSCRIBE_LOCAL)
        .or_else(|| r.strip_suffix(UNSUBSCRIBE_LOCAL))
        .unwrap_or(r);
    let rest = r
        .strip_prefix("http://")
        .or_else(|| r.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains('/') => Ok(r.to_owned()),
        _ => Err(FieldError::invalid(
            "remoteMesh",
            format!(
                "`{remote}` is not a mesh's HTTP address; use http://host:port (or its {SUBSCRIBE_LOCAL} URL)"
            ),
        )
        .into()),
    }
}

/// POSTs `body` to the remote mesh; `Ok` when it answered 2xx with retCode 0.
async fn call(ctx: &HttpContext, url: &str, body: &Value) -> Result<(), Failure> {
    let pid = std::process::id().to_string();
    let headers = [
        ("protocoltype", "cloudevents"),
        ("env", ctx.options.env.as_str()),
        ("idc", ctx.options.idc.as_str()),
        ("ip", ctx.options.ip.as_str()),
        ("pid", pid.as_str()),
        ("sys", "0000"),
        ("language", "RUST"),
    ];
    let (status, answer) = ctx
        .webhooks
        .post_json(url, &headers, body.to_string().into_bytes())
        .await
        .map_err(|e| match e {
            RemoteCallError::BadUrl(e) => Failure::from(e),
            RemoteCallError::Denied(why) => Failure::new(
                StatusCode::FORBIDDEN,
                eventmesh_core::ErrorCode::Forbidden.http_ret_code(),
                format!("remoteMesh `{url}` is in a denied network: {why}"),
            ),
            RemoteCallError::Unreachable(why) => Failure::new(
                StatusCode::BAD_GATEWAY,
                RET_REMOTE_FAIL,
                format!("the remote mesh at `{url}` could not be reached: {why}"),
            ),
        })?;
    let parsed: Option<Value> = serde_json::from_slice(&answer).ok();
    let ret_code = parsed
        .as_ref()
        .and_then(|v| v.get("retCode"))
        .and_then(Value::as_i64);
    if status.is_success() && ret_code == Some(0) {
        return Ok(());
    }
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get("retMsg"))
        .and_then(Value::as_str)
        .map_or_else(
            || String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned(),
            str::to_owned,
        );
    Err(Failure::new(
        StatusCode::BAD_GATEWAY,
        RET_REMOTE_FAIL,
        format!(
            "the remote mesh at `{url}` refused: HTTP {} retCode {}: {msg}",
            status.as_u16(),
            ret_code.map_or_else(|| "none".to_owned(), |c| c.to_string())
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_base_takes_a_base_url_or_the_subscribe_url() {
        assert_eq!(remote_base("http://a:10105").unwrap(), "http://a:10105");
        assert_eq!(remote_base(" http://a:10105/ ").unwrap(), "http://a:10105");
        assert_eq!(
            remote_base("https://a:1/eventmesh/subscribe/local").unwrap(),
            "https://a:1"
        );
        for bad in ["a:10105", "http://", "http://a/other/path", "ftp://a"] {
            assert!(remote_base(bad).is_err(), "{bad}");
        }
    }
}
