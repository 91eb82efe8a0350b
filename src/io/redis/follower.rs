//! The follower: one task per link follows every stream that has live
//! subscribers in this process, on one pub/sub connection, whatever the
//! number of streams.
//!
//! # Notices, then reads
//!
//! Each broadcast publishes its new id on the channel named as its stream
//! (see [`super::scripts::append_script`]). A notice carries no event: it
//! tells the follower that its stream has entries past what was read, and
//! the follower reads them from the stream itself (`XRANGE (last + COUNT`)
//! on the link's page connections. So the stream stays the one source of
//! what is delivered: every entry is read once, in stream order, checked as
//! every entry is ([`crate::core::stream_entry`]), and nothing is delivered
//! that is not in the stream. One read per stream is in flight at most;
//! notices that come meanwhile are answered by one more read, so a busy
//! stream is read in batches, as `XREAD` would.
//!
//! # Gaps
//!
//! Notices are lost while the pub/sub connection is down. After every
//! reconnect, each stream is read from the last id read, before its notices
//! are relied on again: nothing appended during the outage is missed.
//! Entries written by another producer without a notice are read with the
//! next notice of their stream.
//!
//! # A stream that went back
//!
//! A read that finds nothing after the last id, and a newest id behind it,
//! means the stream went back (deleted and written again, a new Redis, a
//! restore). The follower goes on from before the first entry of the new
//! timeline it can place: the lowest id a notice named since, or, after an
//! outage, the entries made since the connection was lost (a restored
//! snapshot's older entries are not sent again); it says so on the page
//! (`rewound_from`).
//!
//! # Another timeline
//!
//! A read after an entry the follow delivered reads that entry too
//! (`XRANGE stream last + COUNT n+1`), one entry more per read, so that a
//! server without it is noticed at once: after a failover that split the
//! brain, the old master may have appended (and answered a read with)
//! entries the new one never had, while the new one appended others below
//! the last id delivered. Reading on after that id would skip them without
//! a word. Instead the follow goes back to the newest entry it delivered
//! that the server has (it remembers the last [`RECENT_IDS`]) and reads on
//! from there; with none, the page says the follow lost track
//! (`lost_track`), and live clients are told.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::sync::mpsc;

use super::health::Health;
use super::notices;
use super::pages::Pages;
use super::replies::{connection_lost, entries_of, lasting};
use super::scripts::DELETED_NOTICE;
use super::{now_ms, Connector, PageSink, StreamPage, BACKOFF, CONNECT_TIMEOUT, REPLY_TIMEOUT};
use crate::core::stream_entry::{Page, StreamId};

/// Entries read at most per read of one stream.
const READ_COUNT: usize = 1_000;
/// How many of the ids it delivered last a follow remembers, to find, after
/// an outage, where the server it reconnected to (a promoted replica, after
/// a split brain) and what it delivered still agree.
const RECENT_IDS: usize = 1_024;
/// Streams subscribed to per `SUBSCRIBE` at most.
const SUBSCRIBE_CHUNK: usize = 1_000;
/// How often the pub/sub connection is asked whether it is alive, and how
/// long it may take to answer: a connection that died without a word (a
/// host gone) is found within their sum.
const PING_EVERY: Duration = Duration::from_secs(10);
/// How long a stream that cannot be read waits before it is read again.
const RETRY_READ: Duration = Duration::from_millis(500);
/// After an outage, entries this much older than the moment the connection
/// was lost still count as made since (the clocks of this host and Redis's
/// may differ by that much).
const OUTAGE_SLACK_MS: u64 = 1_000;

/// What the follower is asked to do.
pub enum Control {
    /// Follow `stream` from `from` (exclusive), or from its end when `None`:
    /// a stream followed elsewhere until now (another master of a cluster),
    /// whose follow here starts over at `from`.
    Follow {
        stream: Arc<str>,
        from: Option<StreamId>,
    },
    /// A channel of this process starts following `stream`, whose end was
    /// `from` at its place in the publisher's queue. A stream already
    /// followed is followed on as it is: starting it over at `from` would
    /// skip, for the channels already on it, whatever lay between what they
    /// were given and `from`. The newcomer is told where the follow is.
    Join {
        stream: Arc<str>,
        from: Option<StreamId>,
    },
    Unfollow {
        stream: Arc<str>,
    },
}

