//! An adopted connection as its stream, its writer shard and its own task
//! share it: the bytes no write has taken yet ([`Conn`]), the mailbox its
//! task reads ([`Command`]), and what each write did, for the JavaScript
//! thread ([`Report`]). See [`super::adopted`] for the task,
//! [`super::writers`] for who writes.
//!
//! # Writing
//!
//! A flush on the JavaScript thread copies each adopted stream's chunk into
//! blocks per writer shard and hands each shard its blocks (see
//! [`super::writers`]): the JavaScript thread makes no `send()` and touches
//! no connection for them. A shard's task writes each connection's chunks
//! straight from the blocks, after what its [`Conn`] still holds, in one
//! `sendmsg()`; only what the socket does not take is copied into the
//! connection (its bytes not yet written, in order). It leaves one
//! [`Report`] (how many bytes went, in all, and whether the socket was full
//! or failed) where the JavaScript thread takes them with its next flush,
//! waking it once, when that list was empty. What was handed to a
//! connection and not yet taken by its socket stays counted as the
//! stream's own (held), so the client's cap and the memory budget see it.
//! A full socket is written to no more until it is writable again and the
//! JavaScript thread, woken by the connection's task, asks its shard to go
//! on.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::core::hub::Slot;
use crate::io::sys;

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
pub struct Mailbox {
    mail: std::sync::Mutex<Mail>,
}

