//! Scenario 7: topic administration, error kinds, close.

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::Duration;

use bytes::Bytes;

use super::support::{
    CountRule, Ctx, Drain, EventSet, IDLE, OrderRule, drain, expect_quiet, kit_record,
    publish_range, subscribe, unique_group, unique_topic,
};
use super::{KitFailure, StoreFactory};
use crate::{AckToken, ConsumerRef, StartFrom, StorageError, StorageResult};

pub(crate) const NAME: &str = "topic_admin";

const QUIET: Duration = Duration::from_millis(300);

/// Scenario 7: create/list/delete topics, error kinds for unknown topics, cursors and tokens,
/// mismatched topics, health, close. See the [module docs](super) for the exact assertions.
pub async fn topic_admin(factory: &dyn StoreFactory) -> Result<(), KitFailure> {
    let ctx = Ctx::open(factory, NAME).await?;
    let r = ctx.bounded(run(&ctx)).await;
    ctx.finish(r).await
}

/// Requires an error of the kind `want` accepts.
fn expect_err<T: Debug>(
    what: &str,
    r: StorageResult<T>,
    want: fn(&StorageError) -> bool,
    want_name: &str,
) -> Result<(), KitFailure> {
    match r {
        Ok(v) => bail!(NAME, "{what} succeeded ({v:?}); expected Err({want_name})"),
        Err(e) if want(&e) => Ok(()),
        Err(e) => bail!(
            NAME,
            "{what} failed with `{e}` ({e:?}); expected {want_name}"
        ),
    }
}

fn unknown_topic(e: &StorageError) -> bool {
    matches!(e, StorageError::UnknownTopic(_))
}

fn unknown_consumer(e: &StorageError) -> bool {
    matches!(e, StorageError::UnknownConsumer(_))
}

fn unknown_topic_or_consumer(e: &StorageError) -> bool {
    matches!(
        e,
        StorageError::UnknownTopic(_) | StorageError::UnknownConsumer(_)
    )
}

fn invalid_token(e: &StorageError) -> bool {
    matches!(e, StorageError::InvalidToken(_))
}

fn invalid(e: &StorageError) -> bool {
    matches!(e, StorageError::Invalid(_))
}

fn closed(e: &StorageError) -> bool {
    matches!(e, StorageError::Closed)
}

async fn drain_all(
    ctx: &Ctx,
    c: &ConsumerRef,
    set: &EventSet,
    who: &str,
) -> Result<(), KitFailure> {
    let all: HashSet<usize> = (0..set.len()).collect();
    drain(
        NAME,
        &*ctx.store(),
        Drain {
            who,
            consumer: c,
            set,
            expected: &all,
            order: OrderRule::All,
            counts: CountRule::One,
            at_least_two: None,
            idle: IDLE,
            quiet: Some(QUIET),
        },
    )
    .await
    .map(drop)
}