/// What the follower works with.
pub struct Follower {
    pub connector: Connector,
    pub server: String,
    pub pages: Arc<Pages>,
    pub sink: PageSink,
    /// Counts outages for the publisher (see `publisher::Connection`).
    pub outages: Arc<AtomicU64>,
    /// What the follower finds of the server is said here.
    pub health: Arc<Health>,
    /// A master of a cluster: it hears sharded notices too (see
    /// [`super::notices`]).
    pub shardable: bool,
}

/// A stream followed.
struct Followed {
    /// Which follow this is: a read begun for an earlier one is ignored.
    generation: u64,
    /// Read up to here; `None` until the stream's end is known.
    last: Option<StreamId>,
    /// A read is in flight.
    reading: bool,
    /// Entries may be waiting past `last`: read again when the read in
    /// flight ends.
    dirty: bool,
    /// A lasting failure was reported and nothing has been read since.
    failing: bool,
    /// The lowest id a notice named that was not past `last`: where a
    /// stream that went back is known to have begun again.
    low: Option<StreamId>,
    /// When the connection was last lost, if the stream was not read since;
    /// for a follow whose mark could not be read, when it was asked for.
    outage_ms: Option<u64>,
    /// The stream has been subscribed to on the current connection.
    subscribed: bool,
    /// The ids of the entries delivered last, oldest first.
    recent: VecDeque<StreamId>,
    /// A notice said the stream was deleted (with this newest id) while a
    /// read was in flight: dealt with when the read ends.
    deleted: Option<StreamId>,
}

/// A read's outcome, back on the follower's task.
struct Done {
    stream: Arc<str>,
    generation: u64,
    from: Option<StreamId>,
    result: redis::RedisResult<Read>,
}

enum Read {
    /// The stream's end, for a follow that starts there.
    Start(StreamId),
    /// Entries after `from`; when there are none, the stream's newest id
    /// (otherwise `from`).
    After {
        entries: Vec<(String, crate::core::stream_entry::RawFields)>,
        newest: StreamId,
    },
    /// Nothing was read: a retry after a failure.
    Retry,
    /// `last`, an entry this follow delivered, is not on the server: the
    /// server read is another timeline than the one delivered from (a
    /// failover after a split brain, an old master that answered a read
    /// late, a new or restored Redis), or the stream lost its front past
    /// `last` (trimmed, or deleted and written again). `below`: the server's
    /// ids up to `last`, the newest of them, to find the newest entry both
    /// agree on; what the server has after it was not delivered. `newest`:
    /// as for `After`.
    Diverged {
        below: HashSet<StreamId>,
        newest: StreamId,
    },
}

/// Why the follower left its connection.
enum Leave {
    Lost,
    Closed,
}

