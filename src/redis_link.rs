//! A channel's link to a Redis Stream, so that one channel spans processes
//! and hosts: `publish` appends an event with XADD (trimmed with an
//! approximate MAXLEN), a reader task on tokio follows the stream with
//! XREAD and hands what it reads to JavaScript in batches, through a weak
//! thread-safe function, and `range_after` reads what a resuming client
//! missed. Event ids are the stream ids, unique across processes.
//!
//! The reader survives Redis restarts: on any error it reconnects with
//! backoff and goes on from the last id it saw, so local subscribers lose
//! nothing and see nothing twice.

use std::time::Duration;

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Error, Result, Status};
use napi_derive::napi;
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::AsyncConnectionConfig;

use crate::endpoint::invalid;
use crate::frame::Frame;

/// How long one XREAD waits for new entries before asking again.
const BLOCK_MS: u64 = 2_000;
/// Entries handed to JavaScript at most per batch.
const BATCH: usize = 1_000;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One event of the stream.
#[napi(object)]
pub struct StreamEntry {
    pub id: String,
    pub event: Option<String>,
    pub data: String,
}

/// What `rangeAfter` read.
#[napi(object)]
pub struct StreamRange {
    /// The entries after the id, in order.
    pub entries: Vec<StreamEntry>,
    /// Whether the id is still covered by the stream (not trimmed away).
    pub complete: bool,
}

type BatchCallback =
    ThreadsafeFunction<Vec<StreamEntry>, (), Vec<StreamEntry>, Status, false, true>;

#[napi]
pub struct RedisLink {
    client: redis::Client,
    /// Reconnects by itself after Redis restarts; a publish while Redis is
    /// down fails (and its promise rejects) rather than waiting.
    publisher: ConnectionManager,
    stream: String,
    max_len: u32,
    reader: Option<tokio::task::AbortHandle>,
}

fn redis_error(context: &str, err: redis::RedisError) -> Error {
    Error::new(Status::GenericFailure, format!("{context}: {err}"))
}

fn entry(id: StreamId) -> StreamEntry {
    let field = |name: &str| {
        id.map
            .get(name)
            .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
    };
    StreamEntry {
        event: field("e"),
        data: field("d").unwrap_or_default(),
        id: id.id,
    }
}

/// Stream ids are `<ms>-<seq>`; a client's `Last-Event-ID` is checked to be
/// one before it reaches Redis.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Connects to Redis; rejects with a clear error when it cannot be reached.
#[napi]
pub async fn connect_redis(url: String, stream: String, max_len: u32) -> Result<RedisLink> {
    let client = redis::Client::open(url.as_str())
        .map_err(|err| redis_error(&format!("Invalid Redis URL {url}"), err))?;
    let publisher = ConnectionManager::new(client.clone())
        .await
        .map_err(|err| redis_error(&format!("Cannot connect to Redis at {url}"), err))?;
    Ok(RedisLink {
        client,
        publisher,
        stream,
        max_len,
        reader: None,
    })
}

#[napi]
impl RedisLink {
    /// Validates the event and appends it to the stream; resolves to its id.
    /// Rejects (with Redis's error) when Redis cannot take it.
    #[napi]
    pub async fn publish(&self, data: String, event: Option<String>) -> Result<String> {
        if let Some(event) = event.as_deref() {
            Frame::message(&data).event(event).map_err(invalid)?;
        }
        let mut command = redis::cmd("XADD");
        command.arg(&self.stream);
        if self.max_len > 0 {
            command.arg("MAXLEN").arg("~").arg(self.max_len);
        }
        command.arg("*").arg("d").arg(&data);
        if let Some(event) = event.as_deref() {
            command.arg("e").arg(event);
        }
        let mut connection = self.publisher.clone();
        command
            .query_async::<String>(&mut connection)
            .await
            .map_err(|err| redis_error("Cannot publish to Redis", err))
    }

    /// The entries after `id`, for a client resuming with it as its
    /// `Last-Event-ID`. An id that is not a stream id, or that the stream was
    /// trimmed past, gives `complete: false` (and, for the latter, everything
    /// the stream holds).
    #[napi]
    pub async fn range_after(&self, id: String) -> Result<StreamRange> {
        let Some((ms, seq)) = parse_id(&id) else {
            return Ok(StreamRange {
                entries: Vec::new(),
                complete: false,
            });
        };
        let mut connection = self.publisher.clone();
        let first: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut connection)
            .await
            .map_err(|err| redis_error("Cannot read from Redis", err))?;
        let trimmed = first
            .ids
            .first()
            .and_then(|e| parse_id(&e.id))
            .is_some_and(|oldest| oldest > (ms, seq));
        let after: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.stream)
            .arg(format!("({ms}-{seq}"))
            .arg("+")
            .query_async(&mut connection)
            .await
            .map_err(|err| redis_error("Cannot read from Redis", err))?;
        Ok(StreamRange {
            entries: after.ids.into_iter().map(entry).collect(),
            complete: !trimmed,
        })
    }

    /// Starts following the stream after its current end, handing batches
    /// of new entries to `on_batch`.
    #[napi]
    pub fn start_reading(&mut self, on_batch: Function<Vec<StreamEntry>, ()>) -> Result<()> {
        let callback: BatchCallback = on_batch
            .build_threadsafe_function::<Vec<StreamEntry>>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        let task = napi::bindgen_prelude::spawn(follow(
            self.client.clone(),
            self.stream.clone(),
            callback,
        ));
        if let Some(previous) = self.reader.replace(task.abort_handle()) {
            previous.abort();
        }
        Ok(())
    }

    /// Stops the reader; the connection closes when the link is dropped.
    #[napi]
    pub fn stop_reading(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

impl Drop for RedisLink {
    fn drop(&mut self) {
        self.stop_reading();
    }
}

/// The reader: XREAD in a loop from the last id seen, reconnecting with
/// backoff whenever Redis fails.
async fn follow(client: redis::Client, stream: String, callback: BatchCallback) {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_millis(BLOCK_MS + 3_000)));
    let mut last_id: Option<String> = None;
    let mut backoff = BACKOFF_START;
    loop {
        let mut connection = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => connection,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if last_id.is_none() {
            // Start at the current end, named by id, so that a restart of
            // Redis before the first entry loses nothing.
            let newest: redis::RedisResult<StreamRangeReply> = redis::cmd("XREVRANGE")
                .arg(&stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut connection)
                .await;
            match newest {
                Ok(reply) => {
                    last_id = Some(
                        reply
                            .ids
                            .first()
                            .map_or_else(|| "0-0".to_string(), |e| e.id.clone()),
                    )
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        backoff = BACKOFF_START;
        loop {
            let from = last_id.clone().unwrap_or_else(|| "0-0".to_string());
            let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(BATCH)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&stream)
                .arg(&from)
                .query_async(&mut connection)
                .await;
            let Ok(reply) = reply else {
                break; // reconnect
            };
            let entries: Vec<StreamEntry> = reply
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .map(entry)
                .collect();
            if let Some(last) = entries.last() {
                last_id = Some(last.id.clone());
                if callback.call(entries, ThreadsafeFunctionCallMode::NonBlocking)
                    == Status::Closing
                {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
