//! The reader: a task follows the stream with `XREAD BLOCK` from the last
//! id it saw, reconnecting with backoff; each batch is checked and encoded
//! here, off the JavaScript thread ([`crate::core::stream_entry`]), and
//! handed over through a [`PageSink`]. It finds a stream that went back (its
//! newest id behind the reader's) and goes on from its end, saying so; an
//! error that retrying will not heal (no permission, a key of another
//! type) is handed over too, once per run of failures.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::replies::{connection_lost, entries_of, lasting, xread_entries};
use super::start_line::{lock, SharedStart};
use super::{Connector, PageSink, StreamPage, BACKOFF, REPLY_TIMEOUT};
use crate::core::stream_entry::{Page, StreamId};

/// How long one XREAD waits for new entries before asking again.
const BLOCK_MS: u64 = 2_000;
/// Entries the reader takes at most per XREAD.
const READ_COUNT: usize = 1_000;
/// How often the reader asks whether a pipeline sent before it started has
/// its reply (it starts before that pipeline's first entry).
const START_POLL: Duration = Duration::from_millis(2);

/// What the reader works with.
pub struct Reader {
    pub connector: Connector,
    pub stream: String,
    pub server: String,
    pub start: SharedStart,
    pub sink: PageSink,
}

/// Why reading stopped: Redis failed (reconnect), or nobody listens.
enum Stop {
    Reconnect,
    Gone,
}

/// Where the reader is.
struct Position {
    /// The last id read, once the reader has started.
    last: Option<StreamId>,
    /// A lasting failure was reported and nothing has been read since.
    failing: bool,
}

/// The newest id of a stream (`0-0` when it is empty or missing).
async fn newest_id(
    connection: &mut MultiplexedConnection,
    stream: &str,
) -> redis::RedisResult<StreamId> {
    let newest: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(connection)
        .await?;
    Ok(entries_of(newest)
        .first()
        .and_then(|(id, _)| StreamId::parse(id))
        .unwrap_or_default())
}

impl Reader {
    /// Follows the stream until nobody listens: XREAD in a loop from the
    /// last id seen, reconnecting with backoff whenever Redis fails. After
    /// every reconnect, and whenever a read finds nothing new, it compares
    /// the stream's newest id with its own: a stream that went back is
    /// followed on from its end (see [`Reader::rewind`]), never waited on
    /// until its ids pass the old ones.
    pub async fn follow(self) {
        let mut at = Position {
            last: None,
            failing: false,
        };
        let mut backoff = BACKOFF;
        let mut first = true;
        loop {
            if !first {
                tokio::time::sleep(backoff.next_wait()).await;
            }
            first = false;
            let Some((mut connection, from)) = self.reconnect(&mut at).await else {
                continue;
            };
            let Some(from) = from else {
                return;
            };
            backoff.reset();
            if let Stop::Gone = self.read_from(&mut connection, from, &mut at).await {
                return;
            }
        }
    }

    /// Connects and finds where reading goes on; `None` when Redis failed
    /// (try again after the backoff), `Some((_, None))` once nobody listens.
    async fn reconnect(
        &self,
        at: &mut Position,
    ) -> Option<(MultiplexedConnection, Option<StreamId>)> {
        let mut connection = match self
            .connector
            .connect(Duration::from_millis(BLOCK_MS) + REPLY_TIMEOUT)
            .await
        {
            Ok(connection) => connection,
            Err(err) => {
                self.failed(&mut at.failing, "AUTH", &err);
                return None;
            }
        };
        // Where the stream ends now, named by id, so that a restart of
        // Redis before the first entry loses nothing.
        let newest = match newest_id(&mut connection, &self.stream).await {
            Ok(newest) => newest,
            Err(err) => {
                self.failed(&mut at.failing, "XREVRANGE", &err);
                return None;
            }
        };
        let from = match at.last {
            None => {
                let start = self.start_at(newest).await;
                if !self.hand(StreamPage::at(start)) {
                    return Some((connection, None));
                }
                start
            }
            Some(seen) => match self.rewind(seen, newest) {
                Some(back) => back,
                None => {
                    // Readable again: said with an empty page.
                    if at.failing && !self.hand(StreamPage::at(seen)) {
                        return Some((connection, None));
                    }
                    seen
                }
            },
        };
        at.failing = false;
        self.read_to(&mut at.last, from);
        Some((connection, Some(from)))
    }

