//! The publisher: one task per link takes the broadcasts of every channel on
//! it from one queue, in call order, and sends each run of them as one
//! pipeline on its own connection. Each broadcast is one call of
//! [`append_script`]: an `XADD` to the channel's stream and a `PUBLISH` of
//! the new id on the channel of the same name, together, so that every
//! process following the stream hears of the entry it must read. Redis runs
//! a connection's commands in order, so each stream's order is call order,
//! in every process.
//!
//! # Outcomes
//!
//! Each broadcast learns its fate truthfully: appended (with its id) or not
//! appended (Redis refused it, or could not be reached). When a pipeline's
//! reply is lost, the publisher does not guess: it opens a new connection,
//! kills the old one (`CLIENT KILL ID`, so that nothing still queued on it
//! can run later), and looks for each broadcast's producer tag (the `p`
//! field, unique per process and broadcast) among the stream's newest
//! entries. Found, the broadcast was appended, with that id; missing from an
//! untrimmed window, it was not. Only a Redis that stays unreachable for
//! [`OUTCOME_WAIT`] after the loss, or a window trimmed meanwhile, leaves a
//! broadcast's fate unknown. Later broadcasts wait behind the search, so
//! that fates stay in queue order.
//!
//! # Marks
//!
//! A [`Request::Mark`] reads a stream's newest id at its place in the queue
//! (`XREVRANGE … COUNT 1`): every broadcast queued before it has an id at or
//! below that mark, every one queued after an id above. That is where a
//! channel starts to follow its stream, and how `ready` proves the stream
//! readable.
//!
//! # Deletes
//!
//! A [`Request::Delete`] deletes a stream at its place in the queue (one
//! call of [`delete_script`]): every broadcast queued before it is appended
//! first, and gone with the stream; every one queued after starts a new
//! stream. The script publishes a notice that names the newest id deleted,
//! so that every process following the stream starts over without taking
//! the deletion for a failover (see [`super::follower`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::follower::Control;
use super::health::Health;
use super::lost::{
    find_tags, kill, old_fate, old_server_gone, run_id_of, Found, OldFate, Sent, ServerAt,
};
use super::notices::notice_for;
use super::replies::{entries_of, id_of, lasting, major_version, redirected};
use super::scripts::{append_script, delete_script, Notice, NO_EVENT};
use super::stop_key;
use super::{now_ms, Cause, Connector, OutcomeSink, PublishBatch, BACKOFF, REPLY_TIMEOUT};
use crate::core::backoff::Backoff;
use crate::core::codes::Code;
use crate::core::stream_entry::StreamId;
use crate::core::{hex, stop};

/// Broadcasts to one stream in one call of the script at most.
const GROUP_MAX: usize = 250;
/// Broadcasts sent in one pipeline at most, and their bytes.
const PIPELINE_MAX: usize = 1_000;
const PIPELINE_BYTES: usize = 1 << 20;
/// How long after a lost reply the publisher keeps trying to learn what
/// became of the pipeline, before it says the outcome is unknown.
pub const OUTCOME_WAIT: Duration = Duration::from_secs(10);
/// How far back, before the newest id this link has seen from Redis or the
/// local clock (whichever is earlier), a lost broadcast's entry is looked
/// for: Redis's clock may be behind this one's by this much.
const CLOCK_SLACK_MS: u64 = 5_000;

/// How much of a channel's stream Redis keeps. Broadcasts to one stream
/// with the same retention go in one call of the script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Entries the stream is trimmed to (about); `0` is never.
    pub max_len: u32,
    /// How long the stream lives after its last append, in ms; `0` is for
    /// ever.
    pub ttl_ms: u64,
}

/// What the publisher is asked to do, in order.
#[derive(Clone)]
pub enum Request {
    Publish {
        number: u64,
        stream: Arc<str>,
        retention: Retention,
        data: String,
        event: Option<String>,
    },
    /// The stream's newest id at this place in the queue (`0-0` for an
    /// empty one), or why it could not be read.
    Mark { stream: Arc<str>, reply: MarkFor },
    /// Delete the stream at this place in the queue; reported with the
    /// fates, in queue order (`"1"` deleted, `"0"` there was none).
    Delete { number: u64, stream: Arc<str> },
}

/// Who a mark is for.
#[derive(Clone)]
pub enum MarkFor {
    /// The caller (`ready`): it is reported with the fates, under this
    /// number (the id, or the failure with its code).
    Report(u64),
    /// The follower, to follow the stream from the mark; from its end as the
    /// follower finds it, if the mark could not be read (Redis down: no
    /// broadcast is appended meanwhile from here).
    Follow(mpsc::UnboundedSender<Control>),
    /// The follower, to stop following the stream: sent this way, not
    /// straight to the follower, so that it comes after every follow queued
    /// before it (a channel left idle before its follow's mark was answered
    /// would otherwise stay followed).
    Unfollow(mpsc::UnboundedSender<Control>),
}

