//! An adopted connection as its stream, its writer shard and the watcher
//! share it: the bytes no write has taken yet ([`Conn`]), what is asked of
//! the watcher ([`Command`], through its [`Inbox`]), and what each write
//! did, for the JavaScript thread ([`Report`]). See [`super::adopted`] for
//! the watcher, [`super::writers`] for who writes.
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
//! JavaScript thread, woken by the watcher, asks its shard to go on.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::core::hub::Slot;
use crate::io::sys;
use crate::io::{AdoptionEvents, Wakeup};

/// What the stream's side (or its shard) asks of the watcher for a
/// connection.
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

/// Whom the watcher tells what of a connection: its owner's wakeup, and
/// its owner's adoption events.
pub struct Tell {
    pub wakeup: Option<Wakeup>,
    pub events: AdoptionEvents,
}

/// What the watcher is asked (see [`super::adopted`]), in order.
pub enum Mail {
    /// Watch this connection, telling `tell` what happens to it.
    Watch(Arc<Conn>, Arc<Tell>),
    /// Connection `id`'s stream (or its shard) asks for this.
    Command(u32, Command),
    /// Its owner's thread is gone: the watcher ends.
    Stop,
}

/// The watcher's mail: one queue for all the connections it watches (not
/// a mailbox per connection: an idle connection holds nothing for it), and
/// what wakes it.
pub struct Inbox {
    mail: std::sync::Mutex<Vec<Mail>>,
    waker: mio::Waker,
}

impl Inbox {
    pub fn new(waker: mio::Waker) -> Self {
        Inbox {
            mail: std::sync::Mutex::default(),
            waker,
        }
    }

    /// Queues `mail`, and wakes the watcher if it was the first: the
    /// watcher takes all that is queued each time it wakes.
    pub fn post(&self, mail: Mail) {
        let first = {
            let mut queue = locked(&self.mail);
            queue.push(mail);
            queue.len() == 1
        };
        if first {
            // A waker that fails is a watcher that is gone: nothing waits.
            let _ = self.waker.wake();
        }
    }

    /// Takes what is queued, in order, into `into` (empty).
    pub fn take(&self, into: &mut Vec<Mail>) {
        std::mem::swap(&mut *locked(&self.mail), into);
    }
}

/// A connection's bytes that no write has taken yet.
#[derive(Default)]
struct Outgoing {
    /// In order: what a write left, then what flushes appended since.
    bytes: Vec<u8>,
    /// A write is under way with bytes taken out of `bytes` (they go before
    /// what is in `bytes` now); no other write is made meanwhile. A flag,
    /// not a count: nothing reads the count, and every adopted connection
    /// holds one.
    writing: bool,
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
/// the tasks that write to it and the watcher.
pub struct Conn {
    fd: OwnedFd,
    slot: Slot,
    id: u32,
    out: std::sync::Mutex<Outgoing>,
    /// The watcher's: what [`Conn::send`] asks goes there.
    inbox: Arc<Inbox>,
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
    pub fn new(fd: OwnedFd, slot: Slot, id: u32, pending: Vec<u8>, inbox: Arc<Inbox>) -> Self {
        let blocked = !pending.is_empty();
        let received = pending.len() as u64;
        Conn {
            fd,
            slot,
            id,
            out: std::sync::Mutex::new(Outgoing {
                bytes: pending,
                writing: false,
                blocked,
                sent: 0,
                received,
            }),
            inbox,
        }
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub fn slot(&self) -> Slot {
        self.slot
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// One write of what the connection holds, for the watcher as it
    /// finishes (the writers write no more to a finishing connection
    /// once its last bytes are appended).
    pub fn write_rest(&self) -> Rest {
        let mut out = locked(&self.out);
        if out.writing {
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
    /// watcher, finishing it, never waits for a writer the scheduler put
    /// aside mid-write.
    pub(super) fn write_out(&self, pieces: &[&[u8]]) -> Option<Report> {
        let mut bytes = {
            let mut out = locked(&self.out);
            if out.blocked || out.writing {
                for piece in pieces {
                    out.keep(piece);
                }
                return None;
            }
            let bytes = std::mem::take(&mut out.bytes);
            let given: usize = pieces.iter().map(|p| p.len()).sum();
            out.received += given as u64;
            out.writing = true;
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
                        out.writing = true;
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
            out.writing = false;
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
    /// Asks the watcher for `command` on this connection; a connection it
    /// is done with needs nothing more.
    pub fn send(&self, command: Command) {
        self.inbox.post(Mail::Command(self.id, command));
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
        let poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let inbox = Arc::new(super::Inbox::new(waker));
        let conn = Conn::new(ours.into(), 0, 0, Vec::new(), inbox);
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
