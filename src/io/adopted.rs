//! Connections Rust has taken over from Node (adopted): Node's socket,
//! request, response and parser are gone, and Rust alone writes to the
//! connection, watches it, and ends it.
//!
//! # Watching
//!
//! One thread per JavaScript thread, the watcher ([`Watcher`]), watches
//! every adopted connection of that thread in one readiness loop (epoll on
//! Linux, kqueue on macOS, through `mio`): a connection is a registration
//! with the kernel and an entry in the loop's table, not a task. For each
//! connection it
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
//! # Why a loop, not a task per connection
//!
//! What an idle connection costs is what sits in memory for it. A tokio
//! task per connection held its task (about 0.4 KiB, aligned to 128 bytes),
//! its registration with tokio's reactor (0.25 KiB, likewise aligned) and a
//! mailbox; the aligned allocations left as much again in freed fragments
//! beside them. Measured at 10,000 idle connections: malloc held 1.05 KiB a
//! connection, and 0.4 KiB more in fragments. The loop holds an entry of
//! its table (64 bytes in a slab, and 8 in the map from adoption id to
//! place: a map of whole entries held each at up to twice its size in
//! spare capacity, 160 bytes a connection at 15,000) and the kernel's
//! registration.
//!
//! # Giving back what Node freed
//!
//! Adopting a connection frees Node's objects for it (its socket, parser
//! and their native parts), allocated between the long-lived ones of the
//! connections beside it: the allocator keeps the pages they leave, in
//! pieces. After a wave of adoptions (or of closes), once it has been quiet
//! for [`TRIM_QUIET`], the watcher gives those pages back (glibc). Measured
//! at 10,000 idle connections: 0.29 KiB a connection given back.
//!
//! The watcher's work per event is small (a read that finds the end, a
//! wakeup, a connection's last bytes); the writing is the writers' (see
//! [`super::writers`]). Its thread keeps the process's priority: a client
//! that can take more is told so without waiting behind the writers.
//!
//! A connection is named by its adoption id, not its slot: the slot is
//! reused once the stream is released, and the connection may outlive it
//! while it finishes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::core::hub::Slot;
use crate::io::conn::{Command, Conn, Inbox, Mail, Rest, Tell};
use crate::io::sys;
use crate::io::writers::{Job, Shard};
use crate::io::Adoption;

/// The stream's handle on its adopted connection. Its adoption id and
/// shard are kept here, so that a flush reads nothing of the connection.
pub struct Adopted {
    conn: Arc<Conn>,
    id: u32,
    shard: Arc<Shard>,
}

impl Adopted {
    /// Asks the watcher for `command` on this connection.
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
    /// a Finish, this ends a connection still finishing: `closeAll()`'s
    /// timeout); its shard forgets it once done with what it was given
    /// before.
    fn drop(&mut self) {
        self.conn.send(Command::Reset);
        self.shard.push(Job::Forget(self.id));
    }
}

/// The token of the watcher's own waker; a connection's is its adoption id.
const WAKER: Token = Token(usize::MAX);

/// How soon a finishing connection whose shard is mid-write is tried again.
const BUSY_RETRY: Duration = Duration::from_millis(1);

/// How often a finishing connection's send queue is looked at: there is
/// no readiness for "the client has taken it all".
const UNSENT_POLL: Duration = Duration::from_millis(10);

/// Connections adopted or closed since freed pages were last given back,
/// past which they are given back once it is quiet (see the module's docs).
const TRIM_AFTER: usize = 1000;

/// How long no connection may have come or gone before freed pages are
/// given back.
const TRIM_QUIET: Duration = Duration::from_secs(1);

/// The watcher of one JavaScript thread's adopted connections (see the
/// module's docs): its thread, reached through its [`Inbox`].
pub struct Watcher {
    inbox: Arc<Inbox>,
}

