//! The link to a Redis Cluster: a [`ServerLink`] per master, the map of the
//! 16,384 slots to them, and one task, the router, that sends each request
//! to the master of its stream's slot. So a stream's requests are one queue
//! on one master, in call order, and a master that fails stops only the
//! channels of its slots.
//!
//! # The map
//!
//! Read when the link is made ([`cluster::discover`]), every
//! [`REFRESH_EVERY`], and again when a request meets a redirect or a master
//! that cannot be reached (at most every [`REDISCOVER`]). Until it is first
//! read, requests wait in call order; a reading that fails fails the
//! broadcasts, marks and deletes waiting (not appended; unavailable), but
//! not the follows, which wait for the next reading that succeeds. A stream's
//! slot is computed when it is needed, never remembered: a process that
//! makes a channel per document holds nothing per stream name it ever saw.
//!
//! # Redirects
//!
//! A request that a node sends elsewhere ([`Cause::Redirected`]: `MOVED`,
//! `ASK`) was not done. It is sent again, once a reading of the map begun
//! after it has ended, to the master named then, up to [`MAX_REDIRECTS`]
//! times. The stream's later requests wait behind it, and it waits for
//! those already in flight to the old master, so that the call order stays
//! the stream's order. A follower's read sent elsewhere moves the follow to
//! the slot's new master, from where it had read up to: what came since is
//! read there, not missed.
//!
//! # Failover
//!
//! A broadcast whose reply was lost, and whose fate the master's link could
//! not learn within its wait ([`Cause::Lost`], with its producer tag), is
//! looked for again once the map names another master for its slot (a
//! replica promoted): found there, it was appended; missing, while nothing
//! listens where the old master was (it cannot run what it held), it was
//! not appended, and it is reported so. An old master that still answers,
//! or a slot that stays with the same master for [`LOST_WAIT`], leaves its
//! fate unknown.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::cluster::{self, SlotRange, SLOTS};
use super::deployment::{Cluster, Deployment};
use super::health::{Health, LinkHealth};
use super::link::Sinks;
use super::lost::{find_tags, Found, Sent};
use super::publisher::Request;
use super::{
    reserve, Cause, Connector, Outcome, OutcomeSink, PageSink, PublishBatch, ServerLink,
    StreamPage, REPLY_TIMEOUT,
};
use crate::core::codes::Code;
use crate::core::stream_entry::StreamId;
use crate::io::Spawn;

/// How often the map is read again, in case the cluster changed without a
/// request noticing (a replica promoted in place of a master that died).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// The least time between two readings asked for by failures.
pub const REDISCOVER: Duration = Duration::from_millis(500);
/// How many times a request sent elsewhere is sent again.
pub const MAX_REDIRECTS: u32 = 3;
/// How long a broadcast whose fate is unknown waits for the map to name
/// another master for its slot, before it is reported unknown.
pub const LOST_WAIT: Duration = Duration::from_secs(30);
/// How long the master a failover left behind is given to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The link to a cluster, as JavaScript's thread holds it.
pub struct ClusterLink {
    server: String,
    /// The router's queue; `None` once closed.
    inbox: Option<mpsc::UnboundedSender<Ask>>,
    /// Bytes of broadcasts the link holds (queued, or kept to be sent
    /// again until their fate is known).
    pending: Arc<AtomicUsize>,
    shared: Arc<Shared>,
}

/// What the router shares with the link's callers.
struct Shared {
    map: RwLock<Option<Arc<Map>>>,
    health: Health,
}

impl Shared {
    /// The map as it stands, if one was read.
    fn map(&self) -> Option<Arc<Map>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_map(&self, map: Option<Arc<Map>>) {
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = map;
    }
}

/// The map: a link per master, and each slot's master (an index, or
/// `u16::MAX` for a slot no master holds).
struct Map {
    masters: Vec<Arc<Master>>,
    slots: Vec<u16>,
}

impl Map {
    fn master_of(&self, stream: &str) -> Option<&Arc<Master>> {
        let slot = cluster::slot_of(stream.as_bytes());
        let index = *self.slots.get(usize::from(slot))?;
        self.masters.get(usize::from(index))
    }
}

