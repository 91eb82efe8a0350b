//! Writing streams' bytes straight to their sockets, from Rust.
//!
//! For a plain HTTP/1.1 response on a TCP socket, JavaScript hands over the
//! socket's descriptor once its headers have gone out and Node holds no
//! unwritten byte of it ([`Direct::attach`]). From then on every flush writes
//! that stream's bytes, framed as one HTTP/1.1 chunk, to the socket here,
//! non-blocking, in the same pass as every other stream: JavaScript is not
//! involved per client. Node writes nothing more to the socket until the
//! stream ends, when [`Direct::detach`] hands back whatever is still unwritten
//! (ahead of the response's last chunk), so bytes are never reordered.
//!
//! Safety of the descriptor: we hold our own duplicate of it, made while the
//! socket was open, and close it with the stream. Node may close its own
//! descriptor at any time, and the number may be reused by a new connection
//! in the same loop iteration, but ours still names this connection's socket
//! until we close it.
//!
//! A short write or `EAGAIN` keeps the rest (this client's own bytes, no one
//! else's) and pauses the stream; a tokio task waits for the socket to be
//! writable and calls the owner's [`Wakeup`]; the bindings wake JavaScript,
//! which resumes the stream ([`Direct::resume`]). Any other error marks the
//! stream failed: JavaScript ends it.
//!
//! Slow is not stalled: a stream is stalled only when its socket took no
//! byte at all for its `stall_timeout` while bytes waited. What the kernel
//! took is read from the socket's send queue (`SIOCOUTQ`), not from our own
//! last successful `send()`: Linux reports a full socket writable again only
//! once a third of its buffer is free, which a slow reader may take far
//! longer than the timeout to read. The waiting task also wakes JavaScript at
//! the stall deadline, so a stall is found on its own timer, whether or not
//! anything else is being sent.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::hub::{Framing, Hub, Owner, Slot};
use crate::io::adopted::{Adopted, Watcher};
use crate::io::conn::{Command, Report, Reports, Tell, Wrote};
pub use crate::io::sys::reset_on_close;
use crate::io::sys::{self, send, unsent};
use crate::io::writers::{Handed, Job, Writers, CATCH_UP_WAIT, HANDED_BLOCK};
use crate::io::{AdoptionEvents, Spawn, Wakeup, Written};

/// The last chunk of a chunked HTTP/1.1 response: it ends the body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How long a socket has taken none of the bytes waiting for it. Slow is
/// not stalled (see the module's docs): a send queue shorter than when
/// progress was last seen is progress.
///
/// Kept with every socket Rust writes to, so it is small: the send queue's
/// length and the timeout in 32 bits each (a send queue is an `int`; a
/// timeout in milliseconds fits for 49 days).
#[derive(Clone, Copy)]
struct Stall {
    /// Since when the socket has taken no byte of what waits for it.
    since: Option<Instant>,
    /// The bytes in the socket's send queue when progress was last seen.
    queued: u32,
    /// How long it may stay so before the client is cut off, in ms.
    timeout_ms: u32,
}

/// The bytes in `fd`'s send queue, as a [`Stall`] keeps them.
fn queued_now(fd: &OwnedFd) -> Option<u32> {
    unsent(fd).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

impl Stall {
    fn new(timeout: Duration) -> Self {
        Stall {
            since: None,
            queued: 0,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.into())
    }

    /// Notes a write to `fd` that took `n` bytes and left `left` behind.
    fn progress(&mut self, fd: &OwnedFd, n: usize, left: usize, now: Instant) {
        if left == 0 {
            self.since = None;
        } else if n > 0 || self.since.is_none() {
            self.since = Some(now);
            self.queued = queued_now(fd).unwrap_or(0);
        }
    }

    /// Whether `fd` took nothing for the stall timeout.
    fn stalled(&mut self, fd: &OwnedFd, now: Instant) -> bool {
        let Some(since) = self.since else {
            return false;
        };
        if let Some(queued) = queued_now(fd) {
            if queued < self.queued {
                self.since = Some(now);
                self.queued = queued;
                return false;
            }
        }
        now.saturating_duration_since(since) >= self.timeout()
    }

    /// When the stall clock runs out, if it runs.
    fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + self.timeout())
    }
}

