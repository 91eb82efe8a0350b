//! A channel's link to a Redis Stream, so that one channel spans processes
//! and hosts. Three connections, each with one job, so that none waits
//! behind another's work:
//!
//! - **The publisher** ([`publisher`]): one task sends broadcasts as
//!   pipelines of `XADD`s, in call order, and reports each one's fate.
//! - **The reader** ([`reader`]): a task follows the stream with `XREAD
//!   BLOCK`, checks and encodes what it reads off the JavaScript thread, and
//!   finds a stream that went back.
//! - **Pages** ([`pages`]): a resuming client's backlog, read with `XRANGE …
//!   COUNT` one page at a time, each from the entry the last one ended
//!   with, which proves nothing between was removed.
//!
//! [`start_line`] is where the publisher and the reader meet; [`replies`]
//! reads Redis's replies. Everything said about the server names it without
//! the userinfo of its URL: passwords never reach a message.
//!
//! The link is plain Rust: the bindings give it the callbacks that reach
//! JavaScript ([`PageSink`], [`OutcomeSink`]) and spawn its tasks.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::{mpsc, oneshot};

use crate::core::backoff::Backoff;
use crate::core::codes::Code;
use crate::core::stream_entry::{Page, StreamId};

pub mod pages;
pub mod publisher;
pub mod reader;
pub mod replies;
pub mod start_line;

use publisher::{Publisher, Request};
use reader::Reader;
use start_line::SharedStart;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a pipeline of XADDs or a page read may wait for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How the publisher's connects and the reader's reconnects back off.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
/// Bytes of broadcasts waiting for the publisher at most; past it,
/// `broadcast` is refused at once (not appended).
pub const MAX_PENDING_PUBLISH_BYTES: usize = 64 << 20;
/// Entries a stream is trimmed to (about), unless the channel says otherwise.
pub const DEFAULT_STREAM_MAX_LEN: u32 = 10_000;
/// How long a resuming client waits for the stream reader to start before
/// its stream is ended (it comes back later).
pub const RESUME_WAIT: Duration = Duration::from_secs(10);

/// Gets every page the reader reads; returns false once nobody listens
/// (the reader stops). It must not block.
pub type PageSink = Box<dyn Fn(StreamPage) -> bool + Send + Sync>;
/// Gets the fates of every pipeline's broadcasts. It must not block.
pub type OutcomeSink = Box<dyn Fn(PublishBatch) + Send + Sync>;

/// TLS material for `rediss://`, in PEM.
#[derive(Default)]
pub struct Tls {
    pub ca: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key: Option<Vec<u8>>,
}

/// A broadcast that was not appended, or whose fate is unknown.
#[derive(Debug)]
pub struct PublishFailure {
    /// Its place in the batch's `ids`.
    pub index: u32,
    /// [`Code::RedisNotAppended`] or [`Code::RedisOutcomeUnknown`].
    pub code: Code,
    pub reason: String,
}

/// The fate of a run of broadcasts, in the order they were queued: one
/// call back into JavaScript per pipeline, not one per broadcast.
#[derive(Debug)]
pub struct PublishBatch {
    /// Each broadcast's stream id; `""` where it failed.
    pub ids: Vec<String>,
    pub failures: Vec<PublishFailure>,
}

impl PublishBatch {
    fn new(len: usize) -> Self {
        PublishBatch {
            ids: Vec::with_capacity(len),
            failures: Vec::new(),
        }
    }

    fn appended(&mut self, id: String) {
        self.ids.push(id);
    }

    fn failed(&mut self, code: Code, reason: String) {
        self.failures.push(PublishFailure {
            index: self.ids.len() as u32,
            code,
            reason,
        });
        self.ids.push(String::new());
    }
}

/// Entries read from the stream, checked and encoded (see [`Page`]), or why
/// they could not be read.
#[derive(Debug, Default)]
pub struct StreamPage {
    pub page: Page,
    /// Why the stream could not be read (then the page is empty).
    pub failure: Option<String>,
    /// The failure will not heal by retrying: no permission, a key of
    /// another type, a command the server does not know.
    pub lasting: bool,
    /// The id read after is not in the stream any more: entries were
    /// trimmed or deleted between it and this page.
    pub trimmed: bool,
    /// The live reader found the stream behind the last id it had read (a
    /// new or restored Redis, a clock behind): that id. It goes on from
    /// `last`.
    pub rewound_from: Option<StreamId>,
}

impl StreamPage {
    fn of(page: Page) -> Self {
        StreamPage {
            page,
            ..StreamPage::default()
        }
    }

    /// An empty page naming where reading goes on.
    fn at(last: StreamId) -> Self {
        StreamPage::of(Page {
            last: Some(last),
            ..Page::default()
        })
    }

    fn failed(reason: String, lasting: bool) -> Self {
        StreamPage {
            failure: Some(reason),
            lasting,
            ..StreamPage::default()
        }
    }
}