impl Follower {
    /// Runs until the control queue closes or nobody listens.
    pub async fn run(self, mut control: mpsc::UnboundedReceiver<Control>) {
        let mut follows: HashMap<Arc<str>, Followed> = HashMap::new();
        let (done_to, mut done) = mpsc::unbounded_channel::<Done>();
        let mut generation = 0u64;
        let mut backoff = BACKOFF;
        loop {
            if follows.is_empty() {
                // Nothing to follow: no connection until there is.
                match control.recv().await {
                    Some(request) => {
                        self.apply(&mut follows, &mut generation, request);
                        continue;
                    }
                    None => return,
                }
            }
            let connected = tokio::time::timeout(
                CONNECT_TIMEOUT,
                notices::connect(&self.connector, self.shardable),
            )
            .await;
            let (mut sink, mut messages) = match connected {
                Ok(Ok(halves)) => halves,
                failed => {
                    self.outages.fetch_add(1, Ordering::Relaxed);
                    self.health.down(match &failed {
                        Ok(Err(err)) => {
                            format!("Cannot connect to Redis at {}: {err}", self.server)
                        }
                        _ => format!(
                            "Cannot connect to Redis at {}: no answer within {} s",
                            self.server,
                            CONNECT_TIMEOUT.as_secs()
                        ),
                    });
                    if let Ok(Err(err)) = &failed {
                        if lasting(err) {
                            let reason =
                                format!("Cannot follow streams on Redis at {}: {err}", self.server);
                            let pages = self.fail_all(&mut follows, &reason);
                            if !pages.is_empty() && !(self.sink)(pages) {
                                return;
                            }
                        }
                    }
                    let wait = backoff.next_wait();
                    if !self
                        .pause(wait, &mut follows, &mut generation, &mut control)
                        .await
                    {
                        return;
                    }
                    continue;
                }
            };
            // Everything followed is subscribed to again, then read from
            // where it was: what came meanwhile is read, not missed.
            let mut lost = false;
            let names: Vec<Arc<str>> = follows.keys().cloned().collect();
            for chunk in names.chunks(SUBSCRIBE_CHUNK) {
                let chunk: Vec<&str> = chunk.iter().map(|name| &**name).collect();
                if !answered(sink.subscribe(&chunk)).await {
                    lost = true;
                    break;
                }
            }
            if lost {
                self.outages.fetch_add(1, Ordering::Relaxed);
                self.health.down(format!(
                    "Lost the connection to Redis at {} while subscribing",
                    self.server
                ));
                let lost_at = now_ms();
                for followed in follows.values_mut() {
                    followed.outage_ms.get_or_insert(lost_at);
                }
                let wait = backoff.next_wait();
                if !self
                    .pause(wait, &mut follows, &mut generation, &mut control)
                    .await
                {
                    return;
                }
                continue;
            }
            backoff.reset();
            self.health.up();
            let mut started = Vec::new();
            for (name, followed) in &mut follows {
                followed.subscribed = true;
                if let Some(page) = self.begin(name, followed, &done_to) {
                    started.push(page);
                }
            }
            if !started.is_empty() && !(self.sink)(started) {
                return;
            }
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.tick().await;
            let leave = loop {
                tokio::select! {
                    request = control.recv() => {
                        let Some(request) = request else { break Leave::Closed };
                        let subscribe = match &request {
                            Control::Follow { stream, .. } | Control::Join { stream, .. } => {
                                !follows.get(stream).is_some_and(|f| f.subscribed)
                            }
                            Control::Unfollow { .. } => false,
                        };
                        match &request {
                            Control::Follow { stream, .. } | Control::Join { stream, .. } if subscribe => {
                                if !answered(sink.subscribe(&[&**stream])).await {
                                    self.apply(&mut follows, &mut generation, request);
                                    break Leave::Lost;
                                }
                            }
                            Control::Unfollow { stream } => {
                                if follows.contains_key(stream) && !answered(sink.unsubscribe(stream)).await {
                                    self.apply(&mut follows, &mut generation, request);
                                    break Leave::Lost;
                                }
                            }
                            Control::Follow { .. } | Control::Join { .. } => {}
                        }
                        let followed = self.apply(&mut follows, &mut generation, request);
                        if let Some(name) = followed {
                            if let Some(followed) = follows.get_mut(&name) {
                                followed.subscribed = true;
                                if let Some(page) = self.begin(&name, followed, &done_to) {
                                    if !(self.sink)(vec![page]) {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                    message = messages.next() => {
                        let Some((channel, payload)) = message else { break Leave::Lost };
                        let name = follows.get_key_value(channel.as_str()).map(|(name, _)| name.clone());
                        if let Some((name, followed)) = name.and_then(|name| follows.get_mut(&name).map(|followed| (name, followed))) {
                            let payload = std::str::from_utf8(&payload).unwrap_or_default();
                            if let Some(newest) = payload.strip_prefix(DELETED_NOTICE).and_then(StreamId::parse) {
                                if followed.reading {
                                    followed.deleted = Some(newest);
                                } else if !(self.sink)(vec![self.deleted(&name, followed, newest, &done_to)]) {
                                    return;
                                }
                                continue;
                            }
                            let notice = StreamId::parse(payload);
                            if let (Some(notice), Some(last)) = (notice, followed.last) {
                                if notice <= last {
                                    followed.low = Some(followed.low.map_or(notice, |low| low.min(notice)));
                                }
                            }
                            self.read(&name, followed, &done_to);
                        }
                    }
                    first = done.recv() => {
                        let Some(first) = first else { break Leave::Closed };
                        let mut pages = Vec::new();
                        self.finish(&mut follows, first, &done_to, &mut pages);
                        while let Ok(more) = done.try_recv() {
                            self.finish(&mut follows, more, &done_to, &mut pages);
                        }
                        if !pages.is_empty() && !(self.sink)(pages) {
                            return;
                        }
                    }
                    _ = ping.tick() => {
                        let pong = tokio::time::timeout(REPLY_TIMEOUT, sink.ping()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break Leave::Lost;
                        }
                    }
                }
            };
            if let Leave::Closed = leave {
                return;
            }
            // Lost: every stream is read again from where it was once a new
            // connection has subscribed to it.
            self.outages.fetch_add(1, Ordering::Relaxed);
            self.health
                .down(format!("Lost the connection to Redis at {}", self.server));
            let lost_at = now_ms();
            for followed in follows.values_mut() {
                followed.subscribed = false;
                followed.outage_ms = Some(lost_at);
            }
            let wait = backoff.next_wait();
            if !self
                .pause(wait, &mut follows, &mut generation, &mut control)
                .await
            {
                return;
            }
        }
    }

    /// Waits `wait` out (a backoff while disconnected), noting control
    /// requests as they come, so that a follow asked for meanwhile is told
    /// where it starts at once. False when the control queue closed.
    async fn pause(
        &self,
        wait: Duration,
        follows: &mut HashMap<Arc<str>, Followed>,
        generation: &mut u64,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> bool {
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                request = control.recv() => match request {
                    Some(request) => {
                        self.apply(follows, generation, request);
                    }
                    None => return false,
                },
            }
        }
    }

    /// Notes a request; returns the stream a follow is for.
    fn apply(
        &self,
        follows: &mut HashMap<Arc<str>, Followed>,
        generation: &mut u64,
        request: Control,
    ) -> Option<Arc<str>> {
        match request {
            Control::Join { stream, .. } if follows.contains_key(&stream) => {
                if let Some(followed) = follows.get(&stream) {
                    self.place_unread(&stream, followed);
                }
                Some(stream)
            }
            Control::Follow { stream, from } | Control::Join { stream, from } => {
                *generation += 1;
                follows.insert(
                    stream.clone(),
                    Followed {
                        generation: *generation,
                        last: from,
                        reading: false,
                        dirty: false,
                        failing: false,
                        low: None,
                        // No mark (Redis was down): entries made since the
                        // follow was asked for are read too, as after an
                        // outage.
                        outage_ms: from.is_none().then(now_ms),
                        subscribed: false,
                        recent: VecDeque::new(),
                        deleted: None,
                    },
                );
                if let Some(followed) = follows.get(&stream) {
                    self.place_unread(&stream, followed);
                }
                Some(stream)
            }
            Control::Unfollow { stream } => {
                follows.remove(&stream);
                None
            }
        }
    }

    /// A follow whose mark could not be read (Redis down) says at once
    /// where it starts: it reads, once connected, every entry made since it
    /// was asked for (less the clock slack), so a `subscribe()` waiting for
    /// its position is not held for the outage. Nothing to say for a follow
    /// that knows its place, or has read.
    fn place_unread(&self, name: &Arc<str>, followed: &Followed) {
        if let (None, Some(asked)) = (followed.last, followed.outage_ms) {
            let _ = (self.sink)(vec![StreamPage::at(name.clone(), since(asked))]);
        }
    }

    /// Starts following a subscribed stream: says where it starts (when
    /// that is known) and reads what came since.
    fn begin(
        &self,
        name: &Arc<str>,
        followed: &mut Followed,
        done_to: &mpsc::UnboundedSender<Done>,
    ) -> Option<StreamPage> {
        self.read(name, followed, done_to);
        followed.last.map(|last| StreamPage::at(name.clone(), last))
    }

    /// Reads the stream past `last`, unless a read is in flight (then it
    /// reads again when that one ends).
    fn read(
        &self,
        name: &Arc<str>,
        followed: &mut Followed,
        done_to: &mpsc::UnboundedSender<Done>,
    ) {
        if followed.reading {
            followed.dirty = true;
            return;
        }
        followed.reading = true;
        followed.dirty = false;
        let pages = self.pages.clone();
        let stream = name.clone();
        let generation = followed.generation;
        let from = followed.last;
        let done_to = done_to.clone();
        // A follow whose position is an entry it delivered reads from that
        // entry on, to see that the server still has it (see `Read::Diverged`).
        let delivered = from.is_some() && followed.recent.back() == from.as_ref();
        tokio::spawn(async move {
            let result = match from {
                None => pages.newest(&stream).await.map(Read::Start),
                Some(from) => Self::read_on(&pages, &stream, from, delivered).await,
            };
            let _ = done_to.send(Done {
                stream,
                generation,
                from,
                result,
            });
        });
    }

    /// The read after `from`. The newest id is asked for only when nothing
    /// was read: it tells a stream that went back from one with nothing new.
    async fn read_on(
        pages: &Pages,
        stream: &str,
        from: StreamId,
        delivered: bool,
    ) -> redis::RedisResult<Read> {
        let (entries, present) = pages.after_checked(stream, from, READ_COUNT).await?;
        let newest = if entries.is_empty() {
            pages.newest(stream).await?
        } else {
            from
        };
        if delivered && !present {
            let below = pages
                .ids_up_to(stream, from, RECENT_IDS + READ_COUNT)
                .await?;
            return Ok(Read::Diverged { below, newest });
        }
        Ok(Read::After { entries, newest })
    }

    /// The stream went back (nothing after `from`, its newest entry
    /// `newest` before it): the follow goes on from before the first entry
    /// of its new timeline that can be placed.
    fn went_back(
        &self,
        name: &Arc<str>,
        followed: &mut Followed,
        from: StreamId,
        newest: StreamId,
        lost_track: bool,
        pages: &mut Vec<StreamPage>,
    ) {
        let mut back = newest;
        if let Some(low) = followed.low.take() {
            back = back.min(low.before());
        }
        if let Some(lost) = followed.outage_ms {
            back = back.min(since(lost));
        }
        let mut page = StreamPage::at(name.clone(), back);
        page.rewound_from = Some(from);
        page.diverged = lost_track;
        page.lost_track = lost_track;
        pages.push(page);
        followed.last = Some(back);
        followed.dirty = true;
    }

    /// Reads again after `RETRY_READ`.
    fn retry(
        &self,
        name: &Arc<str>,
        followed: &mut Followed,
        done_to: &mpsc::UnboundedSender<Done>,
    ) {
        followed.reading = true;
        followed.dirty = true;
        let stream = name.clone();
        let generation = followed.generation;
        let from = followed.last;
        let done_to = done_to.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETRY_READ).await;
            let _ = done_to.send(Done {
                stream,
                generation,
                from,
                result: Ok(Read::Retry),
            });
        });
    }

    /// A read ended: what it read goes to `pages`; reads again if needed.
    fn finish(
        &self,
        follows: &mut HashMap<Arc<str>, Followed>,
        done: Done,
        done_to: &mpsc::UnboundedSender<Done>,
        pages: &mut Vec<StreamPage>,
    ) {
        let name = done.stream.clone();
        let Some(followed) = follows.get_mut(&name) else {
            return;
        };
        if followed.generation != done.generation {
            return;
        }
        followed.reading = false;
        if let Some(newest) = followed.deleted.take() {
            // The stream was deleted while this read was in flight: what it
            // read before that is delivered; what it found after (nothing,
            // or a stream without the entry it read after) is not a stream
            // that went back.
            if let Ok(Read::After { entries, .. }) = &done.result {
                if let Some(from) = done.from.filter(|_| !entries.is_empty()) {
                    if let Some(page) = Self::took(&name, followed, from, entries) {
                        pages.push(page);
                    }
                }
            }
            if let Ok(Read::Start(start)) = done.result {
                followed.last.get_or_insert(start);
            }
            pages.push(self.deleted(&name, followed, newest, done_to));
            return;
        }
        if Self::absent(&done.result, followed) {
            // No stream at all, with no outage to explain it: deleted on
            // purpose (the notice that says so is on its way, on the other
            // connection), or by hand. The follow waits for the next
            // notice: the deletion's, or the first append's to the next
            // stream, which tells a stream that went back as before.
            followed.failing = false;
            if followed.dirty {
                self.read(&name, followed, done_to);
            }
            return;
        }
        match done.result {
            Err(err) => {
                if lasting(&err) && !followed.failing {
                    followed.failing = true;
                    pages.push(StreamPage::failed(
                        name.clone(),
                        format!(
                            "Cannot read the stream {:?} (\"XRANGE\") from Redis at {}: {err}",
                            &*name, self.server
                        ),
                        Some(&err),
                    ));
                }
                if connection_lost(&err) {
                    // The publisher's connection, idle meanwhile, may be
                    // dead too (see `publisher::Connection::outages`).
                    self.outages.fetch_add(1, Ordering::Relaxed);
                }
                self.retry(&name, followed, done_to);
                return;
            }
            Ok(Read::Retry) => {
                self.read(&name, followed, done_to);
                return;
            }
            Ok(Read::Diverged { below, newest }) => {
                let from = done.from.unwrap_or_default();
                followed.failing = false;
                let common = followed
                    .recent
                    .iter()
                    .rev()
                    .find(|id| below.contains(id))
                    .copied();
                // Go on after the newest entry both agree on: everything
                // after it on this server is undelivered. With none: a
                // stream with nothing after `from` went back (below); one
                // with nothing up to `from` lost its front past it (what was
                // trimmed or deleted past it may have been missed); one with
                // other entries up to `from` is another timeline, read from
                // the lowest entry delivered lately (what came before it
                // there may have been missed).
                let back = match common {
                    Some(common) => common,
                    None if newest < from => {
                        // After an outage, a new or restored server: what
                        // was written to it before the follow came back
                        // may have been missed.
                        let lost_track = followed.outage_ms.is_some();
                        followed.recent.clear();
                        self.went_back(&name, followed, from, newest, lost_track, pages);
                        followed.outage_ms = None;
                        if followed.dirty {
                            self.read(&name, followed, done_to);
                        }
                        return;
                    }
                    None if below.is_empty() => from,
                    None => followed
                        .recent
                        .iter()
                        .min()
                        .map_or(from, |low| low.before()),
                };
                let mut page = StreamPage::at(name.clone(), back);
                page.rewound_from = Some(from);
                page.diverged = true;
                page.lost_track = common.is_none();
                pages.push(page);
                // The next read checks `back` only if it was delivered.
                followed
                    .recent
                    .retain(|id| *id < back || common == Some(*id));
                followed.last = Some(back);
                followed.low = None;
                followed.dirty = true;
                followed.outage_ms = None;
            }
            Ok(Read::Start(newest)) => {
                let start = match followed.outage_ms.take() {
                    Some(asked) => newest.min(since(asked)),
                    None => newest,
                };
                followed.last = Some(start);
                followed.failing = false;
                followed.dirty = start < newest;
                pages.push(StreamPage::at(name.clone(), start));
            }
            Ok(Read::After { entries, newest }) => {
                let from = done.from.unwrap_or_default();
                let was_failing = std::mem::replace(&mut followed.failing, false);
                if entries.is_empty() && newest < from {
                    self.went_back(&name, followed, from, newest, false, pages);
                } else if entries.is_empty() {
                    if was_failing {
                        pages.push(StreamPage::at(name.clone(), from));
                    }
                } else {
                    let Some(page) = Self::took(&name, followed, from, &entries) else {
                        // Ids that do not parse or go back: a broken
                        // server; try again later rather than spin.
                        self.retry(&name, followed, done_to);
                        return;
                    };
                    pages.push(page);
                }
                followed.outage_ms = None;
            }
        }
        if followed.dirty {
            self.read(&name, followed, done_to);
        }
    }

    /// Whether a read found no stream at all (nothing after the id it read
    /// after, nothing up to it, no newest id) where one was followed, with
    /// no outage since.
    fn absent(result: &redis::RedisResult<Read>, followed: &Followed) -> bool {
        let nothing = match result {
            Ok(Read::After { entries, newest }) => {
                entries.is_empty() && *newest == StreamId::default()
            }
            Ok(Read::Diverged { below, newest }) => {
                below.is_empty() && *newest == StreamId::default()
            }
            _ => false,
        };
        nothing
            && followed.outage_ms.is_none()
            && followed.last.is_some_and(|last| last > StreamId::default())
    }

    /// The page of entries read after `from`, noted as delivered; `None`
    /// for ids that do not parse or go back (a broken server).
    fn took(
        name: &Arc<str>,
        followed: &mut Followed,
        from: StreamId,
        entries: &[(String, crate::core::stream_entry::RawFields)],
    ) -> Option<StreamPage> {
        let mut page = Page::default();
        for (id, fields) in entries {
            page.add(id, fields);
        }
        let read_to = page.last.filter(|read_to| *read_to > from)?;
        followed.last = Some(read_to);
        for (id, _) in &entries[entries.len().saturating_sub(RECENT_IDS)..] {
            if let Some(id) = StreamId::parse(id) {
                if followed.recent.len() == RECENT_IDS {
                    followed.recent.pop_front();
                }
                followed.recent.push_back(id);
            }
        }
        if entries.len() >= READ_COUNT {
            followed.dirty = true;
        }
        followed.low = None;
        Some(StreamPage::of(name.clone(), page))
    }

    /// A notice said the stream was deleted on purpose, its newest id
    /// `newest` then: the follow starts over at the beginning of the next
    /// stream of that name (nothing it delivered is looked for any more),
    /// and says so on a page; entries up to `newest` it had not read went
    /// with the stream. Called with no read in flight; reads what the next
    /// stream holds.
    fn deleted(
        &self,
        name: &Arc<str>,
        followed: &mut Followed,
        newest: StreamId,
        done_to: &mpsc::UnboundedSender<Done>,
    ) -> StreamPage {
        let mut page = StreamPage::at(name.clone(), StreamId::default());
        page.deleted = true;
        page.rewound_from = followed.last;
        page.lost_track = followed.last.is_none_or(|last| last < newest);
        followed.last = Some(StreamId::default());
        followed.recent.clear();
        followed.low = None;
        followed.outage_ms = None;
        followed.failing = false;
        self.read(name, followed, done_to);
        page
    }

    /// A lasting failure for every stream followed, once per run.
    fn fail_all(&self, follows: &mut HashMap<Arc<str>, Followed>, reason: &str) -> Vec<StreamPage> {
        follows
            .iter_mut()
            .filter(|(_, followed)| !followed.failing)
            .map(|(name, followed)| {
                followed.failing = true;
                StreamPage::failed(name.clone(), reason.to_string(), None)
            })
            .collect()
    }
}

/// Whether a (un)subscribe was answered in time.
async fn answered(request: impl std::future::Future<Output = redis::RedisResult<()>>) -> bool {
    matches!(
        tokio::time::timeout(REPLY_TIMEOUT, request).await,
        Ok(Ok(()))
    )
}

/// Reading after this id reads the entries made since `ms` (less the slack
/// for clocks that differ).
fn since(ms: u64) -> StreamId {
    StreamId {
        ms: ms.saturating_sub(OUTAGE_SLACK_MS),
        seq: 0,
    }
    .before()
}

/// The newest id in an `XREVRANGE … COUNT 1` reply (`0-0` for none).
pub fn newest_of(reply: Value) -> StreamId {
    entries_of(reply)
        .first()
        .and_then(|(id, _)| StreamId::parse(id))
        .unwrap_or_default()
}
