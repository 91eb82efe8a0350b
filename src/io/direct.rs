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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::hub::{Framing, Hub, Owner, Slot};
use crate::io::adopted::{self, Adopted, Command, Report, Reports, Wrote};
use crate::io::writers::{Handed, Job, Writers};
use crate::io::{AdoptionEvents, Spawn, Wakeup, Written};

/// The last chunk of a chunked HTTP/1.1 response: it ends the body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// One stream's own reference to its socket.
struct DirectSocket {
    fd: Arc<OwnedFd>,
    owner: Owner,
    /// Framed bytes a write did not take, to go first next time.
    pending: Vec<u8>,
    /// The task waiting for the socket to be writable, if any.
    waiting: Option<tokio::task::AbortHandle>,
    /// Since when the socket has taken no byte of what waits for it.
    stalled_since: Option<Instant>,
    /// The bytes in the socket's send queue when progress was last seen.
    queued: usize,
    /// How long it may stay so before the client is cut off.
    stall_timeout: Duration,
    /// Once Node has let go of the connection: its task (src/io/adopted.rs).
    adopted: Option<Adopted>,
    /// Adopted: bytes handed to the connection since it was adopted, and
    /// of those, how many its socket took by the last report; the
    /// difference is what the connection holds for the stream.
    handed: u64,
    reported_sent: u64,
}

impl DirectSocket {
    /// An adopted connection's bytes not yet taken by its socket, as far as
    /// this thread knows: handed over, less what reports said went.
    fn held(&self) -> usize {
        self.handed.saturating_sub(self.reported_sent) as usize
    }
}

/// Bytes in a socket's send queue not yet acknowledged by the peer, where
/// the system says (`SIOCOUTQ` on Linux, `SO_NWRITE` on macOS).
pub(super) fn unsent(fd: &OwnedFd) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let mut queued: libc::c_int = 0;
        // SAFETY: `fd` is an open socket we own; TIOCOUTQ (SIOCOUTQ) writes
        // one int.
        let done = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        (done == 0).then_some(queued.max(0) as usize)
    }
    #[cfg(target_vendor = "apple")]
    {
        let mut queued: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above; SO_NWRITE writes one int of `len` bytes.
        let done = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NWRITE,
                (&mut queued as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (done == 0).then_some(queued.max(0) as usize)
    }
    #[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
    {
        let _ = fd;
        None
    }
}

/// Makes the last close of a socket reset the connection (`SO_LINGER` on,
/// with a time of 0) instead of ending it: the kernel discards what is
/// still queued for the client and sends `RST`, rather than keeping the
/// bytes (megabytes, for a client that never reads) in an orphaned socket
/// in `FIN-WAIT-1` until the peer takes them or the kernel gives up. For
/// the endings that drop a client (slow consumer, stall, `closeTimeout`,
/// `closeAll()`'s timeout). Returns whether the option was set.
///
/// `fd` must be open, read by the caller from the socket's live handle in
/// the same call: only the socket is changed (the option is shared by
/// every descriptor of it), nothing is written.
pub fn reset_on_close(fd: i32) -> bool {
    if fd < 0 {
        return false;
    }
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket (see above); SO_LINGER reads one
    // `linger` of the given size.
    let done = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    done == 0
}

impl DirectSocket {
    /// Notes a write that took `n` bytes and left `pending` behind.
    fn progress(&mut self, n: usize, now: Instant) {
        self.progress_left(n, self.pending.len(), now);
    }

    /// Notes a write that took `n` bytes and left `left` behind.
    fn progress_left(&mut self, n: usize, left: usize, now: Instant) {
        if left == 0 {
            self.stalled_since = None;
        } else if n > 0 || self.stalled_since.is_none() {
            self.stalled_since = Some(now);
            self.queued = unsent(&self.fd).unwrap_or(0);
        }
    }

    /// Whether the socket took nothing for its stall timeout. A send queue
    /// shorter than when progress was last seen is progress: the client
    /// read, though the socket is not writable yet.
    fn stalled(&mut self, now: Instant) -> bool {
        let Some(since) = self.stalled_since else {
            return false;
        };
        if let Some(queued) = unsent(&self.fd) {
            if queued < self.queued {
                self.stalled_since = Some(now);
                self.queued = queued;
                return false;
            }
        }
        now.saturating_duration_since(since) >= self.stall_timeout
    }

    /// When the stall clock runs out, if it runs.
    fn deadline(&self) -> Option<Instant> {
        self.stalled_since.map(|since| since + self.stall_timeout)
    }