/// The URL without its userinfo, query or fragment: how the server is named
/// in every message.
pub fn server_name(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

/// Opens connections to one server.
#[derive(Clone)]
pub struct Connector {
    client: redis::Client,
}

impl Connector {
    /// A connector for `url`; fails for a URL or TLS material that cannot
    /// be used (nothing is connected yet).
    pub fn new(url: &str, tls: Option<Tls>) -> redis::RedisResult<Self> {
        // rustls needs a process-wide crypto provider; another addon may
        // have installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match tls {
            None => redis::Client::open(url),
            Some(tls) => {
                let client_tls = match (tls.cert, tls.key) {
                    (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
                        client_cert,
                        client_key,
                    }),
                    _ => None,
                };
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls,
                        root_cert: tls.ca,
                    },
                )
            }
        }?;
        Ok(Connector { client })
    }

    async fn connect(&self, reply_timeout: Duration) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(reply_timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

/// One channel's link: the publisher's queue, what the reader and the
/// publisher share, and the connection for pages.
pub struct Link {
    connector: Connector,
    stream: String,
    server: String,
    /// The publisher's queue; `None` once closed.
    requests: Option<mpsc::UnboundedSender<Request>>,
    pending: Arc<AtomicUsize>,
    start: SharedStart,
    pages: pages::Pages,
}

impl Link {
    /// Makes the link, and the publisher's task for the caller to spawn.
    /// `on_shared_key` is given the stop-token key shared through Redis.
    pub fn new(
        connector: Connector,
        server: String,
        stream: String,
        max_len: u32,
        outcomes: OutcomeSink,
        on_shared_key: fn(&[u8]),
    ) -> (Link, impl Future<Output = ()> + Send + 'static) {
        let (requests, queue) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let start = SharedStart::default();
        let publisher = Publisher {
            connector: connector.clone(),
            stream: stream.clone(),
            max_len,
            server: server.clone(),
            start: start.clone(),
            outcomes,
            on_shared_key,
            pending: pending.clone(),
        };
        let link = Link {
            connector,
            stream,
            server,
            requests: Some(requests),
            pending,
            start,
            pages: pages::Pages::default(),
        };
        (link, publisher.run(queue))
    }

    /// The server, named without userinfo.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Resolves to `None` once the publisher is connected, or to why it
    /// could not connect.
    pub fn ready(&self) -> impl Future<Output = Option<String>> + Send + 'static {
        let (reply, outcome) = oneshot::channel();
        let closed = self.send(Request::Ready(reply)).is_err();
        async move {
            if closed {
                return Some("The channel is closed".to_string());
            }
            match outcome.await {
                Ok(Ok(())) => None,
                Ok(Err(reason)) => Some(reason),
                Err(_) => Some("The channel is closed".to_string()),
            }
        }
    }

    /// Queues an event for the stream, behind every earlier one; its fate
    /// comes back in a [`PublishBatch`], in queue order. Returns why it was
    /// refused at once (not appended), or `None` once queued. The caller has
    /// checked the event.
    pub fn enqueue(&self, data: String, event: Option<String>) -> Option<String> {
        let request = Request::Publish { data, event };
        let size = request.size();
        if self.pending.load(Ordering::Relaxed) + size > MAX_PENDING_PUBLISH_BYTES {
            return Some(format!(
                "More than {} MiB of broadcasts are waiting for Redis",
                MAX_PENDING_PUBLISH_BYTES >> 20
            ));
        }
        self.pending.fetch_add(size, Ordering::Relaxed);
        match self.send(request) {
            Ok(()) => None,
            Err(()) => {
                self.pending.fetch_sub(size, Ordering::Relaxed);
                Some("The channel is closed".to_string())
            }
        }
    }

    /// Reads up to `count` entries after `after` (a stream id), checking
    /// whether the stream was trimmed past it. When Redis cannot be read,
    /// the page is empty and says why in `failure`.
    pub async fn read_page(&self, after: &str, count: u32) -> StreamPage {
        // JavaScript reads after stream ids only; anything else reads nothing.
        let Some(after) = StreamId::parse(after) else {
            return StreamPage::default();
        };
        match self
            .pages
            .read_after(&self.connector, &self.stream, after, count)
            .await
        {
            Ok((read, continuous)) => StreamPage {
                trimmed: !continuous,
                ..StreamPage::of(read)
            },
            Err(err) => StreamPage::failed(
                format!("Cannot read (XRANGE) from Redis at {}: {err}", self.server),
                replies::lasting(&err),
            ),
        }
    }

    /// The reader's task, for the caller to spawn: it follows the stream
    /// from its current end. `sink` first gets an empty page whose `last`
    /// is that end, then every batch.
    pub fn reader(&self, sink: PageSink) -> impl Future<Output = ()> + Send + 'static {
        Reader {
            connector: self.connector.clone(),
            stream: self.stream.clone(),
            server: self.server.clone(),
            start: self.start.clone(),
            sink,
        }
        .follow()
    }

    /// Stops the publisher once what is queued has gone; later requests are
    /// refused.
    pub fn close(&mut self) {
        self.requests = None;
    }

    fn send(&self, request: Request) -> Result<(), ()> {
        match &self.requests {
            Some(requests) => requests.send(request).map_err(|_| ()),
            None => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_named_without_secrets() {
        assert_eq!(
            server_name("redis://user:s3cret-pass@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            server_name("rediss://:pw@cache.example:6380/?protocol=resp3#x"),
            "rediss://cache.example:6380/"
        );
        assert!(!server_name("not a url with pw").contains("pw"));
    }
}
