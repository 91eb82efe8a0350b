//! The publisher: one task takes broadcasts from a queue, in call order, and
//! sends each run of them as one pipeline of `XADD`s on its own connection.
//! Redis runs a connection's commands in order, so stream order is call
//! order, in every process. Each broadcast learns its fate truthfully:
//! appended (with its id), not appended (Redis refused it, or could not be
//! reached: retrying is safe), or unknown (the pipeline was sent and the
//! reply lost: retrying may duplicate).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::start_line::{lock, SharedStart};
use super::{Connector, OutcomeSink, PublishBatch, BACKOFF, REPLY_TIMEOUT};
use crate::core::backoff::Backoff;
use crate::core::codes::Code;
use crate::core::stream_entry::{StreamId, DATA_FIELD, EVENT_FIELD};
use crate::core::{hex, stop};

/// Broadcasts sent in one pipeline at most, and their bytes.
const PIPELINE_MAX: usize = 1_000;
const PIPELINE_BYTES: usize = 1 << 20;
/// The key through which processes on one Redis share the stop-token key.
const STOP_KEY_NAME: &str = "native-sse:stop-key";

/// What the publisher is asked to do, in order.
pub enum Request {
    Publish {
        data: String,
        event: Option<String>,
    },
    /// Resolves once the publisher is connected, or with why it is not.
    Ready(oneshot::Sender<Result<(), String>>),
}

impl Request {
    /// The bytes it holds while it waits.
    pub fn size(&self) -> usize {
        match self {
            Request::Publish { data, event, .. } => {
                data.len() + event.as_ref().map_or(0, String::len)
            }
            Request::Ready(_) => 0,
        }
    }
}

/// What the publisher works with.
pub struct Publisher {
    pub connector: Connector,
    pub stream: String,
    /// Entries the stream is trimmed to (about); `0` is never.
    pub max_len: u32,
    pub server: String,
    pub start: SharedStart,
    pub outcomes: OutcomeSink,
    /// Given the stop-token key shared through this Redis.
    pub on_shared_key: fn(&[u8]),
    /// Bytes of requests queued and not yet taken into a pipeline.
    pub pending: Arc<AtomicUsize>,
}

/// The publisher's connection, and when it may try to connect again.
struct Link {
    connection: Option<MultiplexedConnection>,
    /// The reader's count of outages when the connection was made: once it
    /// moves, the connection is presumed dead (see `StartLine::outages`).
    outages: u64,
    /// After a failed connect, requests are refused at once until this
    /// instant, rather than each trying again.
    down: Option<(Instant, String)>,
    backoff: Backoff,
}

impl Publisher {
    /// Runs until the queue closes and what it held has gone.
    pub async fn run(self, mut queue: mpsc::UnboundedReceiver<Request>) {
        let mut link = Link {
            connection: None,
            outages: 0,
            down: None,
            backoff: BACKOFF,
        };
        while let Some(batch) = self.next_batch(&mut queue).await {
            let connection = match self.connection(&mut link).await {
                Ok(connection) => connection,
                Err(reason) => {
                    let mut fates = PublishBatch::new(batch.len());
                    fail_all(batch, Code::RedisNotAppended, &reason, &mut fates);
                    self.report(fates);
                    continue;
                }
            };
            let read_before = lock(&self.start).sending();
            let sent = self
                .pipeline(&batch)
                .query_async::<Vec<Value>>(connection)
                .await;
            lock(&self.start).answered();
            let fates = match sent {
                Ok(replies) if replies.len() == batch.len() => {
                    self.fates_of(batch, replies, read_before)
                }
                lost => {
                    // The pipeline went out (in part, at least) and no reply
                    // came back: Redis may have appended any of it.
                    let reason = match lost {
                        Err(err) => err.to_string(),
                        Ok(_) => {
                            "Redis answered a pipeline with the wrong number of replies".to_string()
                        }
                    };
                    link.connection = None;
                    let reason = format!("Lost the reply of Redis at {}: {reason}", self.server);
                    let mut fates = PublishBatch::new(batch.len());
                    fail_all(batch, Code::RedisOutcomeUnknown, &reason, &mut fates);
                    fates
                }
            };
            self.report(fates);
        }
    }