impl MarkFor {
    fn answer(
        self,
        stream: Arc<str>,
        mark: Result<StreamId, (Code, Cause, String)>,
        fates: &mut PublishBatch,
    ) {
        match self {
            MarkFor::Report(number) => match mark {
                Ok(id) => fates.appended(number, id.to_string()),
                Err((code, cause, reason)) => fates.failed(number, code, cause, reason),
            },
            MarkFor::Follow(follower) => {
                let _ = follower.send(Control::Join {
                    stream,
                    from: mark.ok(),
                });
            }
            MarkFor::Unfollow(follower) => {
                let _ = follower.send(Control::Unfollow { stream });
            }
        }
    }
}

impl Request {
    /// The stream it is about.
    pub fn stream(&self) -> &Arc<str> {
        match self {
            Request::Publish { stream, .. }
            | Request::Mark { stream, .. }
            | Request::Delete { stream, .. } => stream,
        }
    }

    /// Its number, if it reports (see [`super::PublishBatch`]).
    pub fn number(&self) -> Option<u64> {
        match self {
            Request::Publish { number, .. } | Request::Delete { number, .. } => Some(*number),
            Request::Mark {
                reply: MarkFor::Report(number),
                ..
            } => Some(*number),
            Request::Mark { .. } => None,
        }
    }

    /// The bytes it holds while it waits.
    pub fn size(&self) -> usize {
        match self {
            Request::Publish { data, event, .. } => {
                data.len() + event.as_ref().map_or(0, String::len)
            }
            Request::Mark { .. } | Request::Delete { .. } => 0,
        }
    }
}

/// What the publisher works with.
pub struct Publisher {
    pub connector: Connector,
    pub server: String,
    pub outcomes: OutcomeSink,
    /// Given the stop-token key shared through this Redis.
    pub on_shared_key: fn(&[u8]),
    /// Bytes of requests queued and not yet taken into a pipeline.
    pub pending: Arc<AtomicUsize>,
    /// The follower's count of outages (see [`Connection::outages`]).
    pub outages: Arc<AtomicU64>,
    /// What the publisher finds of the server is said here.
    pub health: Arc<Health>,
    /// A master of a cluster: its notices are sharded on Redis 7 or later
    /// (see [`super::notices`]).
    pub shardable: bool,
}

/// The publisher's connection and what it knows of it.
struct Connection {
    connection: MultiplexedConnection,
    /// Redis's id for it (`CLIENT ID`), to kill it after a lost reply;
    /// `None` where Redis would not say.
    client_id: Option<i64>,
    /// Which server it is on: its address, and the server process's
    /// `run_id` (`None` where Redis would not say).
    server_at: ServerAt,
    /// The follower's count of outages when it was made: once the count
    /// moves, the connection is presumed dead too and replaced before it is
    /// used, rather than found dead by losing a pipeline's reply.
    outages: u64,
    /// The script is loaded on this server (`SCRIPT LOAD` at connect), with
    /// the notice it sends.
    sha: String,
    notice: Notice,
}

/// The publisher's state between pipelines.
struct State {
    connection: Option<Connection>,
    /// After a failed connect, requests are refused at once until this
    /// instant, rather than each trying again.
    down: Option<(Instant, String)>,
    backoff: Backoff,
    /// This process's part of every producer tag, and the next broadcast's
    /// number.
    tag_prefix: String,
    next_tag: u64,
    /// The newest stream id this link has seen from Redis, in ms: a guide
    /// to Redis's clock.
    redis_ms: u64,
}

