//! The binding of the link to one Redis deployment ([`crate::io::redis`]),
//! shared by every channel on it: `RedisLink`, the pages it hands over
//! (`StreamPage`, each naming its stream), and the fates of broadcasts
//! (`PublishBatch`). It builds the callbacks that reach JavaScript and
//! spawns the link's tasks; the link itself is plain Rust.

use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, Function};
use napi_derive::napi;

use super::callback::{call, spawn, weak};
use super::error::{error, internal, Result};
use super::state::add_shared_stop_key;
use crate::core::codes::Code;
use crate::core::stream_entry::{ReadyEntry, StreamId};
use crate::core::topics;
use crate::io::redis::link::Sinks;
use crate::io::redis::{self as link, Deployment, Link};

/// TLS material for `rediss://`, in PEM, as Node's `tls.connect` takes it.
#[napi(object)]
pub struct RedisTls {
    pub ca: Option<Buffer>,
    pub cert: Option<Buffer>,
    pub key: Option<Buffer>,
}

/// A request that failed, or whose fate is unknown; see
/// [`link::Outcome::Failed`].
#[napi(object)]
pub struct PublishFailure {
    /// Its place in the batch's `ids`.
    pub index: u32,
    pub code: String,
    pub reason: String,
}

/// The outcomes of a run of requests, each with its number; see
/// [`link::PublishBatch`]. Compact for the seam: a number and an id each
/// (`""` where it failed), and the failures beside, usually none.
#[napi(object)]
pub struct PublishBatch {
    pub numbers: Vec<f64>,
    pub ids: Vec<String>,
    pub failures: Option<Vec<PublishFailure>>,
}

impl From<link::PublishBatch> for PublishBatch {
    fn from(batch: link::PublishBatch) -> Self {
        let mut numbers = Vec::with_capacity(batch.outcomes.len());
        let mut ids = Vec::with_capacity(batch.outcomes.len());
        let mut failures = Vec::new();
        for (number, outcome) in batch.outcomes {
            numbers.push(number as f64);
            match outcome {
                link::Outcome::Done(id) => ids.push(id),
                link::Outcome::Failed { code, reason, .. } => {
                    failures.push(PublishFailure {
                        index: ids.len() as u32,
                        code: code.as_str().to_string(),
                        reason,
                    });
                    ids.push(String::new());
                }
            }
        }
        PublishBatch {
            numbers,
            ids,
            failures: (!failures.is_empty()).then_some(failures),
        }
    }
}

/// Entries read from the stream, checked and encoded; see
/// [`link::StreamPage`]. Handed to JavaScript whole, and from there to the
/// channel, without crossing entry by entry.
#[napi]
pub struct StreamPage(link::StreamPage);

impl StreamPage {
    /// Takes the page's entries: their memory goes with the queued bytes,
    /// not whenever the garbage collector gets to the page.
    pub fn take_entries(&mut self) -> Vec<ReadyEntry> {
        std::mem::take(&mut self.0.page.entries)
    }

    /// The page's entries, shared (their frames are reference-counted).
    pub fn entries(&self) -> Vec<ReadyEntry> {
        self.0.page.entries.clone()
    }

    /// The key of the stream it was read from.
    pub fn stream_key(&self) -> Arc<str> {
        self.0.stream.clone()
    }

    /// The id reading goes on after.
    pub fn last_read(&self) -> Option<StreamId> {
        self.0.page.last
    }
}

#[napi]
impl StreamPage {
    /// The stream it was read from.
    #[napi(getter)]
    pub fn stream(&self) -> String {
        self.0.stream.to_string()
    }

    /// The id reading goes on after, or `null` if none was read.
    #[napi(getter)]
    pub fn last(&self) -> Option<String> {
        self.0.page.last.map(|id| id.to_string())
    }

    /// The id of the last entry that can be delivered, or `null`.
    #[napi(getter)]
    pub fn last_entry(&self) -> Option<String> {
        self.0.page.entries.last().map(|entry| entry.id.to_string())
    }

    /// How many entries were read, good or skipped.
    #[napi(getter)]
    pub fn read(&self) -> u32 {
        self.0.page.read as u32
    }

    /// The bytes of the entries that can be delivered, as frames.
    #[napi(getter)]
    pub fn bytes(&self) -> f64 {
        self.0
            .page
            .entries
            .iter()
            .map(|e| e.frame.len())
            .sum::<usize>() as f64
    }