/// A stream whose socket Rust writes to from this thread while Node still
/// owns the connection: our own descriptor of it, and what a write left.
struct Attached {
    fd: Arc<OwnedFd>,
    owner: Owner,
    /// Framed bytes a write did not take, to go first next time.
    pending: Vec<u8>,
    /// The task waiting for the socket to be writable, if any.
    waiting: Option<tokio::task::AbortHandle>,
    stall: Stall,
}

impl Attached {
    /// Notes a write that took `n` bytes and left `pending` behind.
    fn progress(&mut self, n: usize, now: Instant) {
        self.stall.progress(&self.fd, n, self.pending.len(), now);
    }

    fn stalled(&mut self, now: Instant) -> bool {
        self.stall.stalled(&self.fd, now)
    }

    /// Starts the task that wakes JavaScript once the socket is writable,
    /// or at the stall deadline.
    fn wait(&mut self, slot: Slot, wakeup: Option<Wakeup>, spawn: Spawn) {
        if let Some(previous) = self.waiting.take() {
            previous.abort();
        }
        self.waiting = wakeup.map(|wakeup| {
            spawn(Box::pin(wait_writable(
                self.fd.clone(),
                slot,
                self.stall.deadline(),
                wakeup,
            )))
        });
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(task) = self.waiting.take() {
            task.abort();
        }
    }
}

/// Of the bytes `handed` to an adopted connection, those it holds because
/// its socket refused them (it `received` them, and `sent` fewer), and
/// those still on their way to it in its shard's queue (see
/// [`Hub::set_held_in_flight`]).
fn held_split(handed: u64, sent: u64, received: u64) -> (usize, usize) {
    let received = received.max(sent);
    let refused = received.saturating_sub(sent) as usize;
    let in_flight = handed.saturating_sub(received) as usize;
    (refused, in_flight)
}

/// A stream whose connection Rust has taken over (see src/io/adopted.rs):
/// its shard's writers write it; this thread counts what it handed over
/// and what the reports say went.
struct Owned {
    handle: Adopted,
    owner: Owner,
    /// Bytes handed to the connection since it was adopted; of those, how
    /// many its socket took by the last report, and how many had reached
    /// it by then (the rest were still in its shard's queue).
    handed: u64,
    reported_sent: u64,
    reported_received: u64,
    stall: Stall,
}

impl Owned {
    /// The connection's bytes not yet taken by its socket, as far as this
    /// thread knows: handed over, less what reports said went.
    fn held(&self) -> usize {
        self.handed.saturating_sub(self.reported_sent) as usize
    }

    /// Says what the stream's connection holds by the last report (see
    /// [`held_split`]).
    fn report_held(&self, hub: &mut Hub, slot: Slot) {
        let (refused, in_flight) =
            held_split(self.handed, self.reported_sent, self.reported_received);
        hub.set_held_in_flight(slot, refused, in_flight);
    }

    /// Notes a write that took `n` bytes and left `left` behind.
    fn progress(&mut self, n: usize, left: usize, now: Instant) {
        self.stall.progress(self.handle.conn().fd(), n, left, now);
    }

    fn stalled(&mut self, now: Instant) -> bool {
        self.stall.stalled(self.handle.conn().fd(), now)
    }

    /// Asks the watcher to wake the owner once the socket is writable, or
    /// at the stall deadline (the watcher holds the socket's one
    /// registration).
    fn wait(&self) {
        self.handle.send(Command::Writable(self.stall.deadline()));
    }
}

/// One stream's socket, in one of its two modes.
enum DirectSocket {
    Attached(Attached),
    Owned(Owned),
}