impl Publisher {
    /// Runs until the queue closes and what it held has gone.
    pub async fn run(self, mut queue: mpsc::UnboundedReceiver<Request>) {
        let mut nonce = [0u8; 8];
        stop::random_bytes(&mut nonce);
        let mut state = State {
            connection: None,
            down: None,
            backoff: BACKOFF,
            tag_prefix: hex::encode(&nonce),
            next_tag: 0,
            redis_ms: 0,
        };
        while let Some(batch) = self.next_batch(&mut queue).await {
            if let Err(reason) = self.connect(&mut state).await {
                let mut fates = PublishBatch::new(batch.len());
                for request in batch {
                    match request {
                        Request::Publish { number, .. } => fates.failed(
                            number,
                            Code::RedisNotAppended,
                            Cause::Unreachable,
                            reason.clone(),
                        ),
                        Request::Mark { stream, reply } => {
                            reply.answer(
                                stream,
                                Err((Code::RedisUnavailable, Cause::Unreachable, reason.clone())),
                                &mut fates,
                            );
                        }
                        Request::Delete { number, .. } => fates.failed(
                            number,
                            Code::RedisUnavailable,
                            Cause::Unreachable,
                            reason.clone(),
                        ),
                    }
                }
                self.report(fates);
                continue;
            }
            let fates = self.send(&mut state, batch).await;
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

    /// Makes sure there is a connection that is presumed alive; while a
    /// failed connect's backoff runs, says why it failed.
    async fn connect(&self, state: &mut State) -> Result<(), String> {
        let outages = self.outages.load(Ordering::Relaxed);
        if state
            .connection
            .as_ref()
            .is_some_and(|held| held.outages != outages)
        {
            state.connection = None;
            state.down = None;
        }
        if state.connection.is_some() {
            return Ok(());
        }
        if let Some((until, reason)) = &state.down {
            if Instant::now() < *until {
                return Err(reason.clone());
            }
        }
        match self.open(outages).await {
            Ok(fresh) => {
                state.connection = Some(fresh);
                state.down = None;
                state.backoff.reset();
                self.health.up();
                Ok(())
            }
            Err(err) => {
                let reason = format!("Cannot connect to Redis at {}: {err}", self.server);
                state.down = Some((Instant::now() + state.backoff.next_wait(), reason.clone()));
                self.health.down(reason.clone());
                Err(reason)
            }
        }
    }

    /// Opens a connection, loads the script and shares the stop key.
    async fn open(&self, outages: u64) -> redis::RedisResult<Connection> {
        let (mut connection, info) = self.connector.connect_at(REPLY_TIMEOUT).await?;
        let server: Option<String> = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection)
            .await
            .ok();
        let notice = notice_for(self.shardable, server.as_deref().and_then(major_version));
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(append_script(notice))
            .query_async(&mut connection)
            .await?;
        let client_id: Option<i64> = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut connection)
            .await
            .ok();
        let run_id = server.as_deref().and_then(run_id_of);
        stop_key::share(&mut connection, self.on_shared_key).await;
        Ok(Connection {
            connection,
            client_id,
            server_at: ServerAt::new(info, run_id),
            outages,
            sha,
            notice,
        })
    }

