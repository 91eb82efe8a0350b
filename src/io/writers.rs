//! The writers of adopted connections: a few shards, each a queue of jobs
//! that one task at a time works through, in order, on the runtime's
//! threads.
//!
//! # Why shards, and why the JavaScript thread touches no connection
//!
//! A flush on the JavaScript thread used to append each adopted stream's
//! chunk to its connection and hand the connection over. Each connection's
//! memory was last written by the thread that wrote to its socket, so every
//! append cost the JavaScript thread a cache line fetched from another core:
//! measured here, 0.4–0.6 µs a connection, 9–16 ms for one broadcast to
//! 15,000 clients. Now the flush copies every adopted stream's chunk into
//! blocks per shard ([`Handed`]; once for all the streams that hold the
//! same broadcast, see [`Chunks`]), naming each connection by its adoption
//! id, and hands each shard its blocks: a job per shard and flush (and per
//! [`HANDED_BLOCK`] of replays), however many clients. The shard's task
//! finds each connection, writes its chunks from the blocks, and reports;
//! the JavaScript thread learns what the socket took from the reports (see
//! [`Report::sent_total`]) and counts what it handed over, so that it
//! never reads a connection to know what the connection holds.
//!
//! # Order
//!
//! A connection belongs to one shard (by its adoption id) for its life, and
//! a shard's jobs are done in the order they were given: a stream's chunks,
//! its last bytes and its release reach its connection in the order the
//! JavaScript thread made them.
//!
//! # Priority
//!
//! Writing is throughput work; the event loop is what a client waits on.
//! The first time a thread of the runtime runs a writer, it puts itself
//! under `SCHED_BATCH` (Linux), so that a writer the JavaScript thread
//! wakes to hand it a flush never preempts it on its core: with a plain
//! policy, the hand-off of one broadcast to 15,000 clients was preempted by
//! the writer it woke in most runs (1–4 ms); under `SCHED_BATCH`, never.
//! Its share of the CPU stays that of any thread of the process.
//!
//! Writers once lowered their nice value too (10), which kept the event
//! loop's delay lower on a machine shared with the load (a ticker to 1,000
//! clients: 8.3 → 2.6 ms p99). But on a machine whose every core is busy
//! with other work they then starved: beside one busy process per core,
//! 300 never-readers and 100 readers of 16 KiB broadcasts every 10 ms, 99
//! of the 100 readers were cut off (at nice 0: none, and none at 64 KiB).
//! A client that reads is never cut off because the server's own threads
//! were kept from running, so writers keep the process's priority (`npm
//! run bench:busy`). A nice value, once raised, cannot be lowered again
//! without privileges, so it is not raised at all.
//!
//! The runtime the writers are given (the bindings' `spawn_writing`) is one
//! of their own: the Redis link's tasks never share a thread with them.
//!
//! # Lifetimes
//!
//! A shard knows its connections by a [`Weak`] reference: it never keeps a
//! connection (or its descriptor) open. A connection that is gone by the
//! time a job names it is skipped; its stream has ended.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::core::hub::{Chunks, Hub, Slot};
use crate::io::conn::{locked, Command, Conn, Report, Reports, REPORTS_WAITING};
use crate::io::sys::lower_this_threads_priority;
use crate::io::{Spawn, Wakeup};

/// Bytes of one flush for the connections of one shard: `chunks.bytes
/// [start..end]` goes to the connection with adoption id `id`, for each
/// entry. Connections given the same broadcast share its chunk.
#[derive(Default)]
pub struct Handed {
    pub chunks: Chunks,
    pub entries: Vec<(u32, u32, u32)>,
}

