//! The link to one Redis deployment, shared by every channel on it in this
//! process: the number of connections does not grow with the number of
//! channels. Three jobs, each on connections of its own, so that none waits
//! behind another's work:
//!
//! - **The publisher** ([`publisher`]): one task sends the broadcasts of
//!   every channel as pipelines of appends, in call order, and reports each
//!   one's fate, finding out what became of a pipeline whose reply was lost.
//! - **The follower** ([`follower`]): one pub/sub connection ([`notices`])
//!   hears of every entry appended to a stream with live subscribers here,
//!   and reads the entries from the stream itself, checking and encoding
//!   them off the JavaScript thread.
//! - **Pages** ([`pages`]): a small pool of connections for the follower's
//!   reads and resuming clients' backlogs (`XRANGE … COUNT`, one page at a
//!   time).
//!
//! So a process holds `2 +` [`pages::POOL`] connections per Redis, however
//! many channels it has; a channel with no subscribers here costs Redis
//! nothing beyond its stream (it is not subscribed to).
//!
//! A link to one server, or to the master of a Sentinel group, is a
//! [`ServerLink`]; a link to a Redis Cluster ([`cluster_link`]) is one of
//! those per master, with the map of the slots ([`cluster`]) and a router
//! that follows `MOVED`/`ASK` and failovers. [`link::Link`] is either, with
//! one surface, and numbers the requests that report.
//!
//! [`deployment`] reads every URL the link takes, into one type;
//! [`replies`] reads Redis's replies. Everything said about the server
//! names it without the userinfo of its URL: passwords never reach a
//! message.
//!
//! The link is plain Rust: the bindings give it the callbacks that reach
//! JavaScript ([`PageSink`], [`OutcomeSink`]) and spawn its tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::backoff::Backoff;
use crate::core::codes::Code;
use crate::core::stream_entry::{Page, StreamId};

pub mod cluster;
pub mod cluster_link;
pub mod connector;
pub mod deployment;
pub mod follower;
pub mod health;
pub mod link;
pub mod lost;
pub mod notices;
pub mod pages;
pub mod publisher;
pub mod replies;
pub mod scripts;
pub mod server;
pub mod stop_key;

pub use connector::{Connector, Tls};
pub use deployment::Deployment;
pub use health::LinkHealth;
pub use link::Link;
pub use publisher::Retention;
pub use server::ServerLink;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a pipeline of appends or a read may wait for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How the publisher's connects and the follower's reconnects back off.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
/// Bytes of broadcasts waiting for the publisher at most; past it,
/// `broadcast` is refused at once (not appended).
pub const MAX_PENDING_PUBLISH_BYTES: usize = 64 << 20;
/// Entries a stream is trimmed to (about), unless the channel says otherwise.
pub const DEFAULT_STREAM_MAX_LEN: u32 = 10_000;
/// How long a channel's stream lives after its last broadcast, unless the
/// channel says otherwise: a day. Why a day: a client away for less (a
/// laptop closed overnight, a deploy, a train) resumes exactly, as
/// `DEFAULT_STREAM_MAX_LEN` allows; a stream nobody has broadcast to for a
/// day (a document closed, a user gone) is no longer kept for ever, which
/// a server with a channel per document or per user otherwise pays for
/// every channel it ever made. A client that comes back later is told that
/// its resume is incomplete, as for entries trimmed away.
pub const DEFAULT_STREAM_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// How long a resuming client waits for its channel to start following the
/// stream before its stream is ended (it comes back later).
pub const RESUME_WAIT: Duration = Duration::from_secs(10);

/// Gets every run of pages the follower reads; returns false once nobody
/// listens (the follower stops). It must not block.
pub type PageSink = Box<dyn Fn(Vec<StreamPage>) -> bool + Send + Sync>;
/// Gets the outcomes of every pipeline's requests, in order. It must not
/// block.
pub type OutcomeSink = Box<dyn Fn(PublishBatch) + Send + Sync>;

/// What became of one request that reports (a broadcast, a mark asked for
/// by a channel, a delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: a broadcast's stream id, a mark's newest id, a delete's `"1"`
    /// (deleted) or `"0"` (there was no stream).
    Done(String),
    /// Not done, or not known to be: the `code` a caller reads (a
    /// broadcast's [`Code::RedisNotAppended`] or
    /// [`Code::RedisOutcomeUnknown`]; a mark's [`Code::RedisUnavailable`]
    /// or [`Code::RedisUnreadable`]; a delete's [`Code::RedisUnavailable`]
    /// or [`Code::RedisOutcomeUnknown`]), the `cause` the link acts on, and
    /// the `reason` in words, naming the server.
    Failed {
        code: Code,
        cause: Cause,
        reason: String,
    },
}