    /// Sends a run of requests as one pipeline and learns each one's fate.
    async fn send(&self, state: &mut State, batch: Vec<Request>) -> PublishBatch {
        let Some(held) = state.connection.as_mut() else {
            // `connect` made one; unreachable in practice, and harmless.
            return self.settle_lost(batch, Vec::new(), &[], 0, "No connection to Redis");
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut sent = Vec::with_capacity(batch.len());
        // How many requests each command of the pipeline answers: a run of
        // broadcasts to one stream is one call of the script (`0` for a
        // mark, which answers one request with its own reply).
        let mut groups: Vec<usize> = Vec::new();
        let mut at = 0;
        while at < batch.len() {
            match &batch[at] {
                Request::Publish {
                    stream, retention, ..
                } => {
                    let command = pipe
                        .cmd("EVALSHA")
                        .arg(&held.sha)
                        .arg(1)
                        .arg(&**stream)
                        .arg(retention.max_len)
                        .arg(retention.ttl_ms);
                    let first = at;
                    while let Some(Request::Publish {
                        stream: next,
                        retention: next_retention,
                        data,
                        event,
                        ..
                    }) = batch.get(at)
                    {
                        if next != stream || next_retention != retention || at - first >= GROUP_MAX
                        {
                            break;
                        }
                        let tag = format!("{}-{}", state.tag_prefix, state.next_tag);
                        state.next_tag += 1;
                        command
                            .arg(&tag)
                            .arg(data)
                            .arg(event.as_deref().unwrap_or(NO_EVENT));
                        sent.push(Sent {
                            stream: stream.clone(),
                            tag,
                        });
                        at += 1;
                    }
                    groups.push(at - first);
                }
                Request::Mark { stream, .. } => {
                    pipe.cmd("XREVRANGE")
                        .arg(&**stream)
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(1);
                    groups.push(0);
                    at += 1;
                }
                Request::Delete { stream, .. } => {
                    pipe.cmd("EVAL")
                        .arg(delete_script(held.notice))
                        .arg(1)
                        .arg(&**stream);
                    groups.push(0);
                    at += 1;
                }
            }
        }
        let now = now_ms();
        let clock = if state.redis_ms == 0 {
            now
        } else {
            now.min(state.redis_ms)
        };
        let lower_ms = clock.saturating_sub(CLOCK_SLACK_MS);
        let reply = pipe.query_async::<Vec<Value>>(&mut held.connection).await;
        match reply {
            Ok(replies) if replies.len() == groups.len() => {
                self.fates_of(state, batch, &groups, replies)
            }
            lost => {
                let reason = match lost {
                    Err(err) => err.to_string(),
                    Ok(_) => {
                        "Redis answered a pipeline with the wrong number of replies".to_string()
                    }
                };
                let reason = format!("Lost the reply of Redis at {}: {reason}", self.server);
                self.health.down(reason.clone());
                let old = state.connection.take();
                let found = self
                    .search(
                        state,
                        old.as_ref()
                            .and_then(|old| Some((old.client_id?, old.server_at.clone()))),
                        &sent,
                        lower_ms,
                    )
                    .await;
                self.settle_lost(batch, found, &sent, lower_ms, &reason)
            }
        }
    }

    /// Each request's fate, from the replies of the commands that carried
    /// them (`groups`: how many broadcasts each answers; `0` a mark).
    fn fates_of(
        &self,
        state: &mut State,
        batch: Vec<Request>,
        groups: &[usize],
        replies: Vec<Value>,
    ) -> PublishBatch {
        let mut fates = PublishBatch::new(batch.len());
        let mut requests = batch.into_iter();
        for (&count, reply) in groups.iter().zip(replies) {
            if count == 0 {
                if let Some(mark) = requests.next() {
                    self.fate_of(state, mark, reply, &mut fates);
                }
                continue;
            }
            let mut answers: Vec<Value> = match reply {
                Value::Array(answers) if answers.len() == count => answers,
                // The script did not run (refused, flushed): none of the
                // run was appended. Anything else is one request's reply.
                other => vec![other; count],
            };
            answers.reverse();
            for _ in 0..count {
                let (Some(request), Some(answer)) = (requests.next(), answers.pop()) else {
                    break;
                };
                self.fate_of(state, request, answer, &mut fates);
            }
        }
        fates
    }

    /// One request's fate, from its answer.
    fn fate_of(&self, state: &mut State, request: Request, reply: Value, fates: &mut PublishBatch) {
        let server = &self.server;
        match request {
            Request::Publish { number, .. } => match id_of(&reply) {
                Some(id) => {
                    if let Some(parsed) = StreamId::parse(&id) {
                        state.redis_ms = state.redis_ms.max(parsed.ms);
                    }
                    fates.appended(number, id);
                }
                None => match reply {
                    // Redis refused it (out of memory, a wrong type, an ACL,
                    // a script flushed by hand): it was not appended, or the
                    // script would have answered with its id.
                    Value::ServerError(err) => {
                        // NOSCRIPT: loaded again on a new connection before
                        // the next pipeline. READONLY: the server is a
                        // replica now (a demoted master): the next connect
                        // finds the master (through the sentinels).
                        if matches!(err.code(), "NOSCRIPT" | "READONLY") {
                            if let Some(held) = state.connection.as_mut() {
                                held.outages = u64::MAX;
                            }
                        }
                        fates.failed(
                            number,
                            Code::RedisNotAppended,
                            cause_of(&err),
                            format!("Redis at {server} refused it: {err}"),
                        )
                    }
                    other => fates.failed(
                        number,
                        Code::RedisOutcomeUnknown,
                        Cause::Refused,
                        format!("Redis at {server} answered the append with {other:?}"),
                    ),
                },
            },
            Request::Mark { stream, reply: to } => {
                let mark = self.mark_of(&stream, reply);
                to.answer(stream, mark, fates);
            }
            Request::Delete { number, stream } => match reply {
                Value::Int(deleted) => fates.appended(number, deleted.to_string()),
                Value::ServerError(err) => fates.failed(
                    number,
                    Code::RedisUnavailable,
                    cause_of(&err),
                    format!("Redis at {server} refused to delete the stream {stream:?}: {err}"),
                ),
                other => fates.failed(
                    number,
                    Code::RedisOutcomeUnknown,
                    Cause::Refused,
                    format!("Redis at {server} answered the delete with {other:?}"),
                ),
            },
        }
    }

    /// A mark's answer from the reply of its `XREVRANGE`.
    fn mark_of(&self, stream: &str, reply: Value) -> Result<StreamId, (Code, Cause, String)> {
        if let Value::ServerError(err) = &reply {
            let cause = cause_of(err);
            let err = redis::RedisError::from(err.clone());
            let code = if lasting(&err) {
                Code::RedisUnreadable
            } else {
                Code::RedisUnavailable
            };
            return Err((
                code,
                cause,
                format!(
                    "Cannot read the stream {stream:?} (\"XREVRANGE\") from Redis at {}: {err}",
                    self.server
                ),
            ));
        }
        Ok(entries_of(reply)
            .first()
            .and_then(|(id, _)| StreamId::parse(id))
            .unwrap_or_default())
    }

    /// Learns what became of a pipeline whose reply was lost: what was found
    /// of each broadcast, [`Found::Missing`] only where nothing still queued
    /// on the old connection can run. Tries until [`OUTCOME_WAIT`] has
    /// passed.
    async fn search(
        &self,
        state: &mut State,
        old: Option<(i64, ServerAt)>,
        sent: &[Sent],
        lower_ms: u64,
    ) -> Vec<Found> {
        let deadline = Instant::now() + OUTCOME_WAIT;
        let mut backoff = BACKOFF;
        loop {
            let outages = self.outages.load(Ordering::Relaxed);
            if let Ok(mut fresh) = self.open(outages).await {
                // Nothing still queued on the old connection may run once
                // the search has looked: kill it first, on its own server
                // only. A Redis that will not say which it was, or will not
                // kill it, or another server (a failover: the old master may
                // run what it holds when it comes back), leaves what is not
                // found unknown; one whose process is gone does not.
                let fate = old_fate(old.as_ref().map(|(id, at)| (*id, at)), &fresh.server_at);
                let killed = match fate {
                    OldFate::Kill(id) => kill(&mut fresh.connection, id).await,
                    OldFate::Gone => true,
                    OldFate::Elsewhere => match &old {
                        Some((id, at)) => old_server_gone(at, *id).await,
                        None => false,
                    },
                    OldFate::Unsure => false,
                };
                if let Ok(found) = find_tags(&mut fresh.connection, sent, lower_ms).await {
                    self.health.up();
                    state.connection = Some(fresh);
                    state.backoff.reset();
                    return found
                        .into_iter()
                        .map(|found| match found {
                            Found::Missing if !killed => Found::Unsure,
                            found => found,
                        })
                        .collect();
                }
            }
            if Instant::now() + backoff.next_wait() > deadline {
                return sent.iter().map(|_| Found::Unsure).collect();
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// The fates of a pipeline whose reply was lost, from the search.
    /// `sent`: the broadcasts of the pipeline, in order, with `found`
    /// beside them; `since_ms`: how far back they were looked for.
    fn settle_lost(
        &self,
        batch: Vec<Request>,
        found: Vec<Found>,
        sent: &[Sent],
        since_ms: u64,
        reason: &str,
    ) -> PublishBatch {
        let mut fates = PublishBatch::new(batch.len());
        let mut found = found.into_iter();
        let mut sent = sent.iter();
        let lost = |tag: Option<String>| Cause::Lost { tag, since_ms };
        for request in batch {
            match request {
                Request::Publish { number, .. } => {
                    let tag = sent.next().map(|sent| sent.tag.clone());
                    match found.next().unwrap_or(Found::Unsure) {
                        Found::At(id) => fates.appended(number, id),
                        Found::Missing => fates.failed(
                            number,
                            Code::RedisNotAppended,
                            lost(None),
                            format!("{reason}; it is not in the stream"),
                        ),
                        Found::Unsure => fates.failed(
                            number,
                            Code::RedisOutcomeUnknown,
                            lost(tag),
                            format!(
                                "{reason}; whether it was appended could not be learnt within {} s",
                                OUTCOME_WAIT.as_secs()
                            ),
                        ),
                    }
                }
                Request::Mark { stream, reply } => {
                    reply.answer(
                        stream,
                        Err((Code::RedisUnavailable, Cause::Unreachable, reason.to_string())),
                        &mut fates,
                    );
                }
                // Deleting is idempotent: the caller may delete again.
                Request::Delete { number, .. } => fates.failed(
                    number,
                    Code::RedisOutcomeUnknown,
                    lost(None),
                    format!("{reason}; the stream may or may not be deleted (deleting it again is safe)"),
                ),
            }
        }
        fates
    }

    /// Hands the outcomes of a pipeline's requests over (if it had any).
    fn report(&self, fates: PublishBatch) {
        if !fates.outcomes.is_empty() {
            (self.outcomes)(fates);
        }
    }
}

/// How the link acts on an error reply: a cluster node that sends the
/// request elsewhere (`MOVED`, `ASK`) is not a refusal.
fn cause_of(err: &redis::ServerError) -> Cause {
    if redirected(err) {
        Cause::Redirected
    } else {
        Cause::Refused
    }
}