/// Direct sockets by slot: a vector, since slots are small and dense.
#[derive(Default)]
struct Sockets {
    by_slot: Vec<Option<DirectSocket>>,
    len: usize,
}

impl Sockets {
    fn get_mut(&mut self, slot: &Slot) -> Option<&mut DirectSocket> {
        self.by_slot.get_mut(*slot as usize)?.as_mut()
    }

    fn insert(&mut self, slot: Slot, socket: DirectSocket) {
        let at = slot as usize;
        if self.by_slot.len() <= at {
            self.by_slot.resize_with(at + 1, || None);
        }
        if self.by_slot[at].replace(socket).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, slot: &Slot) -> Option<DirectSocket> {
        let taken = self.by_slot.get_mut(*slot as usize)?.take();
        if taken.is_some() {
            self.len -= 1;
        }
        taken
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The sockets Rust writes to on one thread, and how their owners are
/// woken. The bindings hold one per thread (`crate::bindings::state`).
pub struct Direct {
    /// By slot: a stream's socket, if Rust writes to it.
    sockets: Sockets,
    wakeups: HashMap<Owner, Wakeup>,
    /// What each owner is told of its adopted connections.
    adoption_events: HashMap<Owner, AdoptionEvents>,
    /// Each owner's wakeup and adoption events as its adopted connections
    /// share them, made with the first (and again once either changes).
    tells: HashMap<Owner, Arc<Tell>>,
    /// The thread that watches this thread's adopted connections, started
    /// with the first (see src/io/adopted.rs).
    watcher: Option<Watcher>,
    /// The id of the next adopted connection.
    next_adoption: u32,
    /// Adopted connections open (streaming or finishing), for diagnostics.
    adopted: Arc<std::sync::atomic::AtomicUsize>,
    /// By adoption id: connections whose stream has ended and that are
    /// finishing (writing their last bytes), until they are closed.
    finishing: HashMap<u32, Adopted>,
    /// What the writes of adopted connections did, off this thread.
    reports: Reports,
    /// Who writes adopted connections (see src/io/writers.rs).
    writers: Writers,
    /// How long flushes waited for the writers, all told (see
    /// [`Direct::let_writers_catch_up`]).
    waited_for_writers: Duration,
    scratch: Vec<u8>,
    spawn: Spawn,
}

enum Outcome {
    All,
    Partial,
    Failed,
}

impl Direct {
    /// Writes what a socket has pending, then (if it took it all) the
    /// stream's queued bytes as one chunk.
    fn write(&mut self, hub: &mut Hub, slot: Slot, now: Instant) -> Outcome {
        let Direct {
            sockets,
            wakeups,
            scratch,
            spawn,
            ..
        } = self;
        let Some(DirectSocket::Attached(socket)) = sockets.get_mut(&slot) else {
            return Outcome::Failed;
        };
        let bytes = scratch;
        bytes.clear();
        bytes.append(&mut socket.pending);
        hub.take_chunk(slot, now, bytes);
        if bytes.is_empty() {
            hub.set_held(slot, 0);
            return Outcome::All;
        }
        let sent = send(&socket.fd, bytes);
        if let Ok(n) = sent {
            hub.counters.bytes_written += n as u64;
        }
        match sent {
            Ok(n) if n == bytes.len() => {
                hub.set_held(slot, 0);
                socket.progress(n, now);
                Outcome::All
            }
            Ok(n) => {
                socket.pending.extend_from_slice(&bytes[n..]);
                socket.progress(n, now);
                hub.set_held(slot, socket.pending.len());
                hub.pause(slot);
                socket.wait(slot, wakeups.get(&socket.owner).cloned(), *spawn);
                Outcome::Partial
            }
            Err(_) => {
                hub.set_held(slot, 0);
                hub.pause(slot);
                Outcome::Failed
            }
        }
    }
}

/// Waits until the socket is writable, or until `deadline` (the stall
/// clock's end), whichever comes first; then calls `wakeup` with `slot`.
async fn wait_writable(fd: Arc<OwnedFd>, slot: Slot, deadline: Option<Instant>, wakeup: Wakeup) {
    // A socket that cannot be watched is woken at once: the write is simply
    // tried again.
    let watch = sys::watch(fd, tokio::io::Interest::WRITABLE);
    if let Some(watch) = watch {
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    _ = watch.writable() => {}
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
            None => {
                let _ = watch.writable().await;
            }
        }
    }
    wakeup(slot);
}

impl Direct {
    /// No sockets yet; waiting tasks are started with `spawn`.
    pub fn new(spawn: Spawn) -> Self {
        let reports = Reports::default();
        Direct {
            writers: Writers::new(reports.clone(), spawn),
            waited_for_writers: Duration::ZERO,
            sockets: Sockets::default(),
            wakeups: HashMap::new(),
            adoption_events: HashMap::new(),
            tells: HashMap::new(),
            watcher: None,
            next_adoption: 0,
            adopted: Arc::default(),
            finishing: HashMap::new(),
            reports,
            scratch: Vec::new(),
            spawn,
        }
    }

