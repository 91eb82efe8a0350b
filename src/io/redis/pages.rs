//! The link's reading connections: a small pool ([`POOL`]) of multiplexed
//! connections, shared by the follower's reads and resuming clients' pages
//! of every channel on the link. Requests on one connection are pipelined,
//! so many streams are read at once without a connection each; a large
//! resume never delays the publisher, whose connection is its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::Mutex;

use super::follower::newest_of;
use super::replies::entries_of;
use super::{Connector, REPLY_TIMEOUT};
use crate::core::stream_entry::{Page, RawFields, StreamId};

/// Reading connections per link.
pub const POOL: usize = 2;

/// The pool, each connection opened on first use and again after a failure.
pub struct Pages {
    connector: Connector,
    slots: [Mutex<Option<MultiplexedConnection>>; POOL],
    next: AtomicUsize,
}

impl Pages {
    pub fn new(connector: Connector) -> Self {
        Pages {
            connector,
            slots: std::array::from_fn(|_| Mutex::new(None)),
            next: AtomicUsize::new(0),
        }
    }

    /// The next connection of the pool, opened if it is not, and its place.
    async fn connection(&self) -> redis::RedisResult<(usize, MultiplexedConnection)> {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % POOL;
        let mut guard = self.slots[at].lock().await;
        let connection = match guard.as_ref() {
            Some(connection) => connection.clone(),
            None => guard
                .insert(self.connector.connect(REPLY_TIMEOUT).await?)
                .clone(),
        };
        Ok((at, connection))
    }

    /// Sends a command or pipeline on a connection of the pool; a
    /// connection that fails is replaced on its next use.
    async fn query<T: redis::FromRedisValue>(
        &self,
        request: impl Into<Request>,
    ) -> redis::RedisResult<T> {
        let (at, mut connection) = self.connection().await?;
        let result = match request.into() {
            Request::Cmd(cmd) => cmd.query_async(&mut connection).await,
            Request::Pipe(pipe) => pipe.query_async(&mut connection).await,
        };
        if result.is_err() {
            *self.slots[at].lock().await = None;
        }
        result
    }

    /// The stream's newest id (`0-0` when it is empty or missing).
    pub async fn newest(&self, stream: &str) -> redis::RedisResult<StreamId> {
        let reply: Value = self
            .query(
                redis::cmd("XREVRANGE")
                    .arg(stream)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .clone(),
            )
            .await?;
        Ok(newest_of(reply))
    }

    /// Up to `count` entries after `from` (exclusive), and whether `from`
    /// itself is on the server: the read starts at it.
    pub async fn after_checked(
        &self,
        stream: &str,
        from: StreamId,
        count: usize,
    ) -> redis::RedisResult<(Vec<(String, RawFields)>, bool)> {
        let entries: Value = self
            .query(
                redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(from.to_string())
                    .arg("+")
                    .arg("COUNT")
                    .arg(count + 1)
                    .clone(),
            )
            .await?;
        let mut entries = entries_of(entries);
        let present = entries
            .first()
            .is_some_and(|(id, _)| StreamId::parse(id) == Some(from));
        if present {
            entries.remove(0);
        }
        Ok((entries, present))
    }

    /// The ids of `stream` up to `high` (inclusive), the newest `count` of
    /// them.
    pub async fn ids_up_to(
        &self,
        stream: &str,
        high: StreamId,
        count: usize,
    ) -> redis::RedisResult<std::collections::HashSet<StreamId>> {
        let entries: Value = self
            .query(
                redis::cmd("XREVRANGE")
                    .arg(stream)
                    .arg(high.to_string())
                    .arg("-")
                    .arg("COUNT")
                    .arg(count)
                    .clone(),
            )
            .await?;
        Ok(entries_of(entries)
            .iter()
            .filter_map(|(id, _)| StreamId::parse(id))
            .collect())
    }

    /// One page after `after`, and whether it follows on from `after`: the
    /// page is read from `after` itself, which must still be there. Streams
    /// lose entries only from the front (trimming) or all at once (`DEL`),
    /// so while `after` is there nothing after it has gone.
    pub async fn read_after(
        &self,
        stream: &str,
        after: StreamId,
        count: u32,
    ) -> redis::RedisResult<(Page, bool)> {
        let reply: Value = self
            .query(
                redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(after.to_string())
                    .arg("+")
                    .arg("COUNT")
                    .arg(u64::from(count.max(1)) + 1)
                    .clone(),
            )
            .await?;
        let mut entries = entries_of(reply).into_iter().peekable();
        let continuous = entries
            .next_if(|(id, _)| StreamId::parse(id) == Some(after))
            .is_some();
        let mut page = Page::default();
        for (id, fields) in entries {
            page.add(&id, &fields);
        }
        Ok((page, continuous))
    }
}

/// A command or a pipeline.
enum Request {
    Cmd(redis::Cmd),
    Pipe(redis::Pipeline),
}

impl From<redis::Cmd> for Request {
    fn from(cmd: redis::Cmd) -> Self {
        Request::Cmd(cmd)
    }
}

impl From<redis::Pipeline> for Request {
    fn from(pipe: redis::Pipeline) -> Self {
        Request::Pipe(pipe)
    }
}