/// One master: its URL (with the cluster's userinfo) and its link. Dropped
/// when no map and no request holds it: its queues close, and what it
/// holds still goes.
struct Master {
    url: String,
    link: ServerLink,
}

/// A request that reports, as the router holds it until its fate is known:
/// the publisher's request (sent again as it is after a redirect), and how
/// many times it was sent elsewhere.
struct Held {
    request: Request,
    tries: u32,
}

impl Held {
    fn new(request: Request) -> Self {
        Held { request, tries: 0 }
    }

    fn stream(&self) -> &Arc<str> {
        self.request.stream()
    }

    /// Its number: every request the router holds reports.
    fn number(&self) -> u64 {
        self.request.number().unwrap_or_default()
    }

    fn is_broadcast(&self) -> bool {
        matches!(self.request, Request::Publish { .. })
    }

    /// Its outcome when it cannot be sent: `reason` says why.
    fn failed(&self, cause: Cause, reason: String) -> Outcome {
        let code = if self.is_broadcast() {
            Code::RedisNotAppended
        } else {
            Code::RedisUnavailable
        };
        Outcome::Failed {
            code,
            cause,
            reason,
        }
    }
}

/// What the router is asked, or told.
enum Ask {
    /// A request that reports, from JavaScript, in call order.
    Request(Held),
    Follow(Arc<str>),
    Unfollow(Arc<str>),
    /// Outcomes from a master's link.
    Outcomes(PublishBatch),
    /// A follower's read that a node sent elsewhere: the master it was
    /// read on (its URL), and the page.
    Redirected(String, StreamPage),
    /// A reading of the map ended (its number).
    Mapped(u64, Result<Vec<SlotRange>, String>),
    /// Answer once a reading of the map begun after this has ended.
    FreshMap(oneshot::Sender<()>),
    /// A master's link found its server reached, or not.
    Health,
    /// What a lost broadcast's search on the slot's new master found.
    Found(u64, Option<String>, String),
    Close,
}

/// A stream with requests in flight, or sent elsewhere.
#[derive(Default)]
struct Stream {
    inflight: usize,
    moving: Option<Moving>,
}

/// What waits for a stream whose requests were sent elsewhere: those, in
/// call order (by number), and the stream's requests made since.
struct Moving {
    /// The reading of the map that must end before they go.
    reading: u64,
    mapped: bool,
    again: BTreeMap<u64, Held>,
    later: Vec<Held>,
}

/// A broadcast whose fate its master's link could not learn.
struct Lost {
    held: Held,
    master: String,
    tag: String,
    since_ms: u64,
    outcome: Outcome,
    until: Instant,
    searching: bool,
}