    /// Writes the bytes of a flush's direct streams: those of adopted
    /// connections are handed to the runtime's threads, the others are
    /// written here.
    pub fn write_all(&mut self, hub: &mut Hub, slots: &[Slot], now: Instant) -> Written {
        let mut written = Written::default();
        // A buffer per shard: the connections themselves are not touched
        // here (see src/io/writers.rs).
        let mut handed: Vec<Handed> = Vec::new();
        let mut owner = None;
        let writers_full = hub.writers_full();
        for &slot in slots {
            let outcome = match self.sockets.get_mut(&slot) {
                Some(DirectSocket::Owned(_)) if writers_full => {
                    // Left queued, counted as its stream's, until the
                    // writers have written some (their reports wake the
                    // next flush).
                    hub.keep_for_next_flush(slot);
                    Outcome::Partial
                }
                Some(DirectSocket::Owned(socket)) => {
                    let id = socket.handle.id();
                    if handed.is_empty() {
                        let shards = self.writers.len();
                        handed.resize_with(shards, || Handed::for_about(slots.len() / shards + 1));
                    }
                    let shard = self.writers.shard_of(id);
                    let filled = handed[shard].chunks.bytes.len();
                    if filled > 0 && filled + hub.chunk_len(slot) > HANDED_BLOCK {
                        // The chunk would not fit: the block is handed over
                        // now, and a new one begun (see HANDED_BLOCK). They
                        // fill up with replays, a few streams each.
                        let full = std::mem::replace(&mut handed[shard], Handed::for_about(16));
                        let wakeup = self.wakeups.get(&socket.owner).cloned();
                        self.writers
                            .shard(shard)
                            .push(Job::Write(full.sealed(), wakeup));
                    }
                    let added = handed[shard].add(id, hub, slot, now);
                    socket.handed += added as u64;
                    if added > 0 {
                        owner = Some(socket.owner);
                    }
                    let held = socket.held();
                    socket.report_held(hub, slot);
                    if held == 0 {
                        Outcome::All
                    } else {
                        // Reported once written (see `take_reports`).
                        Outcome::Partial
                    }
                }
                _ => self.write(hub, slot, now),
            };
            match outcome {
                Outcome::All => {
                    if hub.drained(slot) {
                        written.drained.push(slot);
                    }
                }
                Outcome::Partial => {}
                Outcome::Failed => written.failed.push(slot),
            }
        }
        // Paused streams are not in a flush: their stalls are found when
        // their waiting task wakes them at the deadline (see `resume`).
        let wakeup = owner.and_then(|owner| self.wakeups.get(&owner));
        for (index, handed) in handed.into_iter().enumerate() {
            if !handed.is_empty() {
                self.writers
                    .shard(index)
                    .push(Job::Write(handed.sealed(), wakeup.cloned()));
            }
        }
        written
    }