impl Mailbox {
    pub fn post(&self, command: Command) {
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
    pub fn poll_next(&self, cx: &Context<'_>) -> Poll<Command> {
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

    pub async fn next(&self) -> Command {
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
    /// Bytes a writer has given the connection, in all (what it was adopted
    /// holding included): what it holds itself is this less `sent`; what
    /// its stream handed over beyond this is still on its way to it.
    received: u64,
}

impl Outgoing {
    /// Appends `bytes` to what no write has taken yet, in a buffer of
    /// exactly that size: thousands of connections each holding a doubled
    /// capacity they never fill (a storm of replays) add up.
    fn keep(&mut self, bytes: &[u8]) {
        self.bytes.reserve_exact(bytes.len());
        self.bytes.extend_from_slice(bytes);
        self.received += bytes.len() as u64;
    }
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
    /// Bytes writers have given the connection since it was adopted: what
    /// was handed to it less this is still on its way to it (in a writer's
    /// queue), not refused by its socket.
    pub received_total: u64,
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

/// What [`Conn::write_rest`] did.
pub enum Rest {
    /// A write is under way (a `send()` at most): its bytes go first.
    Busy,
    /// Nothing is left to write.
    Done,
    /// A write was made: how many bytes the socket took (0: it is full).
    Wrote(std::io::Result<usize>),
}

impl Conn {
    /// A connection on our descriptor `fd`, holding `pending` (what a
    /// write left of the stream's bytes: it is blocked until writable,
    /// then).
    pub fn new(fd: Arc<OwnedFd>, slot: Slot, id: u32, pending: Vec<u8>) -> Self {
        let blocked = !pending.is_empty();
        let received = pending.len() as u64;
        Conn {
            fd,
            slot,
            id,
            out: std::sync::Mutex::new(Outgoing {
                bytes: pending,
                writing: None,
                blocked,
                sent: 0,
                received,
            }),
            mailbox: Mailbox::default(),
        }
    }

    pub fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    pub fn slot(&self) -> Slot {
        self.slot
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn mailbox(&self) -> &Mailbox {
        &self.mailbox
    }

    /// One write of what the connection holds, for its task as it
    /// finishes (the writers write no more to a finishing connection
    /// once its last bytes are appended).
    pub fn write_rest(&self) -> Rest {
        let mut out = locked(&self.out);
        if out.writing.is_some() {
            return Rest::Busy;
        }
        if out.bytes.is_empty() {
            return Rest::Done;
        }
        let wrote = sys::send(&self.fd, &out.bytes);
        if let Ok(n) = wrote {
            out.bytes.drain(..n);
            out.sent += n as u64;
        }
        Rest::Wrote(wrote)
    }

    /// Appends `bytes` (a flush's chunk) to what the connection holds.
    pub fn append(&self, bytes: &[u8]) {
        locked(&self.out).keep(bytes);
    }

    /// Bytes the socket has taken since the connection was adopted, and
    /// bytes writers have given the connection (see [`Report::received_total`]).
    pub fn totals(&self) -> (u64, u64) {
        let out = locked(&self.out);
        (out.sent, out.received)
    }

    /// The socket is writable again: the next write is made.
    pub fn unblock(&self) {
        locked(&self.out).blocked = false;
    }

    /// Writes what the connection holds, then `pieces` (a round's chunks
    /// for it, still in the flushes' buffers), in one `sendmsg()`, unless
    /// it is blocked (then there is nothing to report: its owner knows) or
    /// another write is under way (which reports): then the pieces are
    /// appended. Only what the socket does not take is copied into the
    /// connection: a storm of replays whose sockets keep up holds each
    /// chunk once, in its flush's buffer, not also in every connection
    /// (measured: 100-248 MiB beyond the connections with the copies).
    /// The lock is never held over a system call, so that the connection's
    /// own task, finishing, never waits for a writer the scheduler put
    /// aside mid-write.
    pub(super) fn write_out(&self, pieces: &[&[u8]]) -> Option<Report> {
        let mut bytes = {
            let mut out = locked(&self.out);
            if out.blocked || out.writing.is_some() {
                for piece in pieces {
                    out.keep(piece);
                }
                return None;
            }
            let bytes = std::mem::take(&mut out.bytes);
            let given: usize = pieces.iter().map(|p| p.len()).sum();
            out.received += given as u64;
            out.writing = Some(bytes.len() + given);
            bytes
        };
        let mut pieces = pieces;
        let mut sent = 0;
        loop {
            let total = bytes.len() + pieces.iter().map(|p| p.len()).sum::<usize>();
            let result = match (bytes.is_empty(), pieces) {
                (_, _) if total == 0 => Ok(0),
                (false, []) => sys::send(&self.fd, &bytes),
                _ => {
                    // A connection is given a piece or two a round: no
                    // allocation for them.
                    let parts: SmallVec<[std::io::IoSlice<'_>; 4]> = std::iter::once(&bytes[..])
                        .chain(pieces.iter().copied())
                        .filter(|part| !part.is_empty())
                        .map(std::io::IoSlice::new)
                        .collect();
                    sys::send_vectored(&self.fd, &parts)
                }
            };
            let mut out = locked(&self.out);
            if let Ok(n) = result {
                out.sent += n as u64;
            }
            let outcome = match result {
                Ok(n) if n == total => {
                    sent += n;
                    pieces = &[];
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
                    // What is left, in a buffer of its size: the one
                    // written from goes.
                    let mut rest = Vec::with_capacity(total - n + out.bytes.len());
                    let mut skip = n;
                    for part in std::iter::once(&bytes[..]).chain(pieces.iter().copied()) {
                        let from = skip.min(part.len());
                        skip -= from;
                        rest.extend_from_slice(&part[from..]);
                    }
                    rest.extend_from_slice(&out.bytes);
                    out.bytes = rest;
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
                received_total: out.received,
                outcome,
            });
        }
    }
}

impl Conn {
    /// Asks the connection's task for `command`; a task that is done
    /// needs nothing more.
    pub fn send(&self, command: Command) {
        self.mailbox.post(command);
    }
}

#[cfg(test)]
mod writes {
    use std::io::Read;
    use std::sync::Arc;

    use super::{Conn, Wrote};

    /// A round's pieces go out in order, after what the connection held;
    /// what a full socket does not take is kept, in order, and goes once
    /// it is writable again; pieces given while blocked go after it.
    #[test]
    fn pieces_go_in_order_through_a_full_socket() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let conn = Conn::new(Arc::new(ours.into()), 0, 0, Vec::new());
        let piece = |n: u8| vec![n; 4_000_000];
        let (a, b, c) = (piece(1), piece(2), piece(3));
        conn.append(b"held first;");
        let first = conn.write_out(&[&a, &b]).unwrap();
        assert_eq!(
            first.outcome,
            Wrote::Blocked,
            "a socket pair takes less than 8 MB at once"
        );
        // Blocked: these are kept after what is left.
        assert_eq!(conn.write_out(&[&c]), None);
        let mut expected = b"held first;".to_vec();
        for p in [&a, &b, &c] {
            expected.extend_from_slice(p);
        }
        let mut got = Vec::new();
        let mut buffer = vec![0; 65536];
        let mut sent = first.sent as u64;
        while got.len() < expected.len() {
            let n = theirs.read(&mut buffer).unwrap();
            got.extend_from_slice(&buffer[..n]);
            conn.unblock();
            if let Some(report) = conn.write_out(&[]) {
                assert_ne!(report.outcome, Wrote::Failed);
                sent = report.sent_total;
            }
        }
        assert_eq!(sent, expected.len() as u64);
        assert!(got == expected, "the bytes arrived in order, once");
    }
}
