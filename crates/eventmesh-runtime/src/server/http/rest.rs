//! The REST paths of section 3.3.
//!
//! | path | body | what |
//! |---|---|---|
//! | `/eventmesh/publish/{topic}` | any | publish (CloudEvents binding, see `cloudevents_binding`) |
//! | `/eventmesh/publish/batch` | CloudEvents | batch publish |
//! | `/eventmesh/subscribe/local` | `{"url","consumerGroup","topic":[{topic,mode,type}]}` | webhook subscribe |
//! | `/eventmesh/unsubscribe/local` | `{"url","consumerGroup","topic":["T"]}` | webhook unsubscribe |
//! | `/eventmesh/topic/create` | `{"topic":"T"}` | create a topic in the store |
//! | `/eventmesh/topic/delete` | `{"topic":"T"}` | delete a topic from the store |
//! | `/eventmesh/subscription/query` (and the Java spelling `subscrition`) | — | list webhook subscriptions |
//! | `/eventmesh/subscribe/remote`, `/eventmesh/unsubscribe/remote` | the local ones' plus `remoteMesh` | subscribe on another mesh (see `bridge`) |
//! | `/eventmesh/bridge/publish` | a form push | an event another mesh pushed, published here |
//!
//! JSON keys are matched case-insensitively.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use eventmesh_core::{ErrorCode, EventMeshError};
use serde_json::{Map, Value, json};

use super::HttpContext;
use super::bridge;
use super::cloudevents_binding;
use super::form::{FieldError, Fields};
use super::request_code::{parse_group, parse_topic, subscribe_request, topic_names};
use super::routes::{Failure, Route, read_body, rest_failure, rest_ok};

pub(super) async fn handle(ctx: &HttpContext, route: Route, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let uri = parts.uri.path().to_owned();
    match route {
        Route::Publish => {
            let path = uri.trim_end_matches('/');
            let topic = path
                .strip_prefix("/eventmesh/publish")
                .map(|t| t.trim_start_matches('/'))
                .unwrap_or("");
            return cloudevents_binding::publish(ctx, parts, body, Some(topic)).await;
        }
        Route::PublishBatch => return cloudevents_binding::publish(ctx, parts, body, None).await,
        _ => {}
    }
    let result = async {
        match route {
            Route::SubscribeLocal => {
                let f = json_fields(ctx, body).await?;
                for (req, filter) in subscribe_request(&f, &parts.headers)? {
                    ctx.webhooks.subscribe_filtered(req, filter).await?;
                }
                Ok(Map::new())
            }
            Route::UnsubscribeLocal => {
                let f = json_fields(ctx, body).await?;
                let url = f.required("url")?.trim().to_owned();
                let group = parse_group(f.required("consumerGroup")?, "consumerGroup")?;
                let topics = topic_names(f.json("topic")?)?;
                ctx.webhooks.unsubscribe(&group, &url, &topics).await?;
                Ok(Map::new())
            }
            Route::TopicCreate | Route::TopicDelete => {
                let f = json_fields(ctx, body).await?;
                let topic = parse_topic(f.required("topic")?, "topic")?;
                let mut extra = Map::new();
                if route == Route::TopicCreate {
                    let created = ctx
                        .store
                        .create_topic(&topic)
                        .await
                        .map_err(|e| Failure::from(EventMeshError::from(e)))?;
                    extra.insert("created".to_owned(), json!(created));
                } else {
                    ctx.store
                        .delete_topic(&topic)
                        .await
                        .map_err(|e| Failure::from(EventMeshError::from(e)))?;
                }
                Ok(extra)
            }
            Route::SubscriptionQuery => {
                let list = ctx.webhooks.list().await;
                let mut extra = Map::new();
                extra.insert(
                    "subscriptions".into(),
                    serde_json::to_value(list).unwrap_or_default(),
                );
                Ok(extra)
            }
            Route::SubscribeRemote => {
                let f = json_fields(ctx, body).await?;
                bridge::subscribe_remote(ctx, &f).await
            }
            Route::UnsubscribeRemote => {
                let f = json_fields(ctx, body).await?;
                bridge::unsubscribe_remote(ctx, &f).await
            }
            Route::BridgePublish => bridge::bridge_publish(ctx, &parts, body).await,
            _ => Err(Failure::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UnknownCommand.http_ret_code(),
                format!("no such path `{uri}` under /eventmesh/"),
            )),
        }
    }
    .await;
    match result {
        Ok(extra) => rest_ok(ctx, &uri, extra),
        Err(f) => {
            tracing::debug!(message = "HTTP request failed.", uri = %uri, status = f.status.as_u16(), error = %f.message, transport = "http");
            rest_failure(ctx, &uri, f)
        }
    }
}

/// The body as a JSON object with case-insensitive keys.
async fn json_fields(ctx: &HttpContext, body: axum::body::Body) -> Result<Fields, Failure> {
    let bytes = read_body(body, ctx.options.max_body_bytes).await?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::bad_body(format!("the body is not JSON: {e}")))?;
    match v {
        Value::Object(obj) => Ok(Fields::from_json_object(&obj)),
        _ => Err(FieldError::invalid("body", "must be a JSON object").into()),
    }
}