    /// Starts the task that wakes JavaScript once the socket is writable,
    /// or at the stall deadline.
    fn wait(&mut self, slot: Slot, wakeup: Option<Wakeup>, spawn: Spawn) {
        if let Some(previous) = self.waiting.take() {
            previous.abort();
        }
        if let Some(adopted) = &self.adopted {
            // Its task watches the socket (it holds its one registration).
            adopted.send(Command::Writable(self.deadline()));
            return;
        }
        self.waiting = wakeup.map(|wakeup| {
            spawn(Box::pin(wait_writable(
                self.fd.clone(),
                slot,
                self.deadline(),
                wakeup,
            )))
        });
    }
}

impl Drop for DirectSocket {
    fn drop(&mut self) {
        if let Some(task) = self.waiting.take() {
            task.abort();
        }
    }
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
    scratch: Vec<u8>,
    spawn: Spawn,
}

enum Outcome {
    All,
    Partial,
    Failed,
}

/// Writes `bytes` to `fd` without blocking and without SIGPIPE; returns how
/// many were taken (0 for `EAGAIN`).
pub(super) fn send(fd: &OwnedFd, bytes: &[u8]) -> std::io::Result<usize> {
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: `fd` is an open descriptor we own; the buffer is valid for
        // `rest.len()` bytes.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            sent += n as usize;
            continue;
        }
        let err = std::io::Error::last_os_error();
        match err.kind() {
            std::io::ErrorKind::WouldBlock => break,
            std::io::ErrorKind::Interrupted => continue,
            _ => return Err(err),
        }
    }
    Ok(sent)
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
        let Some(socket) = sockets.get_mut(&slot) else {
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
    // SAFETY: the descriptor is our own duplicate, kept open by the `Arc`
    // that the watch holds for as long as it lives.
    let watch = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::WRITABLE)
    };
    if let Ok(watch) = watch {
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
            sockets: Sockets::default(),
            wakeups: HashMap::new(),
            adoption_events: HashMap::new(),
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
        for &slot in slots {
            let outcome = match self.sockets.get_mut(&slot) {
                Some(socket) if socket.adopted.is_some() => {
                    let id = socket.adopted.as_ref().map_or(0, Adopted::id);
                    if handed.is_empty() {
                        let shards = self.writers.len();
                        handed.resize_with(shards, || Handed::for_about(slots.len() / shards + 1));
                    }
                    let added = handed[self.writers.shard_of(id)].add(id, hub, slot, now);
                    socket.handed += added as u64;
                    if added > 0 {
                        owner = Some(socket.owner);
                    }
                    let held = socket.held();
                    hub.set_held(slot, held);
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
        for (index, mut handed) in handed.into_iter().enumerate() {
            if !handed.is_empty() {
                handed.chunks.seal();
                self.writers
                    .shard(index)
                    .push(Job::Write(handed, wakeup.cloned()));
            }
        }
        written
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
            outcome,
        } in reports
        {
            hub.counters.bytes_written += sent as u64;
            let Some(socket) = self.sockets.get_mut(&slot) else {
                continue;
            };
            if socket.adopted.as_ref().is_none_or(|a| a.id() != id) {
                continue;
            }
            socket.reported_sent = socket.reported_sent.max(sent_total);
            let held = socket.held();
            match outcome {
                Wrote::All => {
                    // It took all it was given: what is held now came
                    // since, handed over with a later flush, no stall. (A
                    // later report of the same connection, further on in
                    // this list, pauses it again if its socket was full.)
                    socket.progress_left(sent, 0, now);
                    hub.set_held(slot, held);
                    hub.resume(slot);
                    if held == 0 && hub.drained(slot) {
                        written.drained.push(slot);
                    }
                }
                Wrote::Blocked => {
                    socket.progress_left(sent, held, now);
                    hub.set_held(slot, held);
                    hub.pause(slot);
                    if let Some(adopted) = &socket.adopted {
                        adopted.send(Command::Writable(socket.deadline()));
                    }
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
        self.wakeups.insert(owner, wakeup);
    }

    /// Takes a stream's socket into Rust: duplicates `fd` and frames the
    /// stream's bytes for direct writes. Returns false (and changes nothing)
    /// where that cannot be done.
    pub fn attach(&mut self, hub: &mut Hub, slot: Slot, fd: i32, stall_timeout: Duration) -> bool {
        let Some(owner) = hub.owner(slot) else {
            return false;
        };
        if fd < 0 {
            return false;
        }
        // SAFETY: `fd` is the descriptor of an open socket, read from its
        // handle by the caller in this same call; F_DUPFD_CLOEXEC makes a new
        // descriptor of our own for the same socket.
        let own = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if own < 0 {
            return false;
        }
        // SAFETY: `own` was just made, and nothing else owns it.
        let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(own) });
        self.sockets.insert(
            slot,
            DirectSocket {
                fd,
                owner,
                pending: Vec::new(),
                waiting: None,
                stalled_since: None,
                queued: 0,
                stall_timeout,
                adopted: None,
                handed: 0,
                reported_sent: 0,
            },
        );
        hub.set_framing(slot, Framing::Direct);
        true
    }

    /// After a wakeup (the socket is writable, or its stall deadline came):
    /// writes what was pending. Returns whether the stream is writable again
    /// (then it is resumed; its queued bytes go with the next flush). Reports a
    /// drain, a failure or a stall through `written`.
    pub fn resume(&mut self, hub: &mut Hub, slot: Slot, written: &mut Written) -> bool {
        let Some(socket) = self.sockets.get_mut(&slot) else {
            return false;
        };
        socket.waiting = None;
        if socket.adopted.is_some() {
            // Writable, or at its stall deadline: written to again (off
            // this thread), unless it took nothing for its stall timeout.
            let now = Instant::now();
            if socket.stalled(now) {
                written.stalled.push(slot);
                return false;
            }
            let wakeup = self.wakeups.get(&socket.owner).cloned();
            if let Some(adopted) = &socket.adopted {
                adopted.push(Job::Resume(adopted.id(), wakeup));
            }
            return false;
        }
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
        self.sockets
            .remove(&slot)
            .map(|mut socket| std::mem::take(&mut socket.pending))
            .unwrap_or_default()
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
        self.adoption_events.insert(owner, events);
    }

    /// Takes over a stream's connection, whose socket Rust writes to
    /// already, once Node has let go of it (see src/io/adopted.rs): from
    /// now on its task watches it and ends it. Returns the connection's
    /// adoption id, or None (nothing changed) where it cannot be done.
    pub fn adopt(&mut self, slot: Slot) -> Option<u32> {
        let spawn = self.spawn;
        let socket = self.sockets.get_mut(&slot)?;
        if socket.adopted.is_some() {
            return None;
        }
        let events = self.adoption_events.get(&socket.owner)?.clone();
        let id = self.next_adoption;
        self.next_adoption = self.next_adoption.wrapping_add(1);
        if let Some(task) = socket.waiting.take() {
            task.abort();
        }
        // Its task counts it out when the connection is closed.
        self.adopted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wakeup = self.wakeups.get(&socket.owner).cloned();
        let pending = std::mem::take(&mut socket.pending);
        let waits = !pending.is_empty();
        socket.handed = pending.len() as u64;
        socket.reported_sent = 0;
        let shard = self.writers.shard(self.writers.shard_of(id)).clone();
        socket.adopted = Some(adopted::adopt(
            socket.fd.clone(),
            slot,
            id,
            pending,
            adopted::Tell {
                wakeup,
                events,
                open: self.adopted.clone(),
            },
            shard,
            spawn,
        ));
        // A write that was waiting for room goes on waiting, in the task.
        if waits {
            socket.wait(slot, None, spawn);
        }
        Some(id)
    }

    /// Ends an adopted stream's connection cleanly: what it has pending and
    /// queued, then the response's last chunk, within `timeout`, or the
    /// connection is reset. The stream's socket is no longer the slot's.
    /// Returns false (nothing changed) if the stream's connection is not
    /// adopted.
    pub fn end_adopted(&mut self, hub: &mut Hub, slot: Slot, timeout: Duration) -> bool {
        let Some(adopted) = self.sockets.get_mut(&slot).and_then(|s| s.adopted.take()) else {
            return false;
        };
        self.sockets.remove(&slot);
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

    /// What an adopted stream's connection holds unwritten now, or None if
    /// the stream's connection is not adopted.
    pub fn held_now(&mut self, slot: Slot) -> Option<usize> {
        let socket = self.sockets.get_mut(&slot)?;
        let sent = socket.adopted.as_ref()?.conn().sent_total();
        Some(socket.handed.saturating_sub(sent) as usize)
    }

    /// How many adopted connections are open on this thread.
    pub fn adopted_count(&self) -> usize {
        self.adopted.load(std::sync::atomic::Ordering::Relaxed)
    }
}
