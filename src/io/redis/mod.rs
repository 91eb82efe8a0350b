//! The link to one Redis deployment, shared by every channel on it in this
//! process: the number of connections does not grow with the number of
//! channels. Three jobs, each on connections of its own, so that none waits
//! behind another's work:
//!
//! - **The publisher** ([`publisher`]): one task sends the broadcasts of
//!   every channel as pipelines of appends, in call order, and reports each
//!   one's fate, finding out what became of a pipeline whose reply was lost.
//! - **The follower** ([`follower`]): one pub/sub connection hears of every
//!   entry appended to a stream with live subscribers here, and reads the
//!   entries from the stream itself, checking and encoding them off the
//!   JavaScript thread.
//! - **Pages** ([`pages`]): a small pool of connections for the follower's
//!   reads and resuming clients' backlogs (`XRANGE … COUNT`, one page at a
//!   time).
//!
//! So a process holds `2 +` [`pages::POOL`] connections per Redis, however
//! many channels it has; a channel with no subscribers here costs Redis
//! nothing beyond its stream (it is not subscribed to).
//!
//! A link to a Redis Cluster is a link per master: [`cluster`] says which
//! master holds a stream.
//!
//! [`deployment`] reads every URL the link takes, into one type;
//! [`replies`] reads Redis's replies. Everything said about the server
//! names it without the userinfo of its URL: passwords never reach a
//! message.
//!
//! The link is plain Rust: the bindings give it the callbacks that reach
//! JavaScript ([`PageSink`], [`OutcomeSink`]) and spawn its tasks.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::core::backoff::Backoff;
use crate::core::codes::Code;
use crate::core::stream_entry::{Page, StreamId};

pub mod cluster;
pub mod connector;
pub mod deployment;
pub mod follower;
pub mod health;
pub mod pages;
pub mod publisher;
pub mod replies;

pub use connector::{Connector, Tls};
pub use deployment::{server_name, Deployment};
use follower::{Control, Follower};
use health::Health;
pub use health::{HealthSink, LinkHealth};
use pages::Pages;
pub use publisher::Retention;
use publisher::{MarkFor, Publisher, Request};

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
    /// Not done, or not known to be, and why: a broadcast's
    /// [`Code::RedisNotAppended`] or [`Code::RedisOutcomeUnknown`]; a mark's
    /// [`Code::RedisUnavailable`] or [`Code::RedisUnreadable`]; a delete's
    /// [`Code::RedisUnavailable`] or [`Code::RedisOutcomeUnknown`].
    Failed { code: Code, reason: String },
}

/// The outcomes of a run of requests, of any channels on the link, in the
/// order they were queued: one call back into JavaScript per pipeline, not
/// one per request.
///
/// # Numbers
///
/// The requests that report are numbered from 0 in the order the link took
/// them, and `first` is the number of the first outcome here: batches come
/// in order, each starting where the last ended. JavaScript numbers what it
/// waits for the same way and checks `first` against it, so that an
/// outcome settled against the wrong request, or twice, is caught rather
/// than told to the wrong caller.
#[derive(Debug)]
pub struct PublishBatch {
    pub first: u64,
    pub outcomes: Vec<Outcome>,
}

impl PublishBatch {
    fn new(len: usize) -> Self {
        PublishBatch {
            first: 0,
            outcomes: Vec::with_capacity(len),
        }
    }

    fn appended(&mut self, id: String) {
        self.outcomes.push(Outcome::Done(id));
    }

    fn failed(&mut self, code: Code, reason: String) {
        self.outcomes.push(Outcome::Failed { code, reason });
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

    fn failed(stream: Arc<str>, reason: String, lasting: bool) -> Self {
        StreamPage {
            stream,
            failure: Some(reason),
            lasting,
            ..StreamPage::default()
        }
    }
}

/// The link: the publisher's queue, the follower's, and the pages pool.
pub struct Link {
    server: String,
    /// The publisher's queue; `None` once closed.
    requests: Option<mpsc::UnboundedSender<Request>>,
    /// The follower's queue; `None` once closed.
    follows: Option<mpsc::UnboundedSender<Control>>,
    pending: Arc<AtomicUsize>,
    pages: Arc<Pages>,
    health: Arc<Health>,
}

impl Link {
    /// Makes the link, and the publisher's and the follower's tasks for the
    /// caller to spawn. `on_shared_key` is given the stop-token key shared
    /// through Redis.
    pub fn new(
        connector: Connector,
        server: String,
        outcomes: OutcomeSink,
        pages: PageSink,
        health: HealthSink,
        on_shared_key: fn(&[u8]),
    ) -> (
        Link,
        impl Future<Output = ()> + Send + 'static,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let (requests, queue) = mpsc::unbounded_channel();
        let (follows, control) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let outages = Arc::new(AtomicU64::new(0));
        let pool = Arc::new(Pages::new(connector.clone()));
        let health = Arc::new(Health::new(health));
        let publisher = Publisher {
            connector: connector.clone(),
            server: server.clone(),
            outcomes,
            on_shared_key,
            pending: pending.clone(),
            outages: outages.clone(),
            health: health.clone(),
        };
        let follower = Follower {
            connector,
            server: server.clone(),
            pages: pool.clone(),
            sink: pages,
            outages,
            health: health.clone(),
        };
        let link = Link {
            server,
            requests: Some(requests),
            follows: Some(follows),
            pending,
            pages: pool,
            health,
        };
        (link, publisher.run(queue), follower.run(control))
    }

