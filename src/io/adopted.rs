//! Connections Rust has taken over from Node (adopted): Node's socket,
//! request, response and parser are gone, and Rust alone writes to the
//! connection, watches it, and ends it.
//!
//! # Writing
//!
//! A flush on the JavaScript thread copies each adopted stream's chunk into
//! one buffer per writer shard and hands each shard its buffer (see
//! [`super::writers`]): the JavaScript thread makes no `send()` and touches
//! no connection for them. A shard's task appends each chunk to its
//! connection's [`Conn`] (its bytes not yet written, in order), writes it,
//! and leaves one [`Report`] (how many bytes went, in all, and whether the
//! socket was full or failed) where the JavaScript thread takes them with
//! its next flush, waking it once, when that list was empty. What was
//! handed to a connection and not yet taken by its socket stays counted as
//! the stream's own (held), so the client's cap and the memory budget see
//! it. A full socket is written to no more until it is writable again and
//! the JavaScript thread, woken by the connection's task, asks its shard to
//! go on.
//!
//! # Watching
//!
//! Each adopted connection has one task, [`watch`], that owns the
//! connection's registration with tokio's reactor (one registration for
//! both directions: a descriptor can be registered only once) and
//!
//! - reads what the client sends, and discards it, until the end or an
//!   error: the client left ([`Adoption::Gone`]);
//! - wakes the stream's owner when a full socket is writable again, or at
//!   its stall deadline ([`Command::Writable`]), as [`super::direct`]'s
//!   waiting task does for streams Node still owns;
//! - ends the connection: cleanly ([`Command::Finish`]: what it holds, the
//!   response's last chunk, a `FIN`, then the client's end, all within a
//!   time), or with a reset ([`Command::Reset`], or its stream released
//!   without a clean end);
//! - and says when the connection is closed ([`Adoption::Finished`]): its
//!   descriptor is closed then.
//!
//! A connection is named by its adoption id, not its slot: the slot is
//! reused once the stream is released, and the connection may outlive it
//! while it finishes.

use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::core::hub::Slot;
use crate::io::writers::{Job, Shard};
use crate::io::{Adoption, AdoptionEvents, Wakeup};

/// What the stream's side asks of the connection's task.
#[derive(Debug)]
pub enum Command {
    /// A write left bytes behind: wake the owner once the socket is
    /// writable, or at the stall deadline.
    Writable(Option<Instant>),
    /// End the connection cleanly: write what it holds (the last of the
    /// stream, framed, and the response's last chunk), end our side, and
    /// wait for the client's end; reset the connection if that takes over
    /// `timeout`.
    Finish { timeout: Duration },
    /// End the connection with a reset: nothing more is written.
    Reset,
}

/// What the stream's side has asked of the task and the task has not
/// taken yet: the latest wish to be woken when writable, and how to end.
/// (Not a channel: tokio's allocates a block of 32 commands per
/// connection, 1.5 KiB that an idle connection would hold.)
#[derive(Default)]
struct Mail {
    writable: Option<Option<Instant>>,
    ending: Option<Command>,
    /// The task to wake when a command is posted. (Not a `Notify`, whose
    /// waiting future would be part of what each idle connection holds.)
    waker: Option<Waker>,
}

#[derive(Default)]
struct Mailbox {
    mail: std::sync::Mutex<Mail>,
}