/// The bytes of one [`Handed`] are a block of this many, handed over when
/// the next chunk would not fit (a larger chunk has one of its own size).
/// Why blocks, not one buffer per shard and flush: a flush of replays to
/// thousands of clients made buffers of a few MiB, which glibc's malloc
/// maps on their own; freeing one raises its threshold for mapping to that
/// size for the life of the process, after which such buffers are carved
/// out of heaps that give memory back only from their top. Blocks of one
/// small size are reused whole. Measured (10,000 clients resuming 500
/// events at once, adopted, 64 MiB held): the peak RSS beyond the
/// connections was 117-174 MiB with one buffer per shard and flush, 27-34
/// with glibc's threshold pinned (`MALLOC_MMAP_THRESHOLD_`), and 71-168
/// with these blocks (72-98 once replays held a quarter of the budget).
pub const HANDED_BLOCK: usize = 64 * 1024;

/// The longest a flush waits for writers past their share of the budget
/// (see `Hub::writers_share`) to catch up. Why wait at all: on a machine
/// whose every core is busy, writers at the process's priority get a
/// thread's share of the CPU, and a producer that does not wait for its
/// broadcasts (a loop on a timer) outruns them; on Node's own path the
/// same producer is held back by the writes its event loop makes. Waiting
/// here holds it back the same way and gives the writers the event loop's
/// core meanwhile, so that readers that keep up are not cut off for the
/// bytes the server's threads were late with (`npm run bench:busy`, 64
/// KiB broadcasts). Why this bound: it is how long one turn may be held
/// for it; past it the flush goes on and the bytes wait in their streams'
/// queues (see `Hub::writers_full`).
pub const CATCH_UP_WAIT: Duration = Duration::from_millis(50);

impl Handed {
    /// Room for `connections` entries, and a block of bytes.
    pub fn for_about(connections: usize) -> Self {
        Handed {
            chunks: Chunks::with_capacity(HANDED_BLOCK),
            entries: Vec::with_capacity(connections),
        }
    }

