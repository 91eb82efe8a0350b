//! The link a channel is given, whatever the deployment: to one server (or
//! the master of a Sentinel group, [`ServerLink`]) or to a Redis Cluster
//! ([`ClusterLink`]), with one surface, so that JavaScript holds one kind
//! of link. It numbers the requests that report, in call order (see
//! [`super::PublishBatch`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::cluster_link::ClusterLink;
use super::deployment::Deployment;
use super::health::{HealthSink, LinkHealth};
use super::publisher::{MarkFor, Request};
use super::{Connector, OutcomeSink, PageSink, Retention, ServerLink, StreamPage, Tls};
use crate::io::Spawn;

/// Where a link's results go: the callbacks that reach JavaScript.
pub struct Sinks {
    pub outcomes: OutcomeSink,
    pub pages: PageSink,
    pub health: HealthSink,
}

enum To {
    Server(ServerLink),
    Cluster(ClusterLink),
}

/// The link to one deployment.
pub struct Link {
    to: To,
    /// The deployment's tag (see [`Deployment::tag`]).
    tag: String,
    /// The number of the next request that reports. The link is called
    /// from one thread (JavaScript's); a number is taken only when the
    /// request is, and handed back, for its outcome to be settled against.
    next: AtomicU64,
}

impl Link {
    /// Makes the link and starts its tasks (with `spawn`); nothing is
    /// connected yet. Fails for TLS material that cannot be used.
    /// `on_shared_key` is given the stop-token key shared through Redis.
    pub fn new(
        deployment: Deployment,
        tls: Option<Tls>,
        sinks: Sinks,
        on_shared_key: fn(&[u8]),
        spawn: Spawn,
    ) -> redis::RedisResult<Link> {
        let tag = deployment.tag();
        let to = match deployment {
            Deployment::Cluster(cluster) => {
                if tls.is_some() {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "unusable cluster settings",
                        "TLS is not supported with Redis Cluster yet".to_string(),
                    )));
                }
                To::Cluster(ClusterLink::new(cluster, sinks, on_shared_key, spawn))
            }
            deployment => {
                let server = deployment.name();
                let connector = Connector::new(&deployment, tls)?;
                let (link, publisher, follower) = ServerLink::new(
                    connector,
                    server,
                    sinks.outcomes,
                    sinks.pages,
                    sinks.health,
                    on_shared_key,
                    false,
                );
                spawn(Box::pin(publisher));
                spawn(Box::pin(follower));
                To::Server(link)
            }
        };
        Ok(Link {
            to,
            tag,
            next: AtomicU64::new(0),
        })
    }

    /// The deployment, named without userinfo.
    pub fn server(&self) -> &str {
        match &self.to {
            To::Server(link) => link.server(),
            To::Cluster(link) => link.server(),
        }
    }

    /// The deployment's tag (see [`Deployment::tag`]).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Whether the link reaches Redis (a cluster: its map is known and
    /// every master is reached).
    pub fn health(&self) -> LinkHealth {
        match &self.to {
            To::Server(link) => link.health(),
            To::Cluster(link) => link.health(),
        }
    }

    /// For a cluster, each master (named) and whether it is reached.
    pub fn masters(&self) -> Vec<(String, LinkHealth)> {
        match &self.to {
            To::Server(_) => Vec::new(),
            To::Cluster(link) => link.masters(),
        }
    }

    /// Queues the request `make` makes with the next number: that number
    /// (its outcome comes under it), or why it was refused at once.
    fn take(&self, make: impl FnOnce(u64) -> Request) -> Result<u64, String> {
        let number = self.next.load(Ordering::Relaxed);
        let request = make(number);
        match &self.to {
            To::Server(link) => link.take(request),
            To::Cluster(link) => link.take(request),
        }?;
        self.next.store(number + 1, Ordering::Relaxed);
        Ok(number)
    }

    /// Queues a mark of `stream`: once connected, its newest id at this
    /// place in the queue (see [`super::publisher`]); its number, or `None`
    /// once the link is closed.
    pub fn mark(&self, stream: Arc<str>) -> Option<u64> {
        self.take(|number| Request::Mark {
            stream,
            reply: MarkFor::Report(number),
        })
        .ok()
    }

    /// Queues the deletion of `stream`, behind every broadcast queued before
    /// (its outcome `"1"` deleted, `"0"` there was none); its number, or
    /// `None` once the link is closed.
    pub fn delete(&self, stream: Arc<str>) -> Option<u64> {
        self.take(|number| Request::Delete { number, stream }).ok()
    }

    /// Queues a broadcast, checked by the caller, behind every earlier one;
    /// its number, or why it was refused at once (not appended).
    pub fn enqueue(
        &self,
        stream: Arc<str>,
        retention: Retention,
        data: String,
        event: Option<String>,
    ) -> Result<u64, String> {
        self.take(|number| Request::Publish {
            number,
            stream,
            retention,
            data,
            event,
        })
    }

    /// Starts following `stream` (see [`ServerLink::follow`]).
    pub fn follow(&self, stream: Arc<str>) {
        match &self.to {
            To::Server(link) => link.follow(stream),
            To::Cluster(link) => link.follow(stream),
        }
    }

    /// Stops following `stream`.
    pub fn unfollow(&self, stream: Arc<str>) {
        match &self.to {
            To::Server(link) => link.unfollow(stream),
            To::Cluster(link) => link.unfollow(stream),
        }
    }

    /// Reads a page of `stream` (see [`ServerLink::read_page`]).
    pub async fn read_page(&self, stream: Arc<str>, after: &str, count: u32) -> StreamPage {
        match &self.to {
            To::Server(link) => link.read_page(stream, after, count).await,
            To::Cluster(link) => link.read_page(stream, after, count).await,
        }
    }

    /// Stops following, and the publishers once what is queued has gone;
    /// later requests are refused.
    pub fn close(&mut self) {
        match &mut self.to {
            To::Server(link) => link.close(),
            To::Cluster(link) => link.close(),
        }
    }
}