    /// Before a flush: when the writer threads hold more than their share
    /// of the budget, waits for them to write down to half of it, for at
    /// most [`CATCH_UP_WAIT`] (see there and [`Hub::writers_share`]).
    pub fn let_writers_catch_up(&mut self, hub: &Hub) {
        let share = hub.writers_share();
        if self.writers.in_flight() > share {
            let started = Instant::now();
            self.writers.wait_until_at_most(share / 2, CATCH_UP_WAIT);
            self.waited_for_writers += started.elapsed();
        }
    }

    /// How long flushes have waited for the writers since the thread began
    /// (see [`Direct::let_writers_catch_up`]).
    pub fn waited_for_writers(&self) -> Duration {
        self.waited_for_writers
    }

    /// Takes what the writes of adopted connections did since the last
    /// call: counts their bytes, keeps what each still holds counted as
    /// its stream's, pauses a stream whose socket is full until it is
    /// writable (or its stall deadline comes), and reports drains and
    /// failures through `written`.
    pub fn take_reports(&mut self, hub: &mut Hub, now: Instant, written: &mut Written) {
        let reports = std::mem::take(
            &mut *self
                .reports
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for Report {
            slot,
            id,
            sent,
            sent_total,
            received_total,
            outcome,
        } in reports
        {
            hub.counters.bytes_written += sent as u64;
            let Some(DirectSocket::Owned(socket)) = self.sockets.get_mut(&slot) else {
                continue;
            };
            if socket.handle.id() != id {
                continue;
            }
            socket.reported_sent = socket.reported_sent.max(sent_total);
            socket.reported_received = socket.reported_received.max(received_total);
            let held = socket.held();
            match outcome {
                Wrote::All => {
                    // It took all it was given: what is held now came
                    // since, handed over with a later flush, no stall. (A
                    // later report of the same connection, further on in
                    // this list, pauses it again if its socket was full.)
                    socket.progress(sent, 0, now);
                    socket.report_held(hub, slot);
                    hub.resume(slot);
                    if held == 0 && hub.drained(slot) {
                        written.drained.push(slot);
                    }
                }
                Wrote::Blocked => {
                    socket.progress(sent, held, now);
                    socket.report_held(hub, slot);
                    hub.pause(slot);
                    socket.wait();
                }
                Wrote::Failed => {
                    hub.set_held(slot, 0);
                    hub.pause(slot);
                    written.failed.push(slot);
                }
            }
        }
    }

    /// Sets the function that wakes `owner`'s JavaScript when a socket it
    /// waited on is writable again.
    pub fn set_wakeup(&mut self, owner: Owner, wakeup: Wakeup) {
        self.tells.remove(&owner);
        self.wakeups.insert(owner, wakeup);
    }

    /// Takes a stream's socket into Rust: duplicates `fd` and frames the
    /// stream's bytes for direct writes. Returns false (and changes nothing)
    /// where that cannot be done.
    pub fn attach(&mut self, hub: &mut Hub, slot: Slot, fd: i32, stall_timeout: Duration) -> bool {
        let Some(owner) = hub.owner(slot) else {
            return false;
        };
        // `fd` was read from the socket's handle by the caller in this call.
        let Some(fd) = sys::duplicate(fd) else {
            return false;
        };
        let fd = Arc::new(fd);
        self.sockets.insert(
            slot,
            DirectSocket::Attached(Attached {
                fd,
                owner,
                pending: Vec::new(),
                waiting: None,
                stall: Stall::new(stall_timeout),
            }),
        );
        hub.set_framing(slot, Framing::Direct);
        true
    }

    /// After a wakeup (the socket is writable, or its stall deadline came):
    /// writes what was pending. Returns whether the stream is writable again
    /// (then it is resumed; its queued bytes go with the next flush). Reports a
    /// drain, a failure or a stall through `written`.
    pub fn resume(&mut self, hub: &mut Hub, slot: Slot, written: &mut Written) -> bool {
        let socket = match self.sockets.get_mut(&slot) {
            None => return false,
            Some(DirectSocket::Owned(socket)) => {
                // Writable, or at its stall deadline: written to again (off
                // this thread), unless it took nothing for its stall
                // timeout.
                if socket.stalled(Instant::now()) {
                    written.stalled.push(slot);
                    return false;
                }
                let wakeup = self.wakeups.get(&socket.owner).cloned();
                socket.handle.push(Job::Resume(socket.handle.id(), wakeup));
                return false;
            }
            Some(DirectSocket::Attached(socket)) => socket,
        };
        socket.waiting = None;
        let pending = std::mem::take(&mut socket.pending);
        let sent = send(&socket.fd, &pending);
        let now = Instant::now();
        if let Ok(n) = sent {
            hub.counters.bytes_written += n as u64;
        }
        match sent {
            Ok(n) if n == pending.len() => {
                socket.progress(n, now);
                hub.set_held(slot, 0);
                hub.resume(slot);
                if hub.drained(slot) {
                    written.drained.push(slot);
                }
                true
            }
            Ok(n) => {
                socket.pending = pending[n..].to_vec();
                socket.progress(n, now);
                hub.set_held(slot, socket.pending.len());
                if socket.stalled(now) {
                    written.stalled.push(slot);
                } else {
                    socket.wait(slot, self.wakeups.get(&socket.owner).cloned(), self.spawn);
                }
                false
            }
            Err(_) => {
                hub.set_held(slot, 0);
                written.failed.push(slot);
                false
            }
        }
    }

    /// Gives a stream's socket back to Node: returns the framed bytes still
    /// unwritten (to go to the socket first, as they are) and closes our
    /// descriptor.
    pub fn detach(&mut self, slot: Slot) -> Vec<u8> {
        match self.sockets.remove(&slot) {
            Some(DirectSocket::Attached(mut socket)) => std::mem::take(&mut socket.pending),
            _ => Vec::new(),
        }
    }

    /// Forgets a stream's socket (the stream is released).
    pub fn release(&mut self, slot: Slot) {
        self.sockets.remove(&slot);
    }

    /// How many sockets Rust writes to on this thread.
    pub fn count(&self) -> usize {
        self.sockets.len()
    }

    /// Sets what `owner` is told of its adopted connections.
    pub fn set_adoption_events(&mut self, owner: Owner, events: AdoptionEvents) {
        self.tells.remove(&owner);
        self.adoption_events.insert(owner, events);
    }

    /// Takes over a stream's connection, whose socket Rust writes to
    /// already, once Node has let go of it (see src/io/adopted.rs): from
    /// now the watcher watches it and ends it. Returns the connection's
    /// adoption id, or None (nothing changed) where it cannot be done.
    pub fn adopt(&mut self, slot: Slot) -> Option<u32> {
        if self.watcher.is_none() {
            // A thread or an epoll that cannot be made: not adopted.
            self.watcher = Some(Watcher::start(self.adopted.clone()).ok()?);
        }
        let watcher = self.watcher.as_ref()?;
        let Some(DirectSocket::Attached(socket)) = self.sockets.get_mut(&slot) else {
            return None;
        };
        let owner = socket.owner;
        let tell = match self.tells.get(&owner) {
            Some(tell) => tell.clone(),
            None => {
                let tell = Arc::new(Tell {
                    wakeup: self.wakeups.get(&owner).cloned(),
                    events: self.adoption_events.get(&owner)?.clone(),
                });
                self.tells.insert(owner, tell.clone());
                tell
            }
        };
        if let Some(task) = socket.waiting.take() {
            task.abort();
        }
        let pending = std::mem::take(&mut socket.pending);
        let stall = socket.stall;
        let shared = socket.fd.clone();
        // The attached socket goes (its waiting task aborted above).
        self.sockets.remove(&slot);
        // The connection holds the descriptor itself (not shared: one
        // allocation fewer per idle connection). A waiting task, aborted
        // just now, may not have let go of its share yet: the connection
        // then gets a duplicate of it; failing that, it is not adopted, and
        // the socket stays attached as it was.
        let fd = match Arc::try_unwrap(shared) {
            Ok(fd) => fd,
            Err(shared) => match shared.try_clone() {
                Ok(fd) => fd,
                Err(_) => {
                    let socket = Attached {
                        fd: shared,
                        owner,
                        pending,
                        waiting: None,
                        stall,
                    };
                    self.sockets.insert(slot, DirectSocket::Attached(socket));
                    return None;
                }
            },
        };
        let id = self.next_adoption;
        self.next_adoption = self.next_adoption.wrapping_add(1);
        // The watcher counts it out when the connection is closed.
        self.adopted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let handed = pending.len() as u64;
        let waits = !pending.is_empty();
        let shard = self.writers.shard(self.writers.shard_of(id)).clone();
        let handle = watcher.adopt(fd, slot, id, pending, tell, shard);
        let owned = Owned {
            handle,
            owner,
            handed,
            reported_sent: 0,
            reported_received: handed,
            stall,
        };
        // A write that was waiting for room goes on waiting, the watcher
        // watching.
        if waits {
            owned.wait();
        }
        self.sockets.insert(slot, DirectSocket::Owned(owned));
        Some(id)
    }

    /// Ends an adopted stream's connection cleanly: what it has pending and
    /// queued, then the response's last chunk, within `timeout`, or the
    /// connection is reset. The stream's socket is no longer the slot's.
    /// Returns false (nothing changed) if the stream's connection is not
    /// adopted.
    pub fn end_adopted(&mut self, hub: &mut Hub, slot: Slot, timeout: Duration) -> bool {
        // Only an adopted stream's socket is taken out of the slot.
        if !matches!(self.sockets.get_mut(&slot), Some(DirectSocket::Owned(_))) {
            return false;
        }
        let Some(DirectSocket::Owned(Owned {
            handle: adopted, ..
        })) = self.sockets.remove(&slot)
        else {
            return false;
        };
        hub.set_held(slot, 0);
        // After what it was handed before (its shard keeps the order).
        let mut last = Vec::new();
        hub.take_chunk(slot, Instant::now(), &mut last);
        last.extend_from_slice(LAST_CHUNK);
        adopted.push(Job::Finish {
            id: adopted.id(),
            last,
            timeout,
        });
        // Until it is closed: it may be reset sooner (`release_adopted`).
        self.finishing.insert(adopted.id(), adopted);
        true
    }

    /// Lets go of a finishing connection: one still open is reset now
    /// (`closeAll()`'s timeout; the handle's drop asks for it), one that is
    /// closed (after [`crate::io::Adoption::Finished`]) is only forgotten.
    pub fn release_adopted(&mut self, id: u32) {
        self.finishing.remove(&id);
    }

    /// What an adopted stream's connection holds unwritten now, refused
    /// by its socket and on its way to it (see [`Hub::set_held_in_flight`]),
    /// or None if the stream's connection is not adopted.
    pub fn held_now(&mut self, slot: Slot) -> Option<(usize, usize)> {
        let Some(DirectSocket::Owned(socket)) = self.sockets.get_mut(&slot) else {
            return None;
        };
        let (sent, received) = socket.handle.conn().totals();
        Some(held_split(socket.handed, sent, received))
    }

    /// Bytes handed to the writers that they have not written yet (see
    /// [`Writers::in_flight`]).
    pub fn in_flight(&self) -> usize {
        self.writers.in_flight()
    }

    /// How many adopted connections are open on this thread.
    pub fn adopted_count(&self) -> usize {
        self.adopted.load(std::sync::atomic::Ordering::Relaxed)
    }
}
