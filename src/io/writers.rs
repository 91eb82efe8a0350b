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
//! 15,000 clients. Now the flush copies every adopted stream's chunk into one
//! buffer per shard ([`Handed`]; once for all the streams that hold the same
//! broadcast, see [`Chunks`]), naming each connection by its adoption id,
//! and hands each shard that buffer: one job per shard and flush, however
//! many clients. The shard's task finds the connection, appends, writes,
//! and reports; the JavaScript thread learns what the socket took from the
//! reports (see [`Report::sent_total`]) and counts what it handed over, so
//! that it never reads a connection to know what the connection holds.
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
//! The first time a thread of the runtime runs a writer or an adopted
//! connection's task, it lowers its own scheduling priority (Linux): nice
//! [`WRITER_NICE`], so that on a machine whose cores are all busy the
//! JavaScript thread is run first, and `SCHED_BATCH`, so that a writer the
//! JavaScript thread wakes never preempts it (its share of the CPU is that
//! of its nice value; only the wake-up preemption goes). Measured here (2
//! cores, the load's clients on the same machine): nice 10 took a ticker
//! to 1,000 clients from 8.3 ms to 2.6 ms of event-loop delay (p99), and
//! its deliveries from 2.5 to 3.1 million a second; with nice alone, the
//! hand-off of one broadcast to 15,000 clients was preempted by the writer
//! it woke in most runs (one involuntary switch of the JavaScript thread,
//! 1–4 ms), and the first broadcast's turn took 1.4–4.4 ms; with
//! `SCHED_BATCH` too, 1.4–1.6 ms.
//!
//! # Lifetimes
//!
//! A shard knows its connections by a [`Weak`] reference: it never keeps a
//! connection (or its descriptor) open. A connection that is gone by the
//! time a job names it is skipped; its stream has ended.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::core::hub::{Chunks, Hub, Slot};
use crate::io::adopted::{locked, Command, Conn, Report, Reports, REPORTS_WAITING};
use crate::io::{Spawn, Wakeup};

/// Bytes of one flush for the connections of one shard: `chunks.bytes
/// [start..end]` goes to the connection with adoption id `id`, for each
/// entry. Connections given the same broadcast share its chunk.
#[derive(Default)]
pub struct Handed {
    pub chunks: Chunks,
    pub entries: Vec<(u32, u32, u32)>,
}

impl Handed {
    /// Room for `connections` entries.
    pub fn for_about(connections: usize) -> Self {
        Handed {
            chunks: Chunks::default(),
            entries: Vec::with_capacity(connections),
        }
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
}

impl Shard {
    /// Queues `job`; starts a task for the queue if none works on it.
    pub fn push(self: &Arc<Self>, job: Job) {
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
/// round takes every job queued, makes their appends in order, then writes
/// each connection they touched once, so that what several flushes gave a
/// connection while the shard was busy leaves in one `send()`. Publishes
/// each round's reports (and wakes the owner if the list was empty).
async fn run(shard: Arc<Shard>) {
    lower_this_threads_priority();
    let mut done: Vec<Report> = Vec::new();
    let mut touched = Touched::default();
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
                do_job(&mut conns, job, &mut touched, &mut wakeup);
            }
        }
        for conn in touched.conns.drain(..) {
            done.extend(conn.write_out());
        }
        touched.ids.clear();
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

/// The connections a round of jobs gave bytes to (or unblocked), each
/// once, in the order first touched.
#[derive(Default)]
struct Touched {
    conns: Vec<Arc<Conn>>,
    ids: HashSet<u32>,
}

impl Touched {
    fn add(&mut self, id: u32, conn: Arc<Conn>) {
        if self.ids.insert(id) {
            self.conns.push(conn);
        }
    }
}

/// How much nicer than the JavaScript thread a thread that writes is.
pub const WRITER_NICE: i32 = 10;

/// Lowers the priority of this thread (a runtime's worker) to
/// [`WRITER_NICE`] under `SCHED_BATCH` (see the module's docs), once.
/// Linux only: elsewhere threads keep theirs.
pub fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if !LOWERED.with(|lowered| lowered.replace(true)) {
            // SAFETY: plain system calls on this thread's own id; a failure
            // leaves its priority as it was.
            unsafe {
                let tid = libc::gettid();
                let batch = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_BATCH, &batch);
                libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, WRITER_NICE);
            }
        }
    }
}

fn do_job(
    conns: &mut HashMap<u32, Weak<Conn>>,
    job: Job,
    touched: &mut Touched,
    wakeup: &mut Option<Wakeup>,
) {
    let find = |conns: &HashMap<u32, Weak<Conn>>, id: u32| conns.get(&id).and_then(Weak::upgrade);
    match job {
        Job::Adopt(id, conn) => {
            conns.insert(id, conn);
        }
        Job::Write(handed, owner) => {
            for &(id, start, end) in &handed.entries {
                if let Some(conn) = find(conns, id) {
                    conn.append(&handed.chunks.bytes[start as usize..end as usize]);
                    touched.add(id, conn);
                }
            }
            if owner.is_some() {
                *wakeup = owner;
            }
        }
        Job::Resume(id, owner) => {
            if let Some(conn) = find(conns, id) {
                conn.unblock();
                touched.add(id, conn);
            }
            if owner.is_some() {
                *wakeup = owner;
            }
        }
        Job::Finish { id, last, timeout } => {
            if let Some(conn) = find(conns, id) {
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
}

impl Writers {
    /// One shard per thread the runtime may run writers on (at most 8),
    /// reporting into `reports`.
    pub fn new(reports: Reports, spawn: Spawn) -> Self {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        Writers {
            shards: (0..count)
                .map(|_| {
                    Arc::new(Shard {
                        queue: Mutex::default(),
                        conns: Mutex::default(),
                        reports: reports.clone(),
                        spawn,
                    })
                })
                .collect(),
        }
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