impl Mailbox {
    fn post(&self, command: Command) {
        let waker = {
            let mut mail = locked(&self.mail);
            match command {
                Command::Writable(deadline) => mail.writable = Some(deadline),
                // The first ending asked for is the one.
                ending => {
                    if mail.ending.is_none() {
                        mail.ending = Some(ending);
                    }
                }
            }
            mail.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next command if one was posted (an ending before a wish to be
    /// woken); else the task of `cx` is woken by the next post.
    fn poll_next(&self, cx: &Context<'_>) -> Poll<Command> {
        let mut mail = locked(&self.mail);
        if let Some(ending) = mail.ending.take() {
            return Poll::Ready(ending);
        }
        if let Some(deadline) = mail.writable.take() {
            return Poll::Ready(Command::Writable(deadline));
        }
        if !mail.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            mail.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    async fn next(&self) -> Command {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

/// A connection's bytes that no write has taken yet.
#[derive(Default)]
struct Outgoing {
    /// In order: what a write left, then what flushes appended since.
    bytes: Vec<u8>,
    /// A write is under way with this many bytes taken out of `bytes` (they
    /// go before `bytes`); no other write is made meanwhile.
    writing: Option<usize>,
    /// A write found the socket full: no write is made until the owner
    /// hands the connection over again ([`Conn::unblock`]).
    blocked: bool,
    /// Bytes the socket has taken, in all.
    sent: u64,
}

/// What a write leaves behind beyond this is given back to the allocator
/// once it is all written: an idle connection holds no large buffer.
const KEPT_CAPACITY: usize = 4096;

/// An adopted connection, shared by its stream (on the JavaScript thread),
/// the tasks that write to it and the task that watches it.
pub struct Conn {
    fd: Arc<OwnedFd>,
    slot: Slot,
    id: u32,
    out: std::sync::Mutex<Outgoing>,
    mailbox: Mailbox,
}

/// What one write of a connection did, for the JavaScript thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub slot: Slot,
    pub id: u32,
    /// Bytes the socket took in this write.
    pub sent: usize,
    /// Bytes the socket has taken since the connection was adopted: what
    /// was handed to it less this is what it holds, whatever is still on
    /// its way to it.
    pub sent_total: u64,
    pub outcome: Wrote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    /// Everything the connection held went.
    All,
    /// The socket was full: the rest waits until it is writable.
    Blocked,
    /// The connection failed: the stream is to end.
    Failed,
}

/// The reports of the writes made off the JavaScript thread, until its
/// next flush takes them.
pub type Reports = Arc<std::sync::Mutex<Vec<Report>>>;

/// The slot a wakeup names when it only says that reports wait.
pub const REPORTS_WAITING: Slot = Slot::MAX;

pub(super) fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Conn {
    /// Appends `bytes` (a flush's chunk) to what the connection holds.
    pub fn append(&self, bytes: &[u8]) {
        locked(&self.out).bytes.extend_from_slice(bytes);
    }

    /// Bytes the socket has taken since the connection was adopted.
    pub fn sent_total(&self) -> u64 {
        locked(&self.out).sent
    }

    /// The socket is writable again: the next write is made.
    pub fn unblock(&self) {
        locked(&self.out).blocked = false;
    }

    /// Writes what the connection holds, unless it is blocked (then there
    /// is nothing to report: its owner knows) or another write is under
    /// way (which reports, and writes what was appended meanwhile too). The
    /// bytes are taken out for the `send()`: the lock is never held over
    /// a system call, so that a flush on the JavaScript thread, appending,
    /// never waits for a writer the scheduler put aside mid-write.
    pub(super) fn write_out(&self) -> Option<Report> {
        let mut bytes = {
            let mut out = locked(&self.out);
            if out.blocked || out.writing.is_some() {
                return None;
            }
            let bytes = std::mem::take(&mut out.bytes);
            out.writing = Some(bytes.len());
            bytes
        };
        let mut sent = 0;
        loop {
            let result = if bytes.is_empty() {
                Ok(0)
            } else {
                super::direct::send(&self.fd, &bytes)
            };
            let mut out = locked(&self.out);
            if let Ok(n) = result {
                out.sent += n as u64;
            }
            let outcome = match result {
                Ok(n) if n == bytes.len() => {
                    sent += n;
                    if !out.bytes.is_empty() {
                        // Appended while this write went: it goes too.
                        bytes = std::mem::take(&mut out.bytes);
                        out.writing = Some(bytes.len());
                        continue;
                    }
                    if bytes.capacity() <= KEPT_CAPACITY {
                        bytes.clear();
                        out.bytes = bytes;
                    }
                    Wrote::All
                }
                Ok(n) => {
                    sent += n;
                    bytes.drain(..n);
                    bytes.extend_from_slice(&out.bytes);
                    out.bytes = bytes;
                    out.blocked = true;
                    Wrote::Blocked
                }
                Err(_) => {
                    out.bytes = Vec::new();
                    out.blocked = true;
                    Wrote::Failed
                }
            };
            out.writing = None;
            return Some(Report {
                slot: self.slot,
                id: self.id,
                sent,
                sent_total: out.sent,
                outcome,
            });
        }
    }
}

/// The stream's handle on its adopted connection. Its adoption id and
/// shard are kept here, so that a flush reads nothing of the connection.
pub struct Adopted {
    conn: Arc<Conn>,
    id: u32,
    shard: Arc<Shard>,
}

impl Conn {
    /// Asks the connection's task for `command`; a task that is done
    /// needs nothing more.
    pub fn send(&self, command: Command) {
        self.mailbox.post(command);
    }
}

impl Adopted {
    /// Asks the connection's task for `command`.
    pub fn send(&self, command: Command) {
        self.conn.send(command);
    }

    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Has the connection's shard do `job` after what it was given before.
    pub fn push(&self, job: Job) {
        self.shard.push(job);
    }
}

impl Drop for Adopted {
    /// A stream released without a clean end resets its connection (after
    /// a Finish, this comes second and is never taken); its shard forgets
    /// it once done with what it was given before.
    fn drop(&mut self) {
        self.conn.mailbox.post(Command::Reset);
        self.shard.push(Job::Forget(self.id));
    }
}

/// Whom an adopted connection's task tells what: the owner's wakeup, the
/// owner's adoption events, and the count of adopted connections open
/// (this one is counted out as it is closed).
pub struct Tell {
    pub wakeup: Option<Wakeup>,
    pub events: AdoptionEvents,
    pub open: Arc<AtomicUsize>,
}

/// Starts watching an adopted connection: `fd` is the stream's own
/// descriptor of it, `pending` what a write left of the stream's bytes
/// (the connection is blocked until it is writable, then). Returns the
/// stream's handle on it.
pub fn adopt(
    fd: Arc<OwnedFd>,
    slot: Slot,
    id: u32,
    pending: Vec<u8>,
    tell: Tell,
    shard: Arc<Shard>,
    spawn: crate::io::Spawn,
) -> Adopted {
    let blocked = !pending.is_empty();
    let conn = Arc::new(Conn {
        fd,
        slot,
        id,
        out: std::sync::Mutex::new(Outgoing {
            bytes: pending,
            writing: None,
            blocked,
            sent: 0,
        }),
        mailbox: Mailbox::default(),
    });
    shard.push(Job::Adopt(id, Arc::downgrade(&conn)));
    spawn(Box::pin(watch(conn.clone(), tell)));
    Adopted { conn, id, shard }
}

/// Whether `fd` has room for writing now (`poll`, not waiting).
fn writable_now(fd: &OwnedFd) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    n > 0 && poll.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0
}

/// Reads and discards what the client sent (an SSE client sends nothing
/// after its request) until there is nothing more: returns true once its
/// side has ended or the connection failed, false when it would block.
fn drain(fd: &OwnedFd) -> bool {
    let mut scratch = [0u8; 1024];
    loop {
        // SAFETY: `fd` is our open descriptor; the buffer is valid for its
        // length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return true;
        }
        if n > 0 {
            continue;
        }
        match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::WouldBlock => return false,
            std::io::ErrorKind::Interrupted => continue,
            _ => return true,
        }
    }
}

/// The task of one adopted connection (see the module's docs).
async fn watch(conn: Arc<Conn>, tell: Tell) {
    let Tell {
        wakeup,
        events,
        open,
    } = tell;
    crate::io::writers::lower_this_threads_priority();
    let (fd, slot, id, mailbox) = (&conn.fd, conn.slot, conn.id, &conn.mailbox);
    // SAFETY: the descriptor is the stream's own, kept open by the `Arc`
    // the registration holds for as long as it lives.
    let registered = unsafe {
        AsyncFd::register_with_interest(fd.clone(), Interest::READABLE | Interest::WRITABLE)
    };
    let Ok(watch) = registered else {
        // Not watchable: the client is taken to have left, and the
        // connection is reset once the stream is released.
        events(Adoption::Gone(id));
        while let Command::Writable(_) = mailbox.next().await {}
        super::direct::reset_on_close(fd.as_raw_fd());
        drop(conn);
        open.fetch_sub(1, Ordering::Relaxed);
        events(Adoption::Finished(id));
        return;
    };
    // Wake the owner when writable, with a stall deadline or none. The
    // timer is made only while there is a deadline: this future is what
    // each idle connection holds, so it is kept small (see `size_probe`).
    let mut wanted: Option<Option<Instant>> = None;
    let mut stall: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut gone = false;
    let ending = loop {
        match (wanted.flatten(), &mut stall) {
            (Some(deadline), Some(sleep)) => sleep.as_mut().reset(deadline.into()),
            (Some(deadline), None) => {
                stall = Some(Box::pin(tokio::time::sleep_until(deadline.into())))
            }
            (None, _) => stall = None,
        }
        // One hand-written poll, not a `select!` of futures: readiness is
        // polled in place (each readiness future would add 160 bytes to
        // what every idle connection holds).
        let woke = std::future::poll_fn(|cx| {
            if let Poll::Ready(command) = mailbox.poll_next(cx) {
                return Poll::Ready(Woke::Command(command));
            }
            if !gone {
                loop {
                    match watch.poll_read_ready(cx) {
                        Poll::Ready(Ok(mut ready)) => {
                            if drain(fd) {
                                return Poll::Ready(Woke::Gone);
                            }
                            ready.clear_ready();
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(Woke::Gone),
                        Poll::Pending => break,
                    }
                }
            }
            if wanted.is_some() && watch.poll_write_ready(cx).is_ready() {
                return Poll::Ready(Woke::Owner);
            }
            if let Some(sleep) = stall.as_mut() {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woke::Owner);
                }
            }
            Poll::Pending
        })
        .await;
        match woke {
            Woke::Command(Command::Writable(deadline)) => {
                // The owner's write found the socket full, after this task
                // last saw it writable: that readiness is stale.
                let mut noop = Context::from_waker(Waker::noop());
                if let Poll::Ready(Ok(mut ready)) = watch.poll_write_ready(&mut noop) {
                    ready.clear_ready();
                }
                if writable_now(fd) {
                    if let Some(wakeup) = &wakeup {
                        wakeup(slot);
                    }
                } else {
                    wanted = Some(deadline);
                }
            }
            Woke::Command(Command::Finish { timeout }) => break Some(timeout),
            Woke::Command(Command::Reset) => break None,
            Woke::Gone => {
                gone = true;
                events(Adoption::Gone(id));
            }
            Woke::Owner => {
                wanted = None;
                if let Some(wakeup) = &wakeup {
                    wakeup(slot);
                }
            }
        }
    };
    let clean = match ending {
        // Boxed: only a finishing connection holds its timers.
        Some(timeout) if !gone => Box::pin(finish_within(timeout, &watch, &conn)).await,
        _ => false,
    };
    if !clean {
        super::direct::reset_on_close(fd.as_raw_fd());
    }
    drop(watch);
    drop(conn);
    open.fetch_sub(1, Ordering::Relaxed);
    events(Adoption::Finished(id));
}

/// What woke an adopted connection's task.
enum Woke {
    Command(Command),
    /// The client left (its side ended, or the connection failed).
    Gone,
    /// The socket is writable again, or the stall deadline came: the owner
    /// is to be woken.
    Owner,
}

/// [`finish`] within `timeout`, unless the connection is reset first
/// (`closeAll()`'s timeout). Returns whether it all went.
async fn finish_within(timeout: Duration, watch: &AsyncFd<Arc<OwnedFd>>, conn: &Conn) -> bool {
    let reset = async { while let Command::Writable(_) = conn.mailbox.next().await {} };
    tokio::select! {
        done = tokio::time::timeout(timeout, finish(watch, &conn.out)) => done == Ok(true),
        _ = reset => false,
    }
}

/// Writes what the connection holds, ends our side, and waits for the
/// client's end. Returns whether it all went (false: the connection
/// failed).
async fn finish(watch: &AsyncFd<Arc<OwnedFd>>, out: &std::sync::Mutex<Outgoing>) -> bool {
    let fd = watch.get_ref();
    loop {
        let Ok(mut ready) = watch.writable().await else {
            return false;
        };
        let wrote = {
            let mut out = locked(out);
            if out.writing.is_some() {
                // A write is under way (a send() at most): its bytes go
                // first.
                None
            } else if out.bytes.is_empty() {
                break;
            } else {
                let wrote = super::direct::send(fd, &out.bytes);
                if let Ok(n) = wrote {
                    out.bytes.drain(..n);
                    out.sent += n as u64;
                }
                Some(wrote)
            }
        };
        match wrote {
            None => tokio::task::yield_now().await,
            Some(Ok(0)) => ready.clear_ready(),
            Some(Ok(_)) => {}
            Some(Err(_)) => return false,
        }
    }
    // SAFETY: our open descriptor; SHUT_WR sends a FIN after what is queued.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
    // Done once the client has taken every byte (its FIN need not come: an
    // HTTP client may keep the connection for another request), or its side
    // ends first. Nothing is left queued in the kernel then.
    loop {
        if super::direct::unsent(fd).unwrap_or(0) == 0 {
            return true;
        }
        tokio::select! {
            ready = watch.readable() => {
                let Ok(mut ready) = ready else {
                    return false;
                };
                if drain(fd) {
                    return true;
                }
                ready.clear_ready();
            }
            _ = tokio::time::sleep(UNSENT_POLL) => {}
        }
    }
}

/// How often a finishing connection's send queue is looked at: there is
/// no readiness for "the client has taken it all".
const UNSENT_POLL: Duration = Duration::from_millis(10);

#[cfg(test)]
mod size_probe {
    use std::sync::Arc;

    /// What each idle adopted connection holds is its task's future: it
    /// stays small (808 bytes with a `select!` of readiness futures and a
    /// `Notify`; 264 with the hand-written poll).
    #[test]
    fn an_idle_connections_task_is_small() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let conn = Arc::new(super::Conn {
            fd: Arc::new(ours.into()),
            slot: 0,
            id: 0,
            out: Default::default(),
            mailbox: Default::default(),
        });
        let tell = super::Tell {
            wakeup: None,
            events: Arc::new(|_| {}),
            open: Default::default(),
        };
        let task = super::watch(conn, tell);
        assert!(
            std::mem::size_of_val(&task) <= 320,
            "{} bytes",
            std::mem::size_of_val(&task)
        );
    }
}