impl ClusterLink {
    /// Makes the link and starts its router; the map is asked for at once.
    pub fn new(cluster: Cluster, sinks: Sinks, on_shared_key: fn(&[u8]), spawn: Spawn) -> Self {
        let server = Deployment::Cluster(cluster.clone()).name();
        let (inbox, queue) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            map: RwLock::new(None),
            health: Health::new(sinks.health),
        });
        let router = Router {
            cluster,
            server: server.clone(),
            shared: shared.clone(),
            inbox: inbox.clone(),
            outcomes: sinks.outcomes,
            pages: Arc::new(sinks.pages),
            on_shared_key,
            spawn,
            pending: pending.clone(),
            map: None,
            map_failure: None,
            waiting: VecDeque::new(),
            inflight: HashMap::new(),
            streams: HashMap::new(),
            follows: HashMap::new(),
            positions: Arc::new(Mutex::new(HashMap::new())),
            redirected: Vec::new(),
            fresh: Vec::new(),
            lost: HashMap::new(),
            begun: 0,
            discovering: false,
            again: false,
            last_reading: None,
            closed: false,
        };
        spawn(Box::pin(router.run(queue)));
        ClusterLink {
            server,
            inbox: Some(inbox),
            pending,
            shared,
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Connected when the map is known and every master's link is.
    pub fn health(&self) -> LinkHealth {
        self.shared.health.now()
    }

    /// Each master of the map, named, with its link's health.
    pub fn masters(&self) -> Vec<(String, LinkHealth)> {
        match self.shared.map() {
            Some(map) => map
                .masters
                .iter()
                .map(|master| (master.link.server().to_string(), master.link.health()))
                .collect(),
            None => Vec::new(),
        }
    }

    fn ask(&self, ask: Ask) -> bool {
        self.inbox
            .as_ref()
            .is_some_and(|inbox| inbox.send(ask).is_ok())
    }

    /// Queues a request that reports, for the master of its stream's slot
    /// (see [`ServerLink::take`]).
    pub fn take(&self, request: Request) -> Result<(), String> {
        let size = request.size();
        reserve(&self.pending, size)?;
        if self.ask(Ask::Request(Held::new(request))) {
            Ok(())
        } else {
            self.pending.fetch_sub(size, Ordering::Relaxed);
            Err("The channel is closed".to_string())
        }
    }

    pub fn follow(&self, stream: Arc<str>) {
        self.ask(Ask::Follow(stream));
    }

    pub fn unfollow(&self, stream: Arc<str>) {
        self.ask(Ask::Unfollow(stream));
    }

    /// Reads a page of `stream` on the master of its slot; one that a node
    /// sends elsewhere is read again after a fresh reading of the map, up
    /// to [`MAX_REDIRECTS`] times.
    pub async fn read_page(&self, stream: Arc<str>, after: &str, count: u32) -> StreamPage {
        let mut tries = 0;
        loop {
            let map = match self.shared.map() {
                Some(map) => map,
                None => {
                    self.fresh_map().await;
                    match self.shared.map() {
                        Some(map) => map,
                        None => {
                            let reason = self.health().reason.unwrap_or_else(|| {
                                format!("No map of the Redis Cluster at {}", self.server)
                            });
                            return StreamPage::failed(stream, reason, None);
                        }
                    }
                }
            };
            let Some(master) = map.master_of(&stream).cloned() else {
                return StreamPage::failed(stream, self.no_master(), None);
            };
            drop(map);
            let page = master.link.read_page(stream.clone(), after, count).await;
            if !page.redirected || tries >= MAX_REDIRECTS {
                return page;
            }
            tries += 1;
            self.fresh_map().await;
        }
    }

    fn no_master(&self) -> String {
        format!(
            "No master of the Redis Cluster at {} holds the stream's slot",
            self.server
        )
    }

    /// Resolves once a reading of the map begun after this call has ended
    /// (at once if the link is closed).
    async fn fresh_map(&self) {
        let (done, wait) = oneshot::channel();
        if self.ask(Ask::FreshMap(done)) {
            let _ = wait.await;
        }
    }

    /// Stops following, and the masters once what they hold has gone;
    /// later requests are refused.
    pub fn close(&mut self) {
        if let Some(inbox) = self.inbox.take() {
            let _ = inbox.send(Ask::Close);
        }
    }
}

impl Drop for ClusterLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// The router's state: one task owns it.
struct Router {
    cluster: Cluster,
    server: String,
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedSender<Ask>,
    outcomes: OutcomeSink,
    pages: Arc<PageSink>,
    on_shared_key: fn(&[u8]),
    spawn: Spawn,
    pending: Arc<AtomicUsize>,
    map: Option<Arc<Map>>,
    /// Why the map could not be read, while there is none.
    map_failure: Option<String>,
    /// Requests that came before the map was known, in call order.
    waiting: VecDeque<Held>,
    /// Requests sent to a master, by number, until their fate is known.
    inflight: HashMap<u64, (Arc<Master>, Held)>,
    streams: HashMap<Arc<str>, Stream>,
    /// Streams followed, and the master each is followed on (`None` while
    /// no master holds its slot, or no map is known).
    follows: HashMap<Arc<str>, Option<Arc<Master>>>,
    /// Where each followed stream has been read up to (from the pages the
    /// masters' followers hand over; `None` before the first), to follow it
    /// on from there elsewhere. Entries are made and removed here only.
    positions: Arc<Mutex<HashMap<Arc<str>, Option<StreamId>>>>,
    /// Follower reads sent elsewhere, waiting for a reading begun after
    /// them: (that reading, the master read on, the page).
    redirected: Vec<(u64, String, StreamPage)>,
    /// Callers waiting for a reading begun after they asked.
    fresh: Vec<(u64, oneshot::Sender<()>)>,
    lost: HashMap<u64, Lost>,
    /// Readings of the map begun.
    begun: u64,
    discovering: bool,
    /// Another reading is wanted once the one under way ends.
    again: bool,
    last_reading: Option<Instant>,
    closed: bool,
}