impl Watcher {
    /// Starts the watcher's thread; `open` counts the connections open
    /// (each is counted out as it is closed).
    pub fn start(open: Arc<AtomicUsize>) -> std::io::Result<Self> {
        let poll = Poll::new()?;
        let inbox = Arc::new(Inbox::new(mio::Waker::new(poll.registry(), WAKER)?));
        let watching = Watching {
            poll,
            inbox: inbox.clone(),
            open,
            conns: Table::default(),
            timers: BinaryHeap::new(),
            changes: 0,
            trim_at: None,
        };
        std::thread::Builder::new()
            .name("native-sse-watch".into())
            // Its frames are small: a read's scratch buffer is the largest.
            .stack_size(256 * 1024)
            .spawn(move || watching.run())?;
        Ok(Watcher { inbox })
    }

    /// Starts watching an adopted connection: `fd` is the stream's own
    /// descriptor of it, `pending` what a write left of the stream's bytes
    /// (the connection is blocked until it is writable, then). Returns the
    /// stream's handle on it.
    pub fn adopt(
        &self,
        fd: std::os::fd::OwnedFd,
        slot: Slot,
        id: u32,
        pending: Vec<u8>,
        tell: Arc<Tell>,
        shard: Arc<Shard>,
    ) -> Adopted {
        let conn = Arc::new(Conn::new(fd, slot, id, pending, self.inbox.clone()));
        // Watched before its shard can ask anything of it (a Finish).
        self.inbox.post(Mail::Watch(conn.clone(), tell));
        shard.push(Job::Adopt(id, Arc::downgrade(&conn)));
        Adopted { conn, id, shard }
    }
}

impl Drop for Watcher {
    /// The thread ends; the connections it held are closed as their last
    /// holders let go.
    fn drop(&mut self) {
        self.inbox.post(Mail::Stop);
    }
}

/// One connection, as the watcher knows it.
struct Watched {
    conn: Arc<Conn>,
    tell: Arc<Tell>,
    /// Registered with the loop (a descriptor that cannot be is taken as a
    /// client that left).
    registered: bool,
    /// The client left (its side ended, or the connection failed).
    gone: bool,
    /// The owner waits to be woken once the socket is writable, with a
    /// stall deadline or none.
    wanted: Option<Option<Instant>>,
    /// Its earliest time in the loop's timers, if any.
    timer: Option<Instant>,
    /// Boxed: only a finishing connection holds this.
    finishing: Option<Box<Finishing>>,
}

struct Finishing {
    /// Reset if it is not done by then.
    deadline: Instant,
    /// Our side is ended: what is left is for the client to take.
    shut: bool,
    /// The client's side ended while finishing.
    ended: bool,
    /// When to look again, if no readiness will say.
    next: Option<Instant>,
}

/// The watcher's table: its connections in a slab, found by adoption id
/// through a map of ids to places. Adoption ids only grow (a reused one
/// could name a closed connection to whoever still holds it), so a map
/// from id to the connection itself would hold each entry at a hash
/// table's spare capacity (up to twice the entries); this map holds only
/// two numbers an entry, and the slab reuses its places.
#[derive(Default)]
struct Table {
    places: HashMap<u32, u32>,
    slab: Vec<Option<Watched>>,
    free: Vec<u32>,
}

impl Table {
    /// Adds connection `id`: ids only grow, so it is not there yet.
    fn insert(&mut self, id: u32, watched: Watched) {
        debug_assert!(!self.places.contains_key(&id));
        let place = match self.free.pop() {
            Some(place) => {
                self.slab[place as usize] = Some(watched);
                place
            }
            None => {
                self.slab.push(Some(watched));
                (self.slab.len() - 1) as u32
            }
        };
        self.places.insert(id, place);
    }

    fn get_mut(&mut self, id: &u32) -> Option<&mut Watched> {
        let place = *self.places.get(id)?;
        self.slab[place as usize].as_mut()
    }

