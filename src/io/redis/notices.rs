//! How a follower hears of new entries: the connection its notices come on.
//!
//! On one server, and on Redis before 7, a classic pub/sub connection
//! (`SUBSCRIBE`), the append script's notice a `PUBLISH`. A Redis Cluster
//! carries every `PUBLISH` to every node over its bus, whatever the
//! subscribers; so on a cluster of Redis 7 or later the notices are sharded
//! (`SPUBLISH`, carried only among the nodes of the stream's shard), and a
//! master's follower hears them on a RESP3 connection to that master with
//! `SSUBSCRIBE`. It subscribes with `SUBSCRIBE` there too, so that another
//! producer's classic `PUBLISH` is still heard. (The redis crate's pub/sub
//! connection cannot `SSUBSCRIBE`; on a RESP3 connection each one-channel
//! `SSUBSCRIBE` is answered by one confirmation, which the crate takes as
//! its reply, and messages come as pushes.)
//!
//! A master's publisher sends sharded notices when it finds the server is
//! Redis 7 or later ([`notice_for`]); its follower, which may connect first
//! (a follow moved with its slot), subscribes both ways where the server
//! knows `SSUBSCRIBE`, and hears either.

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::mpsc;

use super::replies::connection_lost;
use super::scripts::Notice;
use super::Connector;

/// The notice a link sends to a server of version `major`: sharded on a
/// master of a cluster (`shardable`) of Redis 7 or later.
pub fn notice_for(shardable: bool, major: Option<u32>) -> Notice {
    if shardable && major.is_some_and(|major| major >= 7) {
        Notice::Sharded
    } else {
        Notice::Publish
    }
}

/// The half of a notice connection that subscribes.
pub enum Sink {
    Classic(PubSubSink),
    /// A RESP3 connection; `sharded` while the server takes `SSUBSCRIBE`.
    Resp3 {
        connection: MultiplexedConnection,
        sharded: bool,
    },
}

/// The half that brings the notices.
pub enum Stream {
    Classic(PubSubStream),
    Resp3(mpsc::UnboundedReceiver<PushInfo>),
}

/// Opens a notice connection: for a master of a cluster (`shardable`), a
/// RESP3 one that hears sharded notices too, unless the server speaks no
/// RESP3 (before Redis 6); otherwise a classic one.
pub async fn connect(connector: &Connector, shardable: bool) -> RedisResult<(Sink, Stream)> {
    if shardable {
        let (pushes, received) = mpsc::unbounded_channel();
        match connector.resp3_with_pushes(pushes).await {
            Ok(connection) => {
                return Ok((
                    Sink::Resp3 {
                        connection,
                        sharded: true,
                    },
                    Stream::Resp3(received),
                ))
            }
            Err(err) if connection_lost(&err) => return Err(err),
            Err(_) => {}
        }
    }
    let (sink, stream) = connector.pubsub().await?.split();
    Ok((Sink::Classic(sink), Stream::Classic(stream)))
}

impl Sink {
    /// Subscribes to the notices of `streams`.
    pub async fn subscribe(&mut self, streams: &[&str]) -> RedisResult<()> {
        match self {
            Sink::Classic(sink) => sink.subscribe(streams).await,
            Sink::Resp3 {
                connection,
                sharded,
            } => {
                if *sharded {
                    let mut pipe = redis::pipe();
                    for stream in streams {
                        pipe.cmd("SSUBSCRIBE").arg(*stream).ignore();
                        pipe.cmd("SUBSCRIBE").arg(*stream).ignore();
                    }
                    match pipe.query_async::<()>(connection).await {
                        Err(err) if unknown_command(&err) => *sharded = false,
                        done => return done,
                    }
                }
                // A server before Redis 7: classic notices only.
                let mut pipe = redis::pipe();
                for stream in streams {
                    pipe.cmd("SUBSCRIBE").arg(*stream).ignore();
                }
                pipe.query_async::<()>(connection).await
            }
        }
    }

    pub async fn unsubscribe(&mut self, stream: &str) -> RedisResult<()> {
        match self {
            Sink::Classic(sink) => sink.unsubscribe(stream).await,
            Sink::Resp3 {
                connection,
                sharded,
            } => {
                let mut pipe = redis::pipe();
                if *sharded {
                    pipe.cmd("SUNSUBSCRIBE").arg(stream).ignore();
                }
                pipe.cmd("UNSUBSCRIBE").arg(stream).ignore();
                pipe.query_async::<()>(connection).await
            }
        }
    }

    pub async fn ping(&mut self) -> RedisResult<()> {
        match self {
            Sink::Classic(sink) => sink.ping::<Value>().await.map(|_| ()),
            Sink::Resp3 { connection, .. } => {
                redis::cmd("PING").query_async::<()>(connection).await
            }
        }
    }
}

/// Whether the server does not know a command (`SSUBSCRIBE` before 7).
fn unknown_command(err: &redis::RedisError) -> bool {
    err.code() == Some("ERR")
        && err
            .detail()
            .is_some_and(|detail| detail.contains("unknown command"))
}

impl Stream {
    /// The next notice: its channel (a stream's key) and its payload; `None`
    /// once the connection is gone.
    pub async fn next(&mut self) -> Option<(String, Vec<u8>)> {
        match self {
            Stream::Classic(stream) => {
                let message = stream.next().await?;
                Some((
                    message.get_channel_name().to_string(),
                    message.get_payload_bytes().to_vec(),
                ))
            }
            Stream::Resp3(pushes) => loop {
                let push = pushes.recv().await?;
                match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        let mut data = push.data.into_iter();
                        let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                            continue;
                        };
                        let Some(channel) = text_of(channel) else {
                            continue;
                        };
                        return Some((channel, bytes_of(payload)));
                    }
                    PushKind::Disconnection => return None,
                    _ => {}
                }
            },
        }
    }
}

fn bytes_of(value: Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        _ => Vec::new(),
    }
}

fn text_of(value: Value) -> Option<String> {
    String::from_utf8(bytes_of(value)).ok()
}
