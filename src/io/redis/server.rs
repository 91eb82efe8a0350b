//! The link to one server (or one Sentinel group's master): the
//! publisher's queue, the follower's, and the pages pool, each job on
//! connections of its own (see [`super`]). A cluster link is one of these
//! per master ([`super::cluster_link`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::follower::{Control, Follower};
use super::health::{Health, HealthSink, LinkHealth};
use super::pages::Pages;
use super::publisher::{MarkFor, Publisher, Request};
use super::{reserve, Connector, OutcomeSink, PageSink, StreamPage};
use crate::core::stream_entry::{Page, StreamId};

/// The link: the publisher's queue, the follower's, and the pages pool.
pub struct ServerLink {
    server: String,
    /// The publisher's queue; `None` once closed.
    requests: Option<mpsc::UnboundedSender<Request>>,
    /// The follower's queue; `None` once closed.
    follows: Option<mpsc::UnboundedSender<Control>>,
    pending: Arc<AtomicUsize>,
    pages: Arc<Pages>,
    health: Arc<Health>,
}

impl ServerLink {
    /// Makes the link, and the publisher's and the follower's tasks for the
    /// caller to spawn; `shardable` for a master of a cluster, whose notices
    /// are sharded on Redis 7 or later (see [`super::notices`]).
    /// `on_shared_key` is given the stop-token key shared through Redis.
    pub fn new(
        connector: Connector,
        server: String,
        outcomes: OutcomeSink,
        pages: PageSink,
        health: HealthSink,
        on_shared_key: fn(&[u8]),
        shardable: bool,
    ) -> (
        ServerLink,
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
            shardable,
        };
        let follower = Follower {
            connector,
            server: server.clone(),
            pages: pool.clone(),
            sink: pages,
            outages,
            health: health.clone(),
            shardable,
        };
        let link = ServerLink {
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

    /// Queues a request that reports (a mark, a delete, a broadcast the
    /// caller checked), behind every earlier one; its outcome comes under
    /// its number in a [`super::PublishBatch`]. Fails with why it was
    /// refused at once (not appended).
    pub fn take(&self, request: Request) -> Result<(), String> {
        let size = request.size();
        reserve(&self.pending, size)?;
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
                Some(&err),
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