    /// Where the reader first starts, given the stream's end: waits while
    /// a pipeline sent before it started has no reply.
    async fn start_at(&self, newest: StreamId) -> StreamId {
        loop {
            if let Some(at) = lock(&self.start).reader_start(newest) {
                return at;
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    /// Reads on from `from` until Redis fails or nobody listens.
    async fn read_from(
        &self,
        connection: &mut MultiplexedConnection,
        mut from: StreamId,
        at: &mut Position,
    ) -> Stop {
        loop {
            let reply: redis::RedisResult<Value> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(from.to_string())
                .query_async(connection)
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(err) => {
                    self.failed(&mut at.failing, "XREAD", &err);
                    return Stop::Reconnect;
                }
            };
            let mut page = Page::default();
            for (id, fields) in xread_entries(reply) {
                page.add(&id, &fields);
            }
            let read = page.read;
            if read > 0 {
                // Entries whose ids do not parse: a broken server. Back off
                // rather than spin on them.
                let Some(read_to) = page.last else {
                    return Stop::Reconnect;
                };
                from = read_to;
                self.read_to(&mut at.last, from);
                if !self.hand(StreamPage::of(page)) {
                    return Stop::Gone;
                }
            }
            // Nothing new, or this process appended behind what was read:
            // has the stream gone back?
            let hinted = lock(&self.start).rewound_at.is_some();
            if read == 0 || hinted {
                let newest = match newest_id(connection, &self.stream).await {
                    Ok(newest) => newest,
                    Err(err) => {
                        self.failed(&mut at.failing, "XREVRANGE", &err);
                        return Stop::Reconnect;
                    }
                };
                if let Some(back) = self.rewind(from, newest) {
                    from = back;
                    self.read_to(&mut at.last, from);
                }
            }
        }
    }

    /// Hands a page over; false once nobody listens.
    fn hand(&self, page: StreamPage) -> bool {
        (self.sink)(page)
    }

    /// Says why the stream cannot be read, if retrying will not help, once
    /// per run of failures (`failing` says whether it was said); counts an
    /// outage for the publisher when the connection itself failed.
    fn failed(&self, failing: &mut bool, command: &str, err: &redis::RedisError) {
        if connection_lost(err) {
            lock(&self.start).outages += 1;
        }
        if !lasting(err) || *failing {
            return;
        }
        *failing = true;
        let reason = format!(
            "Cannot read the stream (\"{command}\") from Redis at {}: {err}",
            self.server
        );
        self.hand(StreamPage::failed(reason, true));
    }

    /// Notes that the reader has read up to `id`: its own `last`, and the
    /// publisher's guide to a stream that went back.
    fn read_to(&self, last: &mut Option<StreamId>, id: StreamId) {
        *last = Some(id);
        lock(&self.start).read_to = Some(id);
    }

    /// Where reading goes on after the stream went back: the stream's end,
    /// or earlier, before the first entry this process appended after it
    /// went back, so that nothing appended since is missed.
    fn rewind(&self, last: StreamId, newest: StreamId) -> Option<StreamId> {
        let hint = lock(&self.start).rewound_at.take();
        let back = match hint {
            Some(first) => Some(first.before().min(newest)),
            None => (newest < last).then_some(newest),
        }?;
        let mut page = StreamPage::at(back);
        page.rewound_from = Some(last);
        self.hand(page);
        Some(back)
    }
}