    /// Whether the id read after is gone from the stream.
    #[napi(getter)]
    pub fn trimmed(&self) -> bool {
        self.0.trimmed
    }

    /// Why the stream could not be read, or `null`.
    #[napi(getter)]
    pub fn failure(&self) -> Option<String> {
        self.0.failure.clone()
    }

    /// Whether the failure will not heal by retrying.
    #[napi(getter)]
    pub fn lasting(&self) -> bool {
        self.0.lasting
    }

    /// The id the stream went back from, or `null`.
    #[napi(getter)]
    pub fn rewound_from(&self) -> Option<String> {
        self.0.rewound_from.map(|id| id.to_string())
    }

    /// After an outage, the server's stream was another timeline than the
    /// one delivered from (a failover after a split brain).
    #[napi(getter)]
    pub fn diverged(&self) -> bool {
        self.0.diverged
    }

    /// ... and none of the ids delivered last was on it: entries may have
    /// been missed.
    #[napi(getter)]
    pub fn lost_track(&self) -> bool {
        self.0.lost_track
    }

    /// The stream was deleted on purpose; see [`link::StreamPage::deleted`].
    #[napi(getter)]
    pub fn deleted(&self) -> bool {
        self.0.deleted
    }

    /// The entries skipped, `[id, reason, id, reason, …]`.
    #[napi]
    pub fn skipped(&self) -> Vec<String> {
        self.0
            .page
            .skipped
            .iter()
            .flat_map(|(id, reason)| [id.clone(), reason.to_string()])
            .collect()
    }
}

/// Whether a link reaches its Redis; see [`link::LinkHealth`].
#[napi(object)]
pub struct LinkHealth {
    pub connected: bool,
    /// Since when (ms since the epoch).
    pub since: f64,
    /// Why not: the last failure, or `null` before any attempt.
    pub reason: Option<String>,
    /// Its name: a master of a cluster's, in `masters`.
    pub server: Option<String>,
    /// For a Redis Cluster: each master's.
    pub masters: Option<Vec<LinkHealth>>,
}

impl LinkHealth {
    fn of(health: link::LinkHealth, server: Option<String>) -> Self {
        LinkHealth {
            connected: health.connected,
            since: health.since_ms as f64,
            reason: health.reason,
            server,
            masters: None,
        }
    }
}

#[napi]
pub struct RedisLink {
    link: Link,
}

impl RedisLink {
    pub fn link(&self) -> &Link {
        &self.link
    }
}

