//! Cursor positions and deliveries: subscribe/seek positions, nack and lease extension, and
//! the cursor's state.

use eventmesh_storage::{
    AckToken, ConsumerRef, CursorInfo, StartFrom, StorageError, StorageResult,
};

use crate::conn::Inner;
use crate::keys::{self, CONSUMER, StreamId, Token};
use crate::reply::{self, Status};
use crate::scripts;

impl Inner {
    /// Moves (or creates) a cursor's group to a start position.
    pub(crate) async fn position(
        &self,
        c: &ConsumerRef,
        start: StartFrom,
        mode: &'static str,
    ) -> StorageResult<()> {
        let (how, id, before) = start_ids(start);
        let topic = c.topic.to_string();
        let (stream, group, member) = (
            self.keys.stream(&topic),
            keys::group_name(c),
            keys::member_entry(c),
        );
        let status = self
            .script(
                mode,
                &scripts::POSITION_SCRIPT,
                &[&self.keys.topics(), &stream, &self.keys.members()],
                &[
                    topic.as_bytes(),
                    group.as_bytes(),
                    how.as_bytes(),
                    id.as_bytes(),
                    before.as_bytes(),
                    member.as_bytes(),
                    mode.as_bytes(),
                ],
            )
            .await?;
        match status {
            Status::Ok(_) => Ok(()),
            Status::NoTopic => Err(StorageError::UnknownTopic(topic)),
            Status::NoGroup => Err(StorageError::UnknownConsumer(c.to_string())),
        }
    }

    /// Re-lets deliveries: a nack (`ms` = its delay) or a lease extension (`ms` = the lease).
    pub(crate) async fn relet(
        &self,
        op: &'static str,
        c: &ConsumerRef,
        tokens: &[Token],
        ms: u64,
    ) -> StorageResult<()> {
        let (stream, group) = (self.stream(&c.topic), keys::group_name(c));
        let (ms, horizon) = (ms.to_string(), self.horizon_ms().to_string());
        let pairs: Vec<(String, String)> = tokens
            .iter()
            .map(|t| (t.id.to_string(), t.count.to_string()))
            .collect();
        let mut args: Vec<&[u8]> = vec![
            group.as_bytes(),
            CONSUMER.as_bytes(),
            ms.as_bytes(),
            horizon.as_bytes(),
        ];
        for (id, count) in &pairs {
            args.push(id.as_bytes());
            args.push(count.as_bytes());
        }
        match self
            .script(op, &scripts::RELET_SCRIPT, &[&stream], &args)
            .await?
        {
            Status::Ok(_) => Ok(()),
            Status::NoTopic | Status::NoGroup => Err(StorageError::UnknownConsumer(c.to_string())),
        }
    }

    /// A cursor's committed position, pending count and backlog.
    pub(crate) async fn cursor_info(&self, consumer: &ConsumerRef) -> StorageResult<CursorInfo> {
        let s = self;
        s.ensure_open()?;
        let group = keys::group_name(consumer);
        let status = s
            .script(
                "cursor_info",
                &scripts::CURSOR_INFO_SCRIPT,
                &[&s.stream(&consumer.topic)],
                &[group.as_bytes()],
            )
            .await?;
        let rest = match status {
            Status::Ok(rest) if rest.len() >= 4 => rest,
            Status::Ok(_) => {
                return Err(StorageError::Backend(
                    "cursor_info: short script reply".to_owned(),
                ));
            }
            Status::NoTopic | Status::NoGroup => {
                return Err(StorageError::UnknownConsumer(consumer.to_string()));
            }
        };
        const OP: &str = "cursor_info";
        let last = reply::id(OP, &rest[0])?;
        let pending = reply::int(OP, &rest[1])?.max(0) as u64;
        let lowest = reply::opt_id(OP, &rest[2])?;
        let lag = reply::opt_int(OP, &rest[3])?;
        let committed = match lowest {
            Some(id) if pending > 0 => id.to_offset().unwrap_or(u64::MAX),
            _ => last.next_offset(),
        };
        Ok(CursorInfo {
            committed: vec![(0, committed)],
            in_flight: pending,
            backlog: lag.map(|l| l.max(0) as u64 + pending),
        })
    }
}

/// How a start position is passed to the position script: (how, id, the id before it).
pub(crate) fn start_ids(start: StartFrom) -> (&'static str, String, String) {
    match start {
        StartFrom::Earliest => ("id", "0".to_owned(), String::new()),
        StartFrom::Latest => ("id", "$".to_owned(), String::new()),
        StartFrom::Time(t) if t <= 0 => ("id", "0".to_owned(), String::new()),
        // Everything added before millisecond `t` counts as read.
        StartFrom::Time(t) => ("id", format!("{}-{}", t - 1, u64::MAX), String::new()),
        StartFrom::Offset(seq) => {
            let target = StreamId::from_offset(seq);
            let before = target
                .prev()
                .map_or_else(|| "0".to_owned(), |p| p.to_string());
            ("offset", target.to_string(), before)
        }
    }
}

pub(crate) fn decode_tokens(tokens: &[AckToken]) -> StorageResult<Vec<Token>> {
    tokens
        .iter()
        .map(|t| {
            Token::decode(t).ok_or_else(|| {
                StorageError::InvalidToken(format!(
                    "{} bytes that the redis store did not issue",
                    t.0.len()
                ))
            })
        })
        .collect()
}