    fn remove(&mut self, id: &u32) -> Option<Watched> {
        let place = self.places.remove(id)?;
        let watched = self.slab[place as usize].take();
        self.free.push(place);
        // Once empty, the slab gives its memory back.
        if self.places.is_empty() {
            *self = Table::default();
        }
        watched
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Watched> {
        self.slab.iter_mut().flatten()
    }
}

/// The watcher's thread: the loop, its table and its timers.
struct Watching {
    poll: Poll,
    inbox: Arc<Inbox>,
    open: Arc<AtomicUsize>,
    conns: Table,
    /// `(when, id)`, soonest first; an entry whose connection's `timer`
    /// is no longer `when` is stale and skipped.
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    /// Connections adopted or closed since freed pages were given back,
    /// and when they are to be, once there are enough.
    changes: usize,
    trim_at: Option<Instant>,
}

impl Watching {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut mail = Vec::new();
        loop {
            let next = self.timers.peek().map(|Reverse((when, _))| *when);
            let timeout = [next, self.trim_at]
                .into_iter()
                .flatten()
                .min()
                .map(|when| when.saturating_duration_since(Instant::now()));
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != std::io::ErrorKind::Interrupted {
                    // The loop cannot go on: every connection is taken to
                    // have left, and ends as its stream is released.
                    self.fail_all();
                    return;
                }
            }
            for event in events.iter() {
                if event.token() != WAKER {
                    self.ready(event.token().0 as u32, event);
                }
            }
            self.inbox.take(&mut mail);
            for one in mail.drain(..) {
                match one {
                    Mail::Watch(conn, tell) => self.watch(conn, tell),
                    Mail::Command(id, command) => self.command(id, command),
                    Mail::Stop => return,
                }
            }
            let now = Instant::now();
            self.due(now);
            if self.trim_at.is_some_and(|at| now >= at) {
                self.trim_at = None;
                self.changes = 0;
                sys::give_back_freed_pages();
            }
        }
    }

    /// A connection came or went: freed pages are given back once enough
    /// have, and it has been quiet for a while.
    fn changed(&mut self) {
        self.changes += 1;
        if self.changes >= TRIM_AFTER {
            self.trim_at = Some(Instant::now() + TRIM_QUIET);
        }
    }

    fn watch(&mut self, conn: Arc<Conn>, tell: Arc<Tell>) {
        let id = conn.id();
        let fd = conn.fd().as_raw_fd();
        let registered = self
            .poll
            .registry()
            .register(
                &mut SourceFd(&fd),
                Token(id as usize),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_ok();
        let watched = Watched {
            conn,
            tell,
            registered,
            gone: !registered,
            wanted: None,
            timer: None,
            finishing: None,
        };
        if !registered {
            // Not watchable: the client is taken to have left, and the
            // connection is reset once the stream is released.
            let slot = watched.conn.slot();
            (watched.tell.events)(Adoption::Gone { id, slot });
        }
        self.conns.insert(id, watched);
        self.changed();
    }

    /// Readiness of connection `id`.
    fn ready(&mut self, id: u32, event: &mio::event::Event) {
        let Some(watched) = self.conns.get_mut(&id) else {
            return;
        };
        let conn = watched.conn.clone();
        let fd = conn.fd();
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            match &mut watched.finishing {
                Some(finishing) => finishing.ended |= sys::drain(fd),
                None if !watched.gone && sys::drain(fd) => {
                    watched.gone = true;
                    let slot = conn.slot();
                    (watched.tell.events)(Adoption::Gone { id, slot });
                }
                None => {}
            }
        }
        if watched.finishing.is_some() {
            self.step(id);
        } else if (event.is_writable() || event.is_write_closed() || event.is_error())
            && watched.wanted.take().is_some()
        {
            wake(watched);
        }
    }

    fn command(&mut self, id: u32, command: Command) {
        let Some(watched) = self.conns.get_mut(&id) else {
            // Closed already: it needs nothing more.
            return;
        };
        match command {
            Command::Writable(deadline) => {
                // The owner's write found the socket full. Readiness comes
                // on a change, so it is looked at now: it may have freed
                // room since.
                if sys::writable_now(watched.conn.fd()) {
                    watched.wanted = None;
                    wake(watched);
                } else {
                    watched.wanted = Some(deadline);
                    if let Some(deadline) = deadline {
                        self.schedule(id, deadline);
                    }
                }
            }
            // The first ending asked for is the one.
            Command::Finish { .. } if watched.finishing.is_some() => {}
            Command::Finish { .. } if watched.gone => self.end(id, false),
            Command::Finish { timeout } => {
                watched.wanted = None;
                watched.finishing = Some(Box::new(Finishing {
                    deadline: Instant::now() + timeout,
                    shut: false,
                    ended: false,
                    next: None,
                }));
                self.step(id);
            }
            Command::Reset => self.end(id, false),
        }
    }

    /// Takes a finishing connection as far as it goes now: writes what it
    /// holds, ends our side, and is done once the client has taken every
    /// byte (its FIN need not come: an HTTP client may keep the connection
    /// for another request) or its side ends first. Nothing is left queued
    /// in the kernel then.
    fn step(&mut self, id: u32) {
        let now = Instant::now();
        let Some(watched) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(finishing) = watched.finishing.as_mut() else {
            return;
        };
        if now >= finishing.deadline {
            return self.end(id, false);
        }
        finishing.next = None;
        let fd = watched.conn.fd();
        while !finishing.shut {
            match watched.conn.write_rest() {
                Rest::Busy => {
                    finishing.next = Some(now + BUSY_RETRY);
                    break;
                }
                Rest::Done => {
                    sys::shut_write(fd);
                    finishing.shut = true;
                }
                // Full: its readiness says when there is room.
                Rest::Wrote(Ok(0)) => break,
                Rest::Wrote(Ok(_)) => {}
                Rest::Wrote(Err(_)) => return self.end(id, false),
            }
        }
        if finishing.shut {
            if finishing.ended || sys::unsent(fd).unwrap_or(0) == 0 {
                return self.end(id, true);
            }
            finishing.next = Some(now + UNSENT_POLL);
        }
        let when = finishing
            .next
            .map_or(finishing.deadline, |next| next.min(finishing.deadline));
        self.schedule(id, when);
    }

    /// Has the loop look at connection `id` at `when` (or sooner).
    fn schedule(&mut self, id: u32, when: Instant) {
        if let Some(watched) = self.conns.get_mut(&id) {
            if watched.timer.is_none_or(|timer| when < timer) {
                watched.timer = Some(when);
                self.timers.push(Reverse((when, id)));
            }
        }
    }

    /// Does what the timers due by `now` ask.
    fn due(&mut self, now: Instant) {
        while let Some(&Reverse((when, id))) = self.timers.peek() {
            if when > now {
                break;
            }
            self.timers.pop();
            let Some(watched) = self.conns.get_mut(&id) else {
                continue;
            };
            if watched.timer != Some(when) {
                continue;
            }
            watched.timer = None;
            if watched.finishing.is_some() {
                self.step(id);
            } else if let Some(Some(deadline)) = watched.wanted {
                if now >= deadline {
                    watched.wanted = None;
                    wake(watched);
                } else {
                    self.schedule(id, deadline);
                }
            }
        }
    }

    /// Closes connection `id`: `clean`, it was ended by its stream with
    /// everything written; else it is reset.
    fn end(&mut self, id: u32, clean: bool) {
        let Some(watched) = self.conns.remove(&id) else {
            return;
        };
        let fd = watched.conn.fd().as_raw_fd();
        if watched.registered {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        if !clean {
            sys::reset_on_close(fd);
        }
        let Watched { conn, tell, .. } = watched;
        let slot = conn.slot();
        drop(conn);
        self.open.fetch_sub(1, Ordering::Relaxed);
        (tell.events)(Adoption::Finished { id, slot, clean });
        self.changed();
    }

    /// The loop failed: every client is taken to have left.
    fn fail_all(&mut self) {
        for watched in self.conns.iter_mut() {
            let (id, slot) = (watched.conn.id(), watched.conn.slot());
            if !watched.gone {
                watched.gone = true;
                (watched.tell.events)(Adoption::Gone { id, slot });
            }
        }
    }
}