impl Router {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Ask>) {
        self.discover();
        let mut refresh = tokio::time::interval(REFRESH_EVERY);
        refresh.tick().await;
        let mut retry: Option<Instant> = None;
        loop {
            let retry_at = retry.unwrap_or_else(|| Instant::now() + REFRESH_EVERY);
            tokio::select! {
                ask = queue.recv() => {
                    let Some(ask) = ask else {
                        self.close();
                        if self.done() {
                            return;
                        }
                        continue;
                    };
                    self.on(ask);
                }
                _ = refresh.tick() => {
                    if !self.closed {
                        self.discover();
                    }
                }
                _ = tokio::time::sleep_until(retry_at), if retry.is_some() => {
                    retry = None;
                    self.discover();
                }
            }
            if self.closed && self.done() {
                return;
            }
            // A reading wanted sooner than REDISCOVER after the last one.
            if self.again && !self.discovering && retry.is_none() {
                let at = self
                    .last_reading
                    .map_or_else(Instant::now, |last| last + REDISCOVER);
                retry = Some(at);
            }
        }
    }

    /// Nothing is left to settle.
    fn done(&self) -> bool {
        self.inflight.is_empty() && self.lost.is_empty() && self.waiting.is_empty()
    }

    fn on(&mut self, ask: Ask) {
        match ask {
            Ask::Request(held) => self.route(held),
            Ask::Follow(stream) => self.follow(stream),
            Ask::Unfollow(stream) => self.unfollow(&stream),
            Ask::Outcomes(batch) => self.outcomes_in(batch),
            Ask::Redirected(from, page) => {
                self.redirected.push((self.next_reading(), from, page));
                self.want_reading();
            }
            Ask::Mapped(reading, result) => self.mapped(reading, result),
            Ask::FreshMap(done) => {
                if self.closed {
                    let _ = done.send(());
                } else {
                    self.fresh.push((self.next_reading(), done));
                    self.want_reading();
                }
            }
            Ask::Health => self.health(),
            Ask::Found(number, id, master) => self.found(number, id, &master),
            Ask::Close => self.close(),
        }
    }

    /// The number of the first reading that begins from now on.
    fn next_reading(&self) -> u64 {
        self.begun + 1
    }

    /// A reading is wanted: now, if none is under way and the last ended
    /// long enough ago; otherwise as soon as that allows.
    fn want_reading(&mut self) {
        let recent = self
            .last_reading
            .is_some_and(|last| last.elapsed() < REDISCOVER);
        if self.discovering || recent {
            self.again = true;
        } else {
            self.discover();
        }
    }

    /// Begins a reading of the map, unless one is under way.
    fn discover(&mut self) {
        if self.discovering {
            self.again = true;
            return;
        }
        self.discovering = true;
        self.again = false;
        self.begun += 1;
        let reading = self.begun;
        let cluster = self.cluster.clone();
        let inbox = self.inbox.clone();
        (self.spawn)(Box::pin(async move {
            let result = cluster::discover(&cluster).await;
            let _ = inbox.send(Ask::Mapped(reading, result));
        }));
    }

    fn report(&self, outcomes: Vec<(u64, Outcome)>) {
        if !outcomes.is_empty() {
            (self.outcomes)(PublishBatch { outcomes });
        }
    }

    /// A request's fate is known: what it held is let go.
    fn settled(&self, held: &Held) {
        self.pending
            .fetch_sub(held.request.size(), Ordering::Relaxed);
    }

    fn route(&mut self, held: Held) {
        if self.closed {
            let outcome = held.failed(Cause::NotSent, "The channel is closed".to_string());
            self.settled(&held);
            self.report(vec![(held.number(), outcome)]);
            return;
        }
        let Some(map) = self.map.clone() else {
            self.waiting.push_back(held);
            self.want_reading();
            return;
        };
        if let Some(moving) = self
            .streams
            .get_mut(held.stream())
            .and_then(|stream| stream.moving.as_mut())
        {
            moving.later.push(held);
            return;
        }
        self.send(&map, held);
    }

    /// Sends a request to the master of its stream's slot.
    fn send(&mut self, map: &Map, held: Held) {
        let Some(master) = map.master_of(held.stream()).cloned() else {
            let reason = format!(
                "No master of the Redis Cluster at {} holds the stream's slot",
                self.server
            );
            let outcome = held.failed(Cause::Unreachable, reason);
            self.settled(&held);
            self.report(vec![(held.number(), outcome)]);
            return;
        };
        let taken = master.link.take(held.request.clone());
        match taken {
            Ok(()) => {
                self.streams
                    .entry(held.stream().clone())
                    .or_default()
                    .inflight += 1;
                self.inflight.insert(held.number(), (master, held));
            }
            Err(reason) => {
                let outcome = held.failed(Cause::NotSent, reason);
                self.settled(&held);
                self.report(vec![(held.number(), outcome)]);
            }
        }
    }

    fn follow(&mut self, stream: Arc<str>) {
        if self.closed {
            return;
        }
        if let Some(on) = self.follows.get(&stream) {
            // Followed already: a channel that joins is told where the
            // follow is by the master's link.
            if let Some(master) = on {
                master.link.follow(stream);
            }
            return;
        }
        let master = self
            .map
            .as_ref()
            .and_then(|map| map.master_of(&stream).cloned());
        if let Some(master) = &master {
            master.link.follow(stream.clone());
        } else {
            self.want_reading();
        }
        self.positions_of().insert(stream.clone(), None);
        self.follows.insert(stream, master);
    }

    fn unfollow(&mut self, stream: &Arc<str>) {
        if let Some(Some(master)) = self.follows.remove(stream) {
            master.link.unfollow(stream.clone());
        }
        self.positions_of().remove(stream);
    }

    fn positions_of(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Option<StreamId>>> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Outcomes from a master: reported, but for requests sent elsewhere
    /// (sent again once the map is read again) and broadcasts whose fate
    /// is unknown (looked for on the slot's next master).
    fn outcomes_in(&mut self, batch: PublishBatch) {
        let mut out = Vec::with_capacity(batch.outcomes.len());
        let mut reread = false;
        let mut touched = Vec::new();
        for (number, outcome) in batch.outcomes {
            let Some((master, mut held)) = self.inflight.remove(&number) else {
                out.push((number, outcome));
                continue;
            };
            let stream = held.stream().clone();
            if let Some(state) = self.streams.get_mut(&stream) {
                state.inflight = state.inflight.saturating_sub(1);
            }
            touched.push(stream.clone());
            match &outcome {
                Outcome::Failed {
                    cause: Cause::Redirected,
                    ..
                } if held.tries < MAX_REDIRECTS && !self.closed => {
                    held.tries += 1;
                    let reading = self.next_reading();
                    let state = self.streams.entry(stream).or_default();
                    let moving = state.moving.get_or_insert_with(|| Moving {
                        reading,
                        mapped: false,
                        again: BTreeMap::new(),
                        later: Vec::new(),
                    });
                    moving.again.insert(number, held);
                    reread = true;
                    continue;
                }
                Outcome::Failed {
                    cause: Cause::Unreachable,
                    ..
                } => reread = true,
                Outcome::Failed {
                    code: Code::RedisOutcomeUnknown,
                    cause:
                        Cause::Lost {
                            tag: Some(tag),
                            since_ms,
                        },
                    ..
                } if held.is_broadcast() && !self.closed => {
                    self.lost.insert(
                        number,
                        Lost {
                            tag: tag.clone(),
                            since_ms: *since_ms,
                            master: master.url.clone(),
                            outcome: outcome.clone(),
                            held,
                            until: Instant::now() + LOST_WAIT,
                            searching: false,
                        },
                    );
                    reread = true;
                    continue;
                }
                _ => {}
            }
            self.settled(&held);
            out.push((number, outcome));
        }
        self.report(out);
        if reread {
            self.want_reading();
        }
        for stream in touched {
            self.send_moved(&stream);
            self.forget_if_idle(&stream);
        }
    }

    /// Sends again what waits for a moved stream, in call order (those that
    /// were sent elsewhere first), once a fresh map is in and nothing of
    /// the stream is in flight.
    fn send_moved(&mut self, stream: &Arc<str>) {
        let ready = self.streams.get(stream).is_some_and(|state| {
            state.inflight == 0 && state.moving.as_ref().is_some_and(|moving| moving.mapped)
        });
        if !ready {
            return;
        }
        let Some(moving) = self
            .streams
            .get_mut(stream)
            .and_then(|state| state.moving.take())
        else {
            return;
        };
        for held in moving.again.into_values().chain(moving.later) {
            self.route(held);
        }
    }

    fn forget_if_idle(&mut self, stream: &Arc<str>) {
        if self
            .streams
            .get(stream)
            .is_some_and(|state| state.inflight == 0 && state.moving.is_none())
        {
            self.streams.remove(stream);
        }
    }

    fn mapped(&mut self, reading: u64, result: Result<Vec<SlotRange>, String>) {
        self.discovering = false;
        self.last_reading = Some(Instant::now());
        match result {
            Ok(ranges) => self.use_map(ranges),
            Err(why) => {
                let reason = format!("Cannot connect to Redis at {}: {why}", self.server);
                if self.map.is_none() {
                    self.map_failure = Some(reason.clone());
                    // What waits for a first map fails, but follows.
                    let waiting: Vec<Held> = self.waiting.drain(..).collect();
                    let mut out = Vec::with_capacity(waiting.len());
                    for held in waiting {
                        let outcome = held.failed(Cause::Unreachable, reason.clone());
                        self.settled(&held);
                        out.push((held.number(), outcome));
                    }
                    self.report(out);
                }
            }
        }
        self.health();
        // What waited for this reading goes now (by the map held if it
        // failed: each is sent elsewhere at most MAX_REDIRECTS times).
        let moved: Vec<Arc<str>> = self
            .streams
            .iter_mut()
            .filter_map(|(name, state)| {
                let moving = state.moving.as_mut()?;
                if moving.reading <= reading {
                    moving.mapped = true;
                }
                moving.mapped.then(|| name.clone())
            })
            .collect();
        for stream in moved {
            self.send_moved(&stream);
        }
        let (fresh, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.fresh)
            .into_iter()
            .partition(|(wanted, _)| *wanted <= reading);
        self.fresh = later;
        for (_, done) in fresh {
            let _ = done.send(());
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.redirected)
            .into_iter()
            .partition(|(wanted, _, _)| *wanted <= reading);
        self.redirected = later;
        for (_, from, page) in due {
            // Moved with its slot (by this map or an earlier one): the
            // follow goes on there. Still on the master that sent it
            // elsewhere: the failure is the follow's to report.
            let still = matches!(self.follows.get(&page.stream), Some(Some(on)) if on.url == from);
            if still {
                (self.pages)(vec![page]);
            }
        }
        self.search_lost();
        if !self.fresh.is_empty() || !self.redirected.is_empty() {
            self.want_reading();
        }
    }

    /// A map read: masters reused by URL, new ones linked, follows moved
    /// with their slots, and what waited for it routed.
    fn use_map(&mut self, ranges: Vec<SlotRange>) {
        self.map_failure = None;
        let old: HashMap<String, Arc<Master>> = self
            .map
            .as_ref()
            .map(|map| {
                map.masters
                    .iter()
                    .map(|master| (master.url.clone(), master.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut masters: Vec<Arc<Master>> = Vec::new();
        let mut slots = vec![u16::MAX; usize::from(SLOTS)];
        for range in ranges {
            let url = self.cluster.node_url(&range.master);
            let index = match masters.iter().position(|m| m.url == url) {
                Some(index) => index,
                None => {
                    let master = match old.get(&url) {
                        Some(master) => master.clone(),
                        None => match self.master(url) {
                            Some(master) => master,
                            None => continue,
                        },
                    };
                    masters.push(master);
                    masters.len() - 1
                }
            };
            for slot in range.start..=range.end {
                slots[usize::from(slot)] = index as u16;
            }
        }
        let same = self.map.as_ref().is_some_and(|map| {
            map.slots == slots
                && map.masters.len() == masters.len()
                && map
                    .masters
                    .iter()
                    .zip(&masters)
                    .all(|(a, b)| Arc::ptr_eq(a, b))
        });
        if !same {
            let map = Arc::new(Map { masters, slots });
            self.map = Some(map.clone());
            self.shared.set_map(Some(map.clone()));
            self.move_follows(&map);
        }
        let waiting: Vec<Held> = self.waiting.drain(..).collect();
        for held in waiting {
            self.route(held);
        }
    }

    /// Follows whose slot moved follow on its new master, from where they
    /// had read up to.
    fn move_follows(&mut self, map: &Map) {
        let mut moves = Vec::new();
        for (stream, on) in &self.follows {
            let now = map.master_of(stream).cloned();
            let same = match (on, &now) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                moves.push((stream.clone(), on.clone(), now));
            }
        }
        for (stream, old, now) in moves {
            if let Some(old) = old {
                old.link.unfollow(stream.clone());
            }
            if let Some(now) = &now {
                let from = self.positions_of().get(&stream).copied().flatten();
                match from {
                    Some(from) => now.link.follow_from(stream.clone(), from),
                    None => now.link.follow(stream.clone()),
                }
            }
            self.follows.insert(stream, now);
        }
    }

    /// Links a master, its results going to the router and on to
    /// JavaScript; `None` for a URL that cannot be used (never, for one
    /// the map names).
    fn master(&self, url: String) -> Option<Arc<Master>> {
        let deployment = Deployment::Server(url.clone());
        let connector = Connector::new(&deployment, None).ok()?;
        let inbox = self.inbox.clone();
        let outcomes: OutcomeSink = Box::new(move |batch| {
            let _ = inbox.send(Ask::Outcomes(batch));
        });
        let inbox = self.inbox.clone();
        let positions = self.positions.clone();
        let sink = self.pages.clone();
        let from = url.clone();
        let pages: PageSink = Box::new(move |pages| {
            let mut on = Vec::with_capacity(pages.len());
            for page in pages {
                if page.redirected {
                    let _ = inbox.send(Ask::Redirected(from.clone(), page));
                    continue;
                }
                if let Some(last) = page.page.last {
                    let mut positions = positions.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(position) = positions.get_mut(&page.stream) {
                        *position = Some(last);
                    }
                }
                on.push(page);
            }
            on.is_empty() || sink(on)
        });
        let inbox = self.inbox.clone();
        let health = Box::new(move |_| {
            let _ = inbox.send(Ask::Health);
        });
        let (link, publisher, follower) = ServerLink::new(
            connector,
            deployment.name(),
            outcomes,
            pages,
            health,
            self.on_shared_key,
            true,
        );
        (self.spawn)(Box::pin(publisher));
        (self.spawn)(Box::pin(follower));
        Some(Arc::new(Master { url, link }))
    }

    /// The cluster's health from its map and its masters'.
    fn health(&self) {
        let Some(map) = &self.map else {
            let reason = self.map_failure.clone().unwrap_or_else(|| {
                format!("Reading the map of the Redis Cluster at {}", self.server)
            });
            if self.map_failure.is_some() {
                self.shared.health.down(reason);
            }
            return;
        };
        let down = map
            .masters
            .iter()
            .map(|master| master.link.health())
            .find(|health| !health.connected && health.reason.is_some());
        match down {
            Some(health) => self.shared.health.down(health.reason.unwrap_or_default()),
            None => self.shared.health.up(),
        }
    }

    /// Lost broadcasts whose slot another master holds now are looked for
    /// there; those whose wait is over stay unknown.
    fn search_lost(&mut self) {
        let Some(map) = self.map.clone() else {
            return;
        };
        let mut over = Vec::new();
        for (&number, lost) in &mut self.lost {
            if lost.searching {
                continue;
            }
            let now = map.master_of(lost.held.stream());
            match now {
                Some(now) if now.url != lost.master => {
                    lost.searching = true;
                    let url = now.url.clone();
                    let sent = Sent {
                        stream: lost.held.stream().clone(),
                        tag: lost.tag.clone(),
                    };
                    let since_ms = lost.since_ms;
                    let old = lost.master.clone();
                    let inbox = self.inbox.clone();
                    (self.spawn)(Box::pin(async move {
                        let found = search(&url, &old, sent, since_ms).await;
                        let _ = inbox.send(Ask::Found(number, found, url));
                    }));
                }
                _ if Instant::now() >= lost.until || self.closed => over.push(number),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for number in over {
            if let Some(lost) = self.lost.remove(&number) {
                self.settled(&lost.held);
                out.push((number, lost.outcome));
            }
        }
        self.report(out);
    }

    /// What a lost broadcast's search on `master` found: `Some(id)`
    /// appended, `Some("")` missing from a window read whole, `None` not
    /// known.
    fn found(&mut self, number: u64, found: Option<String>, master: &str) {
        let Some(lost) = self.lost.remove(&number) else {
            return;
        };
        self.settled(&lost.held);
        let outcome = match found.as_deref() {
            Some("") => Outcome::Failed {
                code: Code::RedisNotAppended,
                cause: Cause::Lost {
                    tag: None,
                    since_ms: lost.since_ms,
                },
                reason: format!(
                    "{}; the master that took over its slot ({}) does not have it: it is not in the stream",
                    reason_of(&lost.outcome),
                    Deployment::Server(master.to_string()).name()
                ),
            },
            Some(id) => Outcome::Done(id.to_string()),
            None => lost.outcome,
        };
        self.report(vec![(number, outcome)]);
    }

    /// The link is closed: what waits is refused, the masters close once
    /// what they hold has gone, and the router ends once every fate is
    /// told.
    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let reason = "The channel is closed".to_string();
        let mut out = Vec::new();
        let mut refused: Vec<Held> = self.waiting.drain(..).collect();
        for state in self.streams.values_mut() {
            if let Some(moving) = state.moving.take() {
                refused.extend(moving.again.into_values());
                refused.extend(moving.later);
            }
        }
        for held in refused {
            let outcome = held.failed(Cause::NotSent, reason.clone());
            self.settled(&held);
            out.push((held.number(), outcome));
        }
        self.report(out);
        self.follows.clear();
        self.positions_of().clear();
        for (_, done) in self.fresh.drain(..) {
            let _ = done.send(());
        }
        self.redirected.clear();
        self.map = None;
        self.shared.set_map(None);
        self.search_lost();
    }
}

/// The words of a failed outcome.
fn reason_of(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Failed { reason, .. } => reason,
        Outcome::Done(_) => "",
    }
}

/// Looks for a lost broadcast on the master at `url`, which took over its
/// slot from the one at `old`: `Some(id)` found, `Some("")` missing from a
/// window read whole while the old master can no longer append it (nothing
/// listens where it was), `None` not known. An old master that still
/// answers, or does not answer in time (paused), may yet run what it held:
/// its fate stays unknown.
async fn search(url: &str, old: &str, sent: Sent, since_ms: u64) -> Option<String> {
    let connector = Connector::new(&Deployment::Server(url.to_string()), None).ok()?;
    let mut connection = connector.connect(REPLY_TIMEOUT).await.ok()?;
    let found = find_tags(&mut connection, std::slice::from_ref(&sent), since_ms)
        .await
        .ok()?;
    match found.into_iter().next()? {
        Found::At(id) => Some(id),
        Found::Missing if gone(old).await => Some(String::new()),
        Found::Missing | Found::Unsure => None,
    }
}

/// Whether nothing listens where the server at `url` was: its process is
/// gone, and what it held with it.
async fn gone(url: &str) -> bool {
    let Ok(connector) = Connector::new(&Deployment::Server(url.to_string()), None) else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, connector.connect(REPLY_TIMEOUT)).await,
        Ok(Err(err)) if err.is_connection_refusal()
    )
}