async fn run(ctx: &Ctx) -> Result<(), KitFailure> {
    let store = ctx.store();
    ctx.op("health", store.health().await)?;

    // Create is idempotent and listed.
    let topic = ctx.new_topic("admin").await?;
    let again = ctx.op(
        "create_topic (second time)",
        store.create_topic(&topic).await,
    )?;
    ensure!(
        !again,
        NAME,
        "create_topic({topic}) of an existing topic returned true; expected false"
    );
    let listed = ctx.op("list_topics", store.list_topics().await)?;
    let info = listed.iter().find(|t| t.topic == topic);
    ensure!(
        info.is_some(),
        NAME,
        "list_topics does not show the topic `{topic}` just created"
    );
    ensure!(
        info.is_some_and(|t| t.partitions >= 1),
        NAME,
        "list_topics shows `{topic}` with 0 partitions"
    );

    // Unknown topics.
    let ghost = unique_topic("admin-ghost");
    let ghost_c = ConsumerRef::clustering(ghost.clone(), unique_group("admin"));
    expect_err(
        "publish to an unknown topic",
        store.publish(&ghost, &[kit_record(&ghost, 0, 0)]).await,
        unknown_topic,
        "UnknownTopic",
    )?;
    expect_err(
        "subscribe to an unknown topic",
        store.subscribe(&ghost_c, StartFrom::Earliest).await,
        unknown_topic,
        "UnknownTopic",
    )?;
    expect_err(
        "delete_topic of an unknown topic",
        store.delete_topic(&ghost).await,
        unknown_topic,
        "UnknownTopic",
    )?;

    // Unknown cursors.
    let c = ConsumerRef::clustering(topic.clone(), unique_group("admin"));
    expect_err(
        "fetch for a cursor never subscribed",
        store
            .fetch(&c, 10, Duration::from_secs(1), Duration::ZERO)
            .await,
        unknown_consumer,
        "UnknownConsumer",
    )?;
    expect_err(
        "cursor_info of a cursor never subscribed",
        store.cursor_info(&c).await,
        unknown_consumer,
        "UnknownConsumer",
    )?;

    // Events survive a repeated create.
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;
    let set = EventSet::new(&topic, 1, 3);
    publish_range(NAME, &*store, &set, 0..3, 3).await?;
    let again = ctx.op(
        "create_topic (third time)",
        store.create_topic(&topic).await,
    )?;
    ensure!(
        !again,
        NAME,
        "create_topic({topic}) of an existing topic with events returned true; expected false"
    );

    // A fetch of at most 0 events returns none (or is refused as invalid).
    match store
        .fetch(&c, 0, Duration::from_secs(30), Duration::ZERO)
        .await
    {
        Ok(got) => ensure!(
            got.is_empty(),
            NAME,
            "fetch with max 0 returned {} deliveries",
            got.len()
        ),
        Err(StorageError::Invalid(_)) => {}
        Err(e) => bail!(
            NAME,
            "fetch with max 0 failed with `{e}`; expected no delivery or Invalid"
        ),
    }

    // Malformed tokens.
    let bad = AckToken(Bytes::from_static(
        b"\xff\x00 not a token of any store \x00\xff",
    ));
    expect_err(
        "ack with a malformed token",
        store.ack(&c, std::slice::from_ref(&bad)).await,
        invalid_token,
        "InvalidToken",
    )?;
    expect_err(
        "nack with a malformed token",
        store.nack(&c, &bad, Duration::ZERO).await,
        invalid_token,
        "InvalidToken",
    )?;
    expect_err(
        "extend_lease with a malformed token",
        store
            .extend_lease(&c, std::slice::from_ref(&bad), Duration::from_secs(1))
            .await,
        invalid_token,
        "InvalidToken",
    )?;

    // A record for another topic is refused and not stored.
    let stray = kit_record(&ghost, 0, 1);
    expect_err(
        "publish of a record for another topic",
        store.publish(&topic, std::slice::from_ref(&stray)).await,
        invalid,
        "Invalid",
    )?;
    drain_all(ctx, &c, &set, "the admin cursor").await?;

    // Unsubscribe forgets the position.
    ctx.op("unsubscribe", store.unsubscribe(&c).await)?;
    expect_err(
        "cursor_info after unsubscribe",
        store.cursor_info(&c).await,
        unknown_consumer,
        "UnknownConsumer",
    )?;
    subscribe(NAME, &*store, &c, StartFrom::Earliest).await?;
    drain_all(
        ctx,
        &c,
        &set,
        "the admin cursor subscribed again after unsubscribe",
    )
    .await?;

    // Delete removes the topic, its events and its cursors.
    ctx.op("delete_topic", store.delete_topic(&topic).await)?;
    ctx.forget_topic(&topic);
    let listed = ctx.op("list_topics", store.list_topics().await)?;
    ensure!(
        !listed.iter().any(|t| t.topic == topic),
        NAME,
        "list_topics still shows `{topic}` after delete_topic"
    );
    expect_err(
        "fetch for a cursor of a deleted topic",
        store
            .fetch(&c, 10, Duration::from_secs(1), Duration::ZERO)
            .await,
        unknown_topic_or_consumer,
        "UnknownTopic or UnknownConsumer",
    )?;
    expect_err(
        "publish to a deleted topic",
        store.publish(&topic, &[kit_record(&topic, 0, 9)]).await,
        unknown_topic,
        "UnknownTopic",
    )?;
    let recreated = ctx.op(
        "create_topic after delete",
        store.create_topic(&topic).await,
    )?;
    ensure!(
        recreated,
        NAME,
        "create_topic({topic}) after delete_topic returned false; expected true"
    );
    ctx.remember_topic(&topic);
    expect_err(
        "cursor_info of a cursor of a deleted (and re-created) topic",
        store.cursor_info(&c).await,
        unknown_consumer,
        "UnknownConsumer",
    )?;
    let fresh = ConsumerRef::clustering(topic.clone(), unique_group("admin-fresh"));
    subscribe(NAME, &*store, &fresh, StartFrom::Earliest).await?;
    expect_quiet(
        NAME,
        &*store,
        &fresh,
        QUIET,
        Some(&set),
        "the topic was deleted and re-created empty",
    )
    .await?;
    ctx.op("delete_topic", store.delete_topic(&topic).await)?;
    ctx.forget_topic(&topic);
    ctx.op("health", store.health().await)?;

    // After close, everything fails with Closed.
    ctx.op("close", store.close().await)?;
    ctx.mark_closed();
    expect_err("health after close", store.health().await, closed, "Closed")?;
    expect_err(
        "create_topic after close",
        store.create_topic(&unique_topic("admin-late")).await,
        closed,
        "Closed",
    )?;
    expect_err(
        "list_topics after close",
        store.list_topics().await,
        closed,
        "Closed",
    )?;
    let late = unique_topic("admin-late");
    expect_err(
        "publish after close",
        store.publish(&late, &[kit_record(&late, 0, 0)]).await,
        closed,
        "Closed",
    )?;
    expect_err(
        "subscribe after close",
        store.subscribe(&c, StartFrom::Earliest).await,
        closed,
        "Closed",
    )?;
    expect_err(
        "fetch after close",
        store
            .fetch(
                &fresh,
                10,
                Duration::from_secs(1),
                Duration::from_millis(100),
            )
            .await,
        closed,
        "Closed",
    )?;
    expect_err(
        "cursor_info after close",
        store.cursor_info(&fresh).await,
        closed,
        "Closed",
    )?;
    Ok(())
}