/// Wakes the owner of `watched`'s stream: its socket is writable, or its
/// stall deadline came.
fn wake(watched: &Watched) {
    if let Some(wakeup) = &watched.tell.wakeup {
        wakeup(watched.conn.slot());
    }
}

#[cfg(test)]
mod watching {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Tell, Watcher};
    use crate::io::conn::{Command, Reports};
    use crate::io::writers::Writers;
    use crate::io::Adoption;

    fn spawn(task: crate::io::Task) -> tokio::task::AbortHandle {
        static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
            std::sync::LazyLock::new(|| tokio::runtime::Runtime::new().unwrap());
        RUNTIME.spawn(task).abort_handle()
    }

    fn watched() -> (Watcher, Writers, mpsc::Receiver<Adoption>, Arc<Tell>) {
        let watcher = Watcher::start(Default::default()).unwrap();
        let writers = Writers::new(Reports::default(), spawn);
        let (told, events) = mpsc::channel();
        let told = std::sync::Mutex::new(told);
        let tell = Arc::new(Tell {
            wakeup: None,
            events: Arc::new(move |event| told.lock().unwrap().send(event).unwrap()),
        });
        (watcher, writers, events, tell)
    }

    const WAIT: Duration = Duration::from_secs(10);

    /// The client's end is seen, and the connection is closed (reset) once
    /// its stream lets go of it.
    #[test]
    fn a_client_that_leaves_is_seen_and_closed() {
        let (watcher, writers, events, tell) = watched();
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let adopted = watcher.adopt(
            ours.into(),
            3,
            7,
            Vec::new(),
            tell,
            writers.shard(0).clone(),
        );
        drop(theirs);
        assert_eq!(
            events.recv_timeout(WAIT),
            Ok(Adoption::Gone { id: 7, slot: 3 })
        );
        drop(adopted);
        assert_eq!(
            events.recv_timeout(WAIT),
            Ok(Adoption::Finished {
                id: 7,
                slot: 3,
                clean: false
            })
        );
    }

    /// A finish writes what the connection holds, ends our side, and is
    /// clean once the client has it all.
    #[test]
    fn a_finish_writes_the_rest_and_ends_cleanly() {
        let (watcher, writers, events, tell) = watched();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let rest = vec![b'x'; 1 << 20];
        let adopted = watcher.adopt(
            ours.into(),
            0,
            1,
            rest.clone(),
            tell,
            writers.shard(0).clone(),
        );
        adopted.send(Command::Finish {
            timeout: Duration::from_secs(60),
        });
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert!(got == rest, "every byte, once, in order, then the end");
        assert_eq!(
            events.recv_timeout(WAIT),
            Ok(Adoption::Finished {
                id: 1,
                slot: 0,
                clean: true
            })
        );
        theirs.write_all(b"late").ok();
    }

    /// A finish that cannot be done within its time resets the connection.
    #[test]
    fn a_finish_past_its_time_resets() {
        let (watcher, writers, events, tell) = watched();
        let (ours, _theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let adopted = watcher.adopt(
            ours.into(),
            0,
            2,
            vec![b'x'; 8 << 20],
            tell,
            writers.shard(0).clone(),
        );
        adopted.send(Command::Finish {
            timeout: Duration::from_millis(50),
        });
        assert_eq!(
            events.recv_timeout(WAIT),
            Ok(Adoption::Finished {
                id: 2,
                slot: 0,
                clean: false
            })
        );
    }
}
