//! Connections Rust has taken over from Node (adopted): Node's socket,
//! request, response and parser are gone, and Rust alone writes to the
//! connection, watches it, and ends it.
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
use crate::io::conn::{Command, Conn, Rest};
use crate::io::sys;
use crate::io::writers::{Job, Shard};
use crate::io::{Adoption, AdoptionEvents, Wakeup};

/// The stream's handle on its adopted connection. Its adoption id and
/// shard are kept here, so that a flush reads nothing of the connection.
pub struct Adopted {
    conn: Arc<Conn>,
    id: u32,
    shard: Arc<Shard>,
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
        self.conn.mailbox().post(Command::Reset);
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
    let conn = Arc::new(Conn::new(fd, slot, id, pending));
    shard.push(Job::Adopt(id, Arc::downgrade(&conn)));
    spawn(Box::pin(watch(conn.clone(), tell)));
    Adopted { conn, id, shard }
}

/// The task of one adopted connection (see the module's docs).
async fn watch(conn: Arc<Conn>, tell: Tell) {
    let Tell {
        wakeup,
        events,
        open,
    } = tell;
    sys::lower_this_threads_priority();
    let (fd, slot, id, mailbox) = (conn.fd(), conn.slot(), conn.id(), conn.mailbox());
    let Some(watch) = sys::watch(fd.clone(), Interest::READABLE | Interest::WRITABLE) else {
        // Not watchable: the client is taken to have left, and the
        // connection is reset once the stream is released.
        events(Adoption::Gone(id));
        while let Command::Writable(_) = mailbox.next().await {}
        sys::reset_on_close(fd.as_raw_fd());
        drop(conn);
        open.fetch_sub(1, Ordering::Relaxed);
        events(Adoption::Finished { id, clean: false });
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
                            if sys::drain(fd) {
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
                if sys::writable_now(fd) {
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
        sys::reset_on_close(fd.as_raw_fd());
    }
    drop(watch);
    drop(conn);
    open.fetch_sub(1, Ordering::Relaxed);
    events(Adoption::Finished { id, clean });
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
    let reset = async { while let Command::Writable(_) = conn.mailbox().next().await {} };
    tokio::select! {
        done = tokio::time::timeout(timeout, finish(watch, conn)) => done == Ok(true),
        _ = reset => false,
    }
}

/// Writes what the connection holds, ends our side, and waits for the
/// client's end. Returns whether it all went (false: the connection
/// failed).
async fn finish(watch: &AsyncFd<Arc<OwnedFd>>, conn: &Conn) -> bool {
    let fd = watch.get_ref();
    loop {
        let Ok(mut ready) = watch.writable().await else {
            return false;
        };
        match conn.write_rest() {
            Rest::Busy => tokio::task::yield_now().await,
            Rest::Done => break,
            Rest::Wrote(Ok(0)) => ready.clear_ready(),
            Rest::Wrote(Ok(_)) => {}
            Rest::Wrote(Err(_)) => return false,
        }
    }
    sys::shut_write(fd);
    // Done once the client has taken every byte (its FIN need not come: an
    // HTTP client may keep the connection for another request), or its side
    // ends first. Nothing is left queued in the kernel then.
    loop {
        if sys::unsent(fd).unwrap_or(0) == 0 {
            return true;
        }
        tokio::select! {
            ready = watch.readable() => {
                let Ok(mut ready) = ready else {
                    return false;
                };
                if sys::drain(fd) {
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
        let conn = Arc::new(super::Conn::new(Arc::new(ours.into()), 0, 0, Vec::new()));
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