#[napi]
impl RedisLink {
    /// Makes the link for any deployment (one server, a Sentinel group's
    /// master, a Redis Cluster) and starts its tasks; nothing is connected
    /// yet (see [`RedisLink::mark`]). Fails (`ERR_SSE_REDIS_CONFIG`) only
    /// for a URL or TLS material that cannot be used. `on_outcomes` is
    /// called with every pipeline's [`PublishBatch`], `on_pages` with every
    /// run of pages the followers read, `on_health` with whether it is
    /// connected each time that changes, through weak thread-safe
    /// functions: JavaScript keeps the process alive while it waits for
    /// them.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        url: String,
        tls: Option<RedisTls>,
        on_outcomes: Function<PublishBatch, ()>,
        on_pages: Function<Vec<StreamPage>, ()>,
        on_health: Function<bool, ()>,
    ) -> Result<Self> {
        let deployment =
            Deployment::parse(&url).map_err(|why| error(Code::RedisConfig, why.0.to_string()))?;
        let server = deployment.name();
        let tls = tls.map(|tls| link::Tls {
            ca: tls.ca.map(|pem| pem.to_vec()),
            cert: tls.cert.map(|pem| pem.to_vec()),
            key: tls.key.map(|pem| pem.to_vec()),
        });
        let on_outcomes = weak(&on_outcomes).map_err(internal)?;
        let on_pages = weak(&on_pages).map_err(internal)?;
        let on_health = weak(&on_health).map_err(internal)?;
        let sinks = Sinks {
            outcomes: Box::new(move |fates| {
                call(&on_outcomes, PublishBatch::from(fates));
            }),
            pages: Box::new(move |pages| {
                call(&on_pages, pages.into_iter().map(StreamPage).collect())
            }),
            health: Box::new(move |connected| {
                call(&on_health, connected);
            }),
        };
        let link =
            Link::new(deployment, tls, sinks, add_shared_stop_key, spawn).map_err(|err| {
                // Ours say what a user reads; the redis crate's may quote the
                // URL, so only their category is said.
                let why = err
                    .detail()
                    .filter(|_| err.category().starts_with("unusable "));
                error(
                    Code::RedisConfig,
                    format!("{} ({server})", why.unwrap_or(err.category())),
                )
            })?;
        Ok(RedisLink { link })
    }

    /// The server, named without userinfo.
    #[napi(getter)]
    pub fn server(&self) -> String {
        self.link.server().to_string()
    }

    /// The topic of `stream` on this deployment: what a client's cursor in
    /// it is kept under (see [`crate::core::topics`]).
    #[napi(catch_unwind)]
    pub fn topic(&self, stream: String) -> String {
        topics::topic(&stream, self.link.tag()).to_string()
    }

    /// Whether the link reaches its Redis, as its tasks last found it; for
    /// a cluster, with each master's.
    #[napi(getter)]
    pub fn health(&self) -> LinkHealth {
        let mut health = LinkHealth::of(self.link.health(), None);
        let masters = self.link.masters();
        if !masters.is_empty() {
            health.masters = Some(
                masters
                    .into_iter()
                    .map(|(server, master)| LinkHealth::of(master, Some(server)))
                    .collect(),
            );
        }
        health
    }

    /// Queues a mark of `stream` (see [`Link::mark`]): its outcome comes
    /// with the others, under the number returned; `null` once the link is
    /// closed.
    #[napi(catch_unwind)]
    pub fn mark(&self, stream: String) -> Option<f64> {
        self.link
            .mark(Arc::from(stream))
            .map(|number| number as f64)
    }

    /// Queues the deletion of `stream` (see [`Link::delete`]): its outcome
    /// comes with the others, under the number returned; `null` once the
    /// link is closed.
    #[napi(catch_unwind)]
    pub fn delete(&self, stream: String) -> Option<f64> {
        self.link
            .delete(Arc::from(stream))
            .map(|number| number as f64)
    }

    /// Reads up to `count` entries of `stream` after `after` (a stream id),
    /// checking whether the stream was trimmed past it. When Redis cannot be
    /// read, the page is empty and says why in `failure`.
    #[napi]
    pub async fn read_page(
        &self,
        stream: String,
        after: String,
        count: u32,
    ) -> napi::Result<StreamPage> {
        Ok(StreamPage(
            self.link.read_page(Arc::from(stream), &after, count).await,
        ))
    }

    /// Starts following `stream` from its newest id at this place in the
    /// publisher's queue; its pages come to `on_pages`, the first an empty
    /// one whose `last` is where following starts.
    #[napi(catch_unwind)]
    pub fn follow(&self, stream: String) {
        self.link.follow(Arc::from(stream));
    }

    /// Stops following `stream`.
    #[napi(catch_unwind)]
    pub fn unfollow(&self, stream: String) {
        self.link.unfollow(Arc::from(stream));
    }

    /// Stops following, and the publishers once what is queued has gone.
    /// No task is aborted: a pipeline in flight keeps its fate.
    #[napi(catch_unwind)]
    pub fn close(&mut self) {
        self.link.close();
    }
}

impl Drop for RedisLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// A Redis URL, read (see [`Deployment`]): what it names, and how it is
/// named in messages.
#[napi(object)]
pub struct RedisDeployment {
    /// `"server"`, `"sentinel"` or `"cluster"`.
    pub kind: String,
    /// The URL without userinfo.
    pub server: String,
}

/// Reads a Redis URL; fails (`ERR_SSE_REDIS_CONFIG`) with why it cannot be
/// used, never echoing it.
#[napi(catch_unwind)]
pub fn redis_deployment(url: String) -> Result<RedisDeployment> {
    let deployment =
        Deployment::parse(&url).map_err(|why| error(Code::RedisConfig, why.0.to_string()))?;
    let kind = match deployment {
        Deployment::Server(_) => "server",
        Deployment::Sentinel(_) => "sentinel",
        Deployment::Cluster(_) => "cluster",
    };
    Ok(RedisDeployment {
        kind: kind.to_string(),
        server: deployment.name(),
    })
}