    /// Ready to be handed over: the next chunk is not taken to share the
    /// last one's bytes, and a block that grew, or is less than half used,
    /// and the entries, give back what they do not hold if that is much:
    /// what waits for a busy writer is about what the budget counts. (A
    /// block of a ticker's flush, one small event for every client, held
    /// tens of bytes in 64 KiB: writers a few hundred turns behind then
    /// passed their share of the budget, and flushes waited for them.)
    pub fn sealed(mut self) -> Self {
        self.chunks.seal();
        let bytes = &mut self.chunks.bytes;
        let grew = bytes.capacity() > HANDED_BLOCK;
        let sparse = bytes.len() < HANDED_BLOCK / 2;
        if (grew || sparse) && bytes.capacity() > bytes.len() + bytes.len() / 8 {
            bytes.shrink_to_fit();
        }
        if self.entries.capacity() > self.entries.len() * 2 {
            self.entries.shrink_to_fit();
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes the chunk of the stream at `slot` for connection `id`;
    /// returns how many bytes the connection is given.
    pub fn add(&mut self, id: u32, hub: &mut Hub, slot: Slot, now: Instant) -> usize {
        match hub.take_chunk_to(slot, now, &mut self.chunks) {
            Some((start, end)) => {
                self.entries.push((id, start, end));
                (end - start) as usize
            }
            None => 0,
        }
    }
}

/// What a shard is asked to do, in order.
pub enum Job {
    /// Connection `id` is this shard's from now on.
    Adopt(u32, Weak<Conn>),
    /// Append each entry's bytes to its connection, and write.
    Write(Handed, Option<Wakeup>),
    /// Write what connection `id` holds: its socket is writable again.
    Resume(u32, Option<Wakeup>),
    /// The stream of connection `id` ended: append its last bytes, then end
    /// the connection cleanly within `timeout`.
    Finish {
        id: u32,
        last: Vec<u8>,
        timeout: Duration,
    },
    /// Connection `id`'s stream is released: forget it.
    Forget(u32),
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A task is working through the jobs: the next job is its.
    running: bool,
}

/// One shard: its queue, and the connections it writes.
pub struct Shard {
    queue: Mutex<Queue>,
    /// Only the task working through the queue takes this lock.
    conns: Mutex<HashMap<u32, Weak<Conn>>>,
    reports: Reports,
    spawn: Spawn,
    /// Bytes of the blocks handed to the shards and not yet written (as
    /// allocated), all shards together (see [`Writers::in_flight`]).
    in_flight: Arc<AtomicUsize>,
    /// Told each time a round is written, while someone waits.
    progress: Arc<Progress>,
}

/// Where the JavaScript thread waits for the shards to write (see
/// [`Writers::wait_until_at_most`]).
#[derive(Default)]
struct Progress {
    waiting: AtomicBool,
    lock: Mutex<()>,
    told: Condvar,
}

impl Shard {
    /// Queues `job`; starts a task for the queue if none works on it.
    pub fn push(self: &Arc<Self>, job: Job) {
        if let Job::Write(handed, _) = &job {
            self.in_flight
                .fetch_add(handed.chunks.bytes.capacity(), Ordering::Relaxed);
        }
        let start = {
            let mut queue = locked(&self.queue);
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            (self.spawn)(Box::pin(run(self.clone())));
        }
    }
}

/// Works through a shard's queue until it is empty, a round at a time: a
/// round takes every job queued and does them in order, then writes each
/// connection they gave bytes to (or unblocked) once, so that what several
/// flushes gave a connection while the shard was busy leaves in one
/// `sendmsg()`, straight from the flushes' buffers. Publishes each round's
/// reports (and wakes the owner if the list was empty).
async fn run(shard: Arc<Shard>) {
    lower_this_threads_priority();
    let mut done: Vec<Report> = Vec::new();
    let mut round = Round::default();
    loop {
        let jobs = {
            let mut queue = locked(&shard.queue);
            if queue.jobs.is_empty() {
                queue.running = false;
                return;
            }
            std::mem::take(&mut queue.jobs)
        };
        let mut wakeup = None;
        {
            let mut conns = locked(&shard.conns);
            for job in jobs {
                do_job(&mut conns, job, &mut round, &mut wakeup);
            }
        }
        let written = round.write(&mut done);
        // SeqCst with the waiter's flag and look: one of the two sees
        // the other's write (see Writers::wait_until_at_most).
        shard.in_flight.fetch_sub(written, Ordering::SeqCst);
        if shard.progress.waiting.load(Ordering::SeqCst) {
            // Under the lock: the waiter is between its last look at
            // `in_flight` and its wait, or already waiting.
            let _held = locked(&shard.progress.lock);
            shard.progress.told.notify_all();
        }
        if !done.is_empty() {
            let was_empty = {
                let mut reports = locked(&shard.reports);
                let was_empty = reports.is_empty();
                reports.append(&mut done);
                was_empty
            };
            if let (true, Some(wakeup)) = (was_empty, wakeup) {
                wakeup(REPORTS_WAITING);
            }
        }
        // Let other tasks (a connection's watch) run between rounds.
        tokio::task::yield_now().await;
    }
}

/// No piece: the end of a connection's list.
const NONE: u32 = u32::MAX;

/// A round of a shard's jobs: the connections they gave bytes to (or
/// unblocked), each once, in the order first touched, and for each the
/// pieces of the round's flush buffers it is to be sent, in order. The
/// buffers are kept until the round's writes are done; only what a socket
/// does not take is copied into its connection.
#[derive(Default)]
struct Round {
    buffers: Vec<Chunks>,
    conns: Vec<Arc<Conn>>,
    /// Per connection (as in `conns`): its first and last piece, or NONE.
    lists: Vec<(u32, u32)>,
    /// Where each connection is in `conns`, by adoption id.
    index: HashMap<u32, usize>,
    /// Each piece: its buffer, start, end, and the next piece of its
    /// connection (or NONE).
    pieces: Vec<(u32, u32, u32, u32)>,
}

impl Round {
    /// Connection `id` is written at the end of the round; returns where
    /// it is in `conns`.
    fn touch(&mut self, id: u32, conn: Arc<Conn>) -> usize {
        *self.index.entry(id).or_insert_with(|| {
            self.conns.push(conn);
            self.lists.push((NONE, NONE));
            self.conns.len() - 1
        })
    }

    /// `buffers[buffer][start..end]` goes to the connection at `at`, after
    /// what it was given before in this round.
    fn add(&mut self, at: usize, buffer: u32, start: u32, end: u32) {
        let piece = self.pieces.len() as u32;
        self.pieces.push((buffer, start, end, NONE));
        let list = &mut self.lists[at];
        if list.0 == NONE {
            list.0 = piece;
        } else {
            self.pieces[list.1 as usize].3 = piece;
        }
        list.1 = piece;
    }

    /// The pieces of the connection at `at`, in order.
    fn pieces_of(&self, at: usize) -> impl Iterator<Item = &[u8]> {
        let mut next = self.lists[at].0;
        std::iter::from_fn(move || {
            if next == NONE {
                return None;
            }
            let (buffer, start, end, after) = self.pieces[next as usize];
            next = after;
            Some(&self.buffers[buffer as usize].bytes[start as usize..end as usize])
        })
    }

    /// Copies the pieces of connection `id`, if the round has any, into
    /// the connection: what comes after them (its last bytes) goes after.
    fn settle(&mut self, id: u32) {
        if let Some(&at) = self.index.get(&id) {
            for piece in self.pieces_of(at) {
                self.conns[at].append(piece);
            }
            self.lists[at] = (NONE, NONE);
        }
    }

    /// Writes each connection of the round once, and empties the round;
    /// returns the bytes of its blocks, done with.
    fn write(&mut self, done: &mut Vec<Report>) -> usize {
        let mut pieces: Vec<&[u8]> = Vec::new();
        for at in 0..self.conns.len() {
            pieces.extend(self.pieces_of(at));
            done.extend(self.conns[at].write_out(&pieces));
            pieces.clear();
        }
        let blocks = self.buffers.iter().map(|b| b.bytes.capacity()).sum();
        self.buffers.clear();
        self.conns.clear();
        self.lists.clear();
        self.index.clear();
        self.pieces.clear();
        blocks
    }
}

fn do_job(
    conns: &mut HashMap<u32, Weak<Conn>>,
    job: Job,
    round: &mut Round,
    wakeup: &mut Option<Wakeup>,
) {
    let find = |conns: &HashMap<u32, Weak<Conn>>, id: u32| conns.get(&id).and_then(Weak::upgrade);
    match job {
        Job::Adopt(id, conn) => {
            conns.insert(id, conn);
        }
        Job::Write(handed, owner) => {
            let buffer = round.buffers.len() as u32;
            for &(id, start, end) in &handed.entries {
                if let Some(conn) = find(conns, id) {
                    let at = round.touch(id, conn);
                    round.add(at, buffer, start, end);
                }
            }
            round.buffers.push(handed.chunks);
            if owner.is_some() {
                *wakeup = owner;
            }
        }
        Job::Resume(id, owner) => {
            if let Some(conn) = find(conns, id) {
                conn.unblock();
                round.touch(id, conn);
            }
            if owner.is_some() {
                *wakeup = owner;
            }
        }
        Job::Finish { id, last, timeout } => {
            if let Some(conn) = find(conns, id) {
                round.settle(id);
                conn.append(&last);
                conn.send(Command::Finish { timeout });
            }
        }
        Job::Forget(id) => {
            conns.remove(&id);
        }
    }
}

/// The shards of one JavaScript thread's adopted connections.
pub struct Writers {
    shards: Vec<Arc<Shard>>,
    in_flight: Arc<AtomicUsize>,
    progress: Arc<Progress>,
}

impl Writers {
    /// One shard per thread the runtime may run writers on (at most 8),
    /// reporting into `reports`.
    pub fn new(reports: Reports, spawn: Spawn) -> Self {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(Progress::default());
        Writers {
            shards: (0..count)
                .map(|_| {
                    Arc::new(Shard {
                        queue: Mutex::default(),
                        conns: Mutex::default(),
                        reports: reports.clone(),
                        spawn,
                        in_flight: in_flight.clone(),
                        progress: progress.clone(),
                    })
                })
                .collect(),
            in_flight,
            progress,
        }
    }

    /// Waits until the shards hold at most `bytes` not yet written, or
    /// `longest` has passed; returns whether they do. The waiting thread
    /// gives its core to them meanwhile.
    pub fn wait_until_at_most(&self, bytes: usize, longest: Duration) -> bool {
        if self.in_flight() <= bytes {
            return true;
        }
        let deadline = Instant::now() + longest;
        self.progress.waiting.store(true, Ordering::SeqCst);
        let mut held = locked(&self.progress.lock);
        let caught_up = loop {
            if self.in_flight.load(Ordering::SeqCst) <= bytes {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            held = self
                .progress
                .told
                .wait_timeout(held, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        };
        self.progress.waiting.store(false, Ordering::SeqCst);
        caught_up
    }

    /// Bytes of the blocks handed to the shards that no round has written
    /// yet (as allocated): a broadcast's bytes once a shard, however many
    /// of its connections were given them.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// The shard of connection `id`.
    pub fn shard_of(&self, id: u32) -> usize {
        id as usize % self.shards.len()
    }

    pub fn shard(&self, index: usize) -> &Arc<Shard> {
        &self.shards[index]
    }
}

#[cfg(test)]
mod catching_up {
    use std::sync::LazyLock;
    use std::time::Duration;

    use super::{Handed, Job, Writers, HANDED_BLOCK};
    use crate::io::conn::Reports;

    /// Writers' tasks wait for this gate: the test decides when the
    /// machine lets them run.
    static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

    fn gated(task: crate::io::Task) -> tokio::task::AbortHandle {
        static RUNTIME: LazyLock<tokio::runtime::Runtime> =
            LazyLock::new(|| tokio::runtime::Runtime::new().unwrap());
        RUNTIME
            .spawn(async move {
                drop(GATE.acquire().await);
                task.await
            })
            .abort_handle()
    }

    /// A flush's block counts as what it holds when that is little (a
    /// ticker's small event), as a block when it is mostly full (replays).
    #[test]
    fn a_sparse_block_is_counted_and_kept_as_what_it_holds() {
        let mut sparse = Handed::for_about(1);
        sparse.chunks.bytes.extend_from_slice(&[b'x'; 40]);
        assert!(sparse.sealed().chunks.bytes.capacity() < 64);
        let mut full = Handed::for_about(1);
        full.chunks
            .bytes
            .extend_from_slice(&[b'x'; HANDED_BLOCK - 100]);
        assert_eq!(full.sealed().chunks.bytes.capacity(), HANDED_BLOCK);
    }

    /// A flush past the writers' share waits for them: not past its bound
    /// while they cannot run, and only until they have written once they
    /// can. (Before, a flush never waited: with writers kept from running
    /// its bytes stayed queued, counted against their clients' caps.)
    #[test]
    fn a_flush_waits_for_writers_that_are_behind_for_a_bounded_time() {
        let writers = Writers::new(Reports::default(), gated);
        let mut handed = Handed::for_about(1);
        handed.chunks.bytes.extend_from_slice(&[b'x'; 100]);
        // A connection the shard does not know: the block is done with
        // as soon as a round takes it.
        handed.entries.push((7, 0, 100));
        writers.shard(0).push(Job::Write(handed.sealed(), None));
        let handed = writers.in_flight();
        assert!(handed >= 100);

        assert!(writers.wait_until_at_most(handed, Duration::ZERO));
        assert!(!writers.wait_until_at_most(0, Duration::from_millis(20)));
        assert_eq!(writers.in_flight(), handed, "nothing ran meanwhile");

        let opener = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            GATE.add_permits(1 << 20);
        });
        // Woken by the round, not by the bound: a lost wake-up would wait
        // all of it.
        let longest = Duration::from_secs(30);
        let started = std::time::Instant::now();
        assert!(writers.wait_until_at_most(0, longest));
        assert!(started.elapsed() < longest, "woken when written");
        assert_eq!(writers.in_flight(), 0);
        opener.join().unwrap();
    }
}