    /// The server, named without userinfo.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the link reaches its Redis, as its tasks last found it.
    pub fn health(&self) -> LinkHealth {
        self.health.now()
    }

    /// Queues a mark of `stream`: once the publisher is connected, the
    /// stream's newest id at this place in the queue, reported with the
    /// fates (in queue order), or why it could not be read. Returns false
    /// once the link is closed.
    pub fn mark(&self, stream: Arc<str>) -> bool {
        self.send(Request::Mark {
            stream,
            reply: MarkFor::Report,
        })
        .is_ok()
    }

    /// Queues the deletion of `stream`, behind every broadcast queued
    /// before: its outcome comes with the fates, in queue order (`"1"`
    /// deleted, `"0"` there was no stream). Returns false once the link is
    /// closed.
    pub fn delete(&self, stream: Arc<str>) -> bool {
        self.send(Request::Delete { stream }).is_ok()
    }

    /// Queues an event for `stream`, behind every earlier one; its fate
    /// comes back in a [`PublishBatch`], in queue order. Fails with why it
    /// was refused at once (not appended). The caller has checked the
    /// event.
    pub fn enqueue(
        &self,
        stream: Arc<str>,
        retention: Retention,
        data: String,
        event: Option<String>,
    ) -> Result<(), String> {
        let request = Request::Publish {
            stream,
            retention,
            data,
            event,
        };
        let size = request.size();
        if self.pending.load(Ordering::Relaxed) + size > MAX_PENDING_PUBLISH_BYTES {
            return Err(format!(
                "More than {} MiB of broadcasts are waiting for Redis",
                MAX_PENDING_PUBLISH_BYTES >> 20
            ));
        }
        self.pending.fetch_add(size, Ordering::Relaxed);
        self.send(request).map_err(|()| {
            self.pending.fetch_sub(size, Ordering::Relaxed);
            "The channel is closed".to_string()
        })
    }

    /// Starts following `stream` from its newest id at this place in the
    /// publisher's queue: every broadcast queued later is delivered. The
    /// pages come through the link's [`PageSink`], the first an empty one
    /// whose `last` is where following starts.
    pub fn follow(&self, stream: Arc<str>) {
        if let Some(follows) = &self.follows {
            let _ = self.send(Request::Mark {
                stream,
                reply: MarkFor::Follow(follows.clone()),
            });
        }
    }

    /// Starts following `stream` after `from`, an id it was followed up to
    /// elsewhere (on the master that held its slot before): what came since
    /// is read, not missed.
    pub fn follow_from(&self, stream: Arc<str>, from: StreamId) {
        if let Some(follows) = &self.follows {
            let _ = follows.send(Control::Follow {
                stream,
                from: Some(from),
            });
        }
    }

    /// Stops following `stream`, after every follow queued before: it goes
    /// through the publisher's queue, as follows do.
    pub fn unfollow(&self, stream: Arc<str>) {
        if let Some(follows) = &self.follows {
            let _ = self.send(Request::Mark {
                stream,
                reply: MarkFor::Unfollow(follows.clone()),
            });
        }
    }

    /// Reads up to `count` entries of `stream` after `after` (a stream id),
    /// checking whether the stream was trimmed past it. When Redis cannot be
    /// read, the page is empty and says why in `failure`.
    pub async fn read_page(&self, stream: Arc<str>, after: &str, count: u32) -> StreamPage {
        // JavaScript reads after stream ids only; anything else reads nothing.
        let Some(after) = StreamId::parse(after) else {
            return StreamPage::of(stream, Page::default());
        };
        match self.pages.read_after(&stream, after, count).await {
            Ok((read, continuous)) => StreamPage {
                trimmed: !continuous,
                ..StreamPage::of(stream, read)
            },
            Err(err) => StreamPage::failed(
                stream,
                format!("Cannot read (XRANGE) from Redis at {}: {err}", self.server),
                replies::lasting(&err),
            ),
        }
    }

    /// Stops the follower, and the publisher once what is queued has gone;
    /// later requests are refused.
    pub fn close(&mut self) {
        self.requests = None;
        self.follows = None;
    }

    fn send(&self, request: Request) -> Result<(), ()> {
        match &self.requests {
            Some(requests) => requests.send(request).map_err(|_| ()),
            None => Err(()),
        }
    }
}

/// Milliseconds since the epoch, by this host's clock (`0` if it is set
/// before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}