    /// The next run of requests: the first to come, and whatever else is
    /// queued behind it, up to a pipeline's bounds; `None` once the queue
    /// has closed and is empty.
    async fn next_batch(
        &self,
        queue: &mut mpsc::UnboundedReceiver<Request>,
    ) -> Option<Vec<Request>> {
        let first = queue.recv().await?;
        let mut bytes = first.size();
        let mut batch = vec![first];
        while batch.len() < PIPELINE_MAX && bytes < PIPELINE_BYTES {
            match queue.try_recv() {
                Ok(request) => {
                    bytes += request.size();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        self.pending.fetch_sub(bytes, Ordering::Relaxed);
        Some(batch)
    }

    /// The connection, opened if it is not; while a failed connect's
    /// backoff runs, why it failed. A connection made before the reader
    /// last saw Redis fail is not used: nothing has been sent on it since,
    /// so a new one costs a connect, where using a dead one would cost the
    /// next pipeline's outcome (unknown, though nothing was appended).
    async fn connection<'a>(
        &self,
        link: &'a mut Link,
    ) -> Result<&'a mut MultiplexedConnection, String> {
        let outages = lock(&self.start).outages;
        if link.connection.is_some() && link.outages != outages {
            link.connection = None;
            link.down = None;
        }
        if link.connection.is_none() {
            if let Some((until, reason)) = &link.down {
                if Instant::now() < *until {
                    return Err(reason.clone());
                }
            }
            match self.connector.connect(REPLY_TIMEOUT).await {
                Ok(mut fresh) => {
                    self.share_stop_key(&mut fresh).await;
                    link.outages = outages;
                    link.connection = Some(fresh);
                    link.down = None;
                    link.backoff.reset();
                }
                Err(err) => {
                    let reason = format!("Cannot connect to Redis at {}: {err}", self.server);
                    link.down = Some((Instant::now() + link.backoff.next_wait(), reason.clone()));
                    return Err(reason);
                }
            }
        }
        link.connection
            .as_mut()
            .ok_or_else(|| "The connection to Redis was lost".to_string())
    }

    /// One `XADD` per broadcast, one `PING` per readiness check, in order.
    fn pipeline(&self, batch: &[Request]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for request in batch {
            match request {
                Request::Publish { data, event } => {
                    let command = pipe.cmd("XADD").arg(&self.stream);
                    if self.max_len > 0 {
                        command.arg("MAXLEN").arg("~").arg(self.max_len);
                    }
                    command.arg("*").arg(DATA_FIELD).arg(data);
                    if let Some(event) = event {
                        command.arg(EVENT_FIELD).arg(event);
                    }
                }
                Request::Ready(_) => {
                    pipe.cmd("PING");
                }
            }
        }
        pipe
    }

    /// Each request's fate, from its reply. Notes the first id appended
    /// for the reader (see [`super::start_line::StartLine::appended`]).
    fn fates_of(
        &self,
        batch: Vec<Request>,
        replies: Vec<Value>,
        read_before: Option<StreamId>,
    ) -> PublishBatch {
        let first = replies.iter().find_map(|reply| match reply {
            Value::BulkString(id) => std::str::from_utf8(id).ok().and_then(StreamId::parse),
            _ => None,
        });
        if let Some(first) = first {
            lock(&self.start).appended(read_before, first);
        }
        let server = &self.server;
        let mut fates = PublishBatch::new(batch.len());
        for (request, reply) in batch.into_iter().zip(replies) {
            match request {
                Request::Publish { .. } => match reply {
                    Value::BulkString(id) => {
                        fates.appended(String::from_utf8_lossy(&id).into_owned())
                    }
                    Value::SimpleString(id) => fates.appended(id),
                    // Redis refused this command (out of memory, a wrong
                    // type, an ACL): it was not appended.
                    Value::ServerError(err) => fates.failed(
                        Code::RedisNotAppended,
                        format!("Redis at {server} refused it: {err}"),
                    ),
                    other => fates.failed(
                        Code::RedisOutcomeUnknown,
                        format!("Redis at {server} answered XADD with {other:?}"),
                    ),
                },
                Request::Ready(to) => {
                    let _ = to.send(Ok(()));
                }
            }
        }
        fates
    }

    /// Hands the fates of a pipeline's broadcasts over (if it had any).
    fn report(&self, fates: PublishBatch) {
        if !fates.ids.is_empty() {
            (self.outcomes)(fates);
        }
    }

    /// Shares the stop-token key through Redis: the first process to get
    /// here sets it, every process adds it. A Redis that refuses (an ACL)
    /// leaves tokens verifiable by their own process only.
    async fn share_stop_key(&self, connection: &mut MultiplexedConnection) {
        let mut mine = [0u8; 32];
        if !stop::fill_random(&mut mine) {
            // No key to offer: tokens stay verifiable by this process only,
            // as when Redis refuses.
            return;
        }
        let mine = hex::encode(&mine);
        let shared: redis::RedisResult<(Value, Option<Vec<u8>>)> = redis::pipe()
            .cmd("SET")
            .arg(STOP_KEY_NAME)
            .arg(&mine)
            .arg("NX")
            .cmd("GET")
            .arg(STOP_KEY_NAME)
            .query_async(connection)
            .await;
        if let Ok((_, Some(key))) = shared {
            if key.len() >= stop::MIN_KEY_LEN {
                (self.on_shared_key)(&key);
            }
        }
    }
}

/// Every request of a run fails alike: its broadcasts with `code`, its
/// readiness checks with the reason.
fn fail_all(batch: Vec<Request>, code: Code, reason: &str, fates: &mut PublishBatch) {
    for request in batch {
        match request {
            Request::Publish { .. } => fates.failed(code, reason.to_string()),
            Request::Ready(reply) => {
                let _ = reply.send(Err(reason.to_string()));
            }
        }
    }
}