/// Why a request failed, as the link acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The server could not be reached.
    Unreachable,
    /// The server refused it (an error reply).
    Refused,
    /// A cluster node answered that the key's slot is elsewhere (`MOVED`,
    /// `ASK`): nothing was done; a cluster link reads its map again and
    /// sends it there.
    Redirected,
    /// Its reply was lost and the search for it did not find it. `tag`: a
    /// broadcast's producer tag where its fate stays unknown (a cluster
    /// link looks for it again on the master that takes over its slot),
    /// and `since_ms`, how far back to look.
    Lost { tag: Option<String>, since_ms: u64 },
    /// The link was closed, or held too much, before it was sent.
    NotSent,
}

/// The outcomes of a run of requests, of any channels on the link, each
/// with its number: one call back into JavaScript per pipeline, not one per
/// request.
///
/// # Numbers
///
/// Each request that reports is numbered when the link takes it, from 0, in
/// call order: JavaScript numbers what it waits for the same way, and
/// settles each outcome against the request of its number, so that an
/// outcome settled against the wrong request, or twice, is caught rather
/// than told to the wrong caller. A link to one server answers in call
/// order; a cluster link answers each master's requests in their order, and
/// the masters' in any order.
#[derive(Debug, Default)]
pub struct PublishBatch {
    pub outcomes: Vec<(u64, Outcome)>,
}

impl PublishBatch {
    fn new(len: usize) -> Self {
        PublishBatch {
            outcomes: Vec::with_capacity(len),
        }
    }

    fn appended(&mut self, number: u64, id: String) {
        self.outcomes.push((number, Outcome::Done(id)));
    }

    fn failed(&mut self, number: u64, code: Code, cause: Cause, reason: String) {
        self.outcomes.push((
            number,
            Outcome::Failed {
                code,
                cause,
                reason,
            },
        ));
    }
}

/// Entries read from the stream, checked and encoded (see [`Page`]), or why
/// they could not be read.
#[derive(Debug, Default)]
pub struct StreamPage {
    /// The stream it was read from.
    pub stream: Arc<str>,
    pub page: Page,
    /// Why the stream could not be read (then the page is empty).
    pub failure: Option<String>,
    /// The failure will not heal by retrying: no permission, a key of
    /// another type, a command the server does not know.
    pub lasting: bool,
    /// The id read after is not in the stream any more: entries were
    /// trimmed or deleted between it and this page.
    pub trimmed: bool,
    /// The follower found the stream behind the last id it had read (a
    /// new or restored Redis, a clock behind): that id. It goes on from
    /// `last`.
    pub rewound_from: Option<StreamId>,
    /// After an outage, the server's stream did not have the last id the
    /// follower had delivered: another timeline (a failover after a split
    /// brain). The follower goes on after the newest id both agree on.
    pub diverged: bool,
    /// ... and none of the ids it delivered last was there: entries between
    /// what it delivered and where it goes on may have been missed.
    pub lost_track: bool,
    /// A cluster node answered the read with `MOVED` or `ASK`: the stream's
    /// slot is elsewhere (a cluster link reads its map again, and moves the
    /// follow or reads there).
    pub redirected: bool,
    /// The stream was deleted on purpose (a channel's `deleteHistory()`, in
    /// any process): the follow starts over with the next stream of that
    /// name. `rewound_from` is where it had read up to; `lost_track` says
    /// whether entries it had not read yet went with the stream.
    pub deleted: bool,
}

impl StreamPage {
    fn of(stream: Arc<str>, page: Page) -> Self {
        StreamPage {
            stream,
            page,
            ..StreamPage::default()
        }
    }

    /// An empty page naming where reading goes on.
    fn at(stream: Arc<str>, last: StreamId) -> Self {
        StreamPage::of(
            stream,
            Page {
                last: Some(last),
                ..Page::default()
            },
        )
    }

    /// A page that says why the stream could not be read.
    fn failed(stream: Arc<str>, reason: String, err: Option<&redis::RedisError>) -> Self {
        StreamPage {
            stream,
            failure: Some(reason),
            lasting: err.is_none_or(replies::lasting),
            redirected: err.is_some_and(replies::redirected_error),
            ..StreamPage::default()
        }
    }
}

/// Takes `size` bytes of broadcasts into `pending`, or says why not: no
/// more than [`MAX_PENDING_PUBLISH_BYTES`] wait for Redis on one link.
fn reserve(pending: &AtomicUsize, size: usize) -> Result<(), String> {
    if pending.load(Ordering::Relaxed) + size > MAX_PENDING_PUBLISH_BYTES {
        return Err(format!(
            "More than {} MiB of broadcasts are waiting for Redis",
            MAX_PENDING_PUBLISH_BYTES >> 20
        ));
    }
    pending.fetch_add(size, Ordering::Relaxed);
    Ok(())
}

/// Milliseconds since the epoch, by this host's clock (`0` if it is set
/// before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
