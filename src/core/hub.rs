//! The open event streams of one JavaScript thread, and which of them have
//! bytes waiting.
//!
//! JavaScript pays for every call into Rust and more for every Buffer that
//! comes back, so the streams live here, addressed by a small integer, and a
//! flush hands back the waiting bytes of *all* streams at once: one Buffer
//! and one layout array per flush, however many frames and clients.
//!
//! A stream whose response reported backpressure is paused: it keeps
//! queueing (up to its cap) but is left out of flushes until it resumes.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::core::buffer::{OutboundBuffer, Refused, DEFAULT_MAX_BUFFERED_BYTES};
use crate::core::frame::Frame;
use crate::core::hex;
use crate::core::stream_entry::{ReadyEntry, StreamId};
use crate::core::topics::{Cursors, TooManyStreams};

/// A stream's slot number; stable while the stream is open, then reused.
pub type Slot = u32;

/// Who opened a stream: each copy of the JavaScript layer on a thread (a
/// module registry reset makes a second one) owns its streams, and flushes
/// and keep-alives only ever touch the streams of one owner.
pub type Owner = u32;

/// How a stream's flushed bytes are framed for its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// As they are: the transport frames them itself (`res.write`, HTTP/2,
    /// a web `Response` body).
    #[default]
    Plain,
    /// As one HTTP/1.1 chunk per flush, for writing straight to the socket
    /// of a chunked response.
    Chunked,
    /// As HTTP/1.1 chunks that the binding writes to the socket itself: a
    /// flush lists the stream in [`Batch::direct`] instead of adding its
    /// bytes to the batch (see [`Hub::take_chunk`]).
    Direct,
}

/// Why bytes could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// No open stream has that slot.
    Closed,
    /// The stream's buffer would pass its cap: the client is too slow.
    Overflow,
    /// The frame alone is larger than the stream's cap.
    TooLarge,
}

impl From<Refused> for PushError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Overflow => PushError::Overflow,
            Refused::TooLarge => PushError::TooLarge,
        }
    }
}

/// Per-stream settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    pub owner: Owner,
    /// The cap of the stream's buffer, in bytes.
    pub max_buffered_bytes: usize,
    /// Idle time after which a keep-alive comment is queued; `None` is off.
    pub keep_alive: Option<Duration>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            owner: 0,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            keep_alive: None,
        }
    }
}

#[derive(Debug)]
struct Stream {
    owner: Owner,
    buffer: OutboundBuffer,
    open: bool,
    /// Listed in `Hub::dirty`, so that a stream is listed at most once.
    dirty: bool,
    paused: bool,
    framing: Framing,
    /// Someone waits for this stream's queue to empty (a `send()` over
    /// `highWaterMark`): the binding reports when a direct write empties it.
    wants_drain: bool,
    /// In milliseconds (one word with the flags above, where a `Duration`
    /// is two): a keep-alive is a comment every so many seconds.
    keep_alive: Option<NonZeroU32>,
    /// When bytes last left for this stream (or it opened).
    last_sent: Instant,
    /// Where its client is in each Redis stream it follows, once it
    /// follows one (see [`crate::core::topics`]).
    cursors: Option<Box<Cursors>>,
}

impl Stream {
    /// Bytes held for the stream: queued, and refused by its socket (what
    /// is on its way to the socket is the writers' to hold, not its own).
    fn held(&self) -> usize {
        self.buffer.queued() + self.buffer.held()
    }

    fn new(options: StreamOptions, now: Instant) -> Self {
        Stream {
            owner: options.owner,
            buffer: OutboundBuffer::with_limit(options.max_buffered_bytes),
            open: true,
            dirty: false,
            paused: false,
            framing: Framing::Plain,
            wants_drain: false,
            keep_alive: options.keep_alive.and_then(|every| {
                NonZeroU32::new(u32::try_from(every.as_millis()).unwrap_or(u32::MAX).max(1))
            }),
            last_sent: now,
            cursors: None,
        }
    }
}

/// What one flush produced: every waiting byte, stream after stream, and
/// where each stream's share ends.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// `[slot, start, end, slot, start, end, …]` into `bytes`.
    pub layout: Vec<u32>,
    /// Streams were left for another flush: the batch reached
    /// [`MAX_BATCH_BYTES`], the most its `u32` offsets can address.
    pub more: bool,
    /// Streams with [`Framing::Direct`] and bytes to write.
    pub direct: Vec<Slot>,
    /// Streams cut off to bring the bytes held for all streams back under
    /// the budget, furthest behind first (their bytes stay until released).
    pub cut_off: Vec<Slot>,
}

/// Streams less than this far behind are keeping up: the budget never cuts
/// them off.
pub const CUT_OFF_MIN: usize = 64 * 1024;

/// The most one batch holds, so that every offset fits its `u32`.
pub const MAX_BATCH_BYTES: usize = u32::MAX as usize;

/// The most bytes of a replay queued for a client ahead of what it has
/// taken: the pace of a replay is its client's. Under [`CUT_OFF_MIN`], so
/// that a client taking its replay is never the one the budget cuts off.
pub const REPLAY_WINDOW: usize = 32 * 1024;

/// The most bytes of replays queued in one flush, for all clients
/// together: a storm of resumes is sliced into turns of the event loop
/// (each copies and hands on about this much), never done in one.
pub const REPLAY_TURN_BYTES: usize = 2 * 1024 * 1024;

impl Batch {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.layout.is_empty() && self.direct.is_empty() && self.cut_off.is_empty()
    }
}

/// The open stream at `slot`, borrowing only the streams (so that the
/// hub's totals can change beside it).
fn open_mut(streams: &mut [Stream], slot: Slot) -> Option<&mut Stream> {
    streams.get_mut(slot as usize).filter(|s| s.open)
}

/// The most a chunk's size line and trailing CRLF add: 16 hex digits + 4.
const CHUNK_FRAMING_MAX: usize = 20;

/// Moves a buffer's bytes to `out` as one HTTP/1.1 chunk: size in hex,
/// CRLF, data, CRLF.
fn put_chunk(out: &mut Vec<u8>, buffer: &mut OutboundBuffer) {
    hex::put_number(out, buffer.len());
    out.extend_from_slice(b"\r\n");
    buffer.drain_into(out);
    out.extend_from_slice(b"\r\n");
}

/// Many streams' chunks gathered in one buffer, to be handed on together
/// (to the writers of adopted connections). Streams whose queue is exactly
/// the shared frame the chunk before was made of, as after a broadcast to
/// streams that had nothing queued, share that chunk: a broadcast to
/// thousands of streams puts its bytes here once, not once a stream (at
/// 15,000 clients, 800 KB of fresh memory less for one flush to fault in).
#[derive(Debug, Default)]
pub struct Chunks {
    pub bytes: Vec<u8>,
    /// The shared frame the last chunk was made of, alone, and where that
    /// chunk is in `bytes`. Kept alive here, so that a frame at the same
    /// address is the same frame.
    last: Option<(Bytes, u32, u32)>,
}

impl Chunks {
    /// Chunks in a buffer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Chunks {
            bytes: Vec::with_capacity(bytes),
            last: None,
        }
    }

    /// Lets go of the frame the last chunk was made of: the next chunk is
    /// copied whatever it holds.
    pub fn seal(&mut self) {
        self.last = None;
    }
}

#[derive(Debug)]
pub struct Hub {
    streams: Vec<Stream>,
    free: Vec<Slot>,
    dirty: Vec<Slot>,
    /// The most bytes held for all streams together (queued, and held
    /// elsewhere: see [`Hub::set_held`]); `usize::MAX` for none.
    budget: usize,
    /// Bytes held for all open streams now, kept as they change: a flush
    /// compares it with the budget without visiting every stream.
    held: usize,
    /// Bytes in the writer threads' queues (see [`Hub::set_in_flight`]).
    in_flight: usize,
    /// Streams cut off by the budget, not yet released.
    cut_off: Vec<bool>,
    /// Streams with a replay being fed (see [`Hub::start_replay`]); closed
    /// or finished ones are dropped from it as it is walked.
    replaying: Vec<Slot>,
    /// Where the next flush starts walking `replaying`: each flush starts
    /// after where the last one stopped, so all replays go on.
    replay_turn: usize,
    /// Totals since the hub was made, for metrics.
    pub counters: Counters,
}

/// What a hub has done since it was made, for an operator's graphs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Events queued for clients (one per client an event was queued for).
    pub events: u64,
    /// Bytes handed on: to transports, or written to sockets directly.
    pub bytes_written: u64,
    /// Streams cut off by the budget.
    pub budget_cut_offs: u64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            streams: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            budget: usize::MAX,
            held: 0,
            in_flight: 0,
            cut_off: Vec::new(),
            replaying: Vec::new(),
            replay_turn: 0,
            counters: Counters::default(),
        }
    }
}

impl Hub {
    /// Opens a stream and returns its slot.
    pub fn open(&mut self, options: StreamOptions, now: Instant) -> Slot {
        let stream = Stream::new(options, now);
        match self.free.pop() {
            Some(slot) => {
                self.streams[slot as usize] = stream;
                slot
            }
            None => {
                self.streams.push(stream);
                (self.streams.len() - 1) as Slot
            }
        }
    }

    /// Closes a stream, dropping anything still queued, and frees its slot.
    pub fn release(&mut self, slot: Slot) {
        if let Some(cut_off) = self.cut_off.get_mut(slot as usize) {
            *cut_off = false;
        }
        if let Some(stream) = open_mut(&mut self.streams, slot) {
            self.held -= stream.held();
            stream.buffer.clear();
            stream.cursors = None;
            stream.open = false;
            stream.dirty = false;
            self.free.push(slot);
        }
    }

    /// Sets the budget: the most bytes held for all streams together.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes held now for all open streams: queued, and held elsewhere.
    pub fn held_total(&self) -> usize {
        debug_assert_eq!(
            self.held,
            self.streams
                .iter()
                .filter(|s| s.open)
                .map(Stream::held)
                .sum::<usize>()
        );
        self.held
    }

    /// Past the budget: picks streams to cut off, furthest behind first,
    /// until what the others hold fits. Streams less than [`CUT_OFF_MIN`]
    /// behind are never picked: they keep up.
    fn over_budget(&mut self) -> Vec<Slot> {
        if self.held_total() + self.in_flight <= self.budget {
            return Vec::new();
        }
        self.cut_off.resize(self.streams.len(), false);
        // Streams already cut off are on their way out: their bytes go with
        // them.
        let total: usize = self
            .streams
            .iter()
            .enumerate()
            .filter(|(slot, s)| s.open && !self.cut_off[*slot])
            .map(|(_, s)| s.held())
            .sum();
        let mut behind: Vec<(usize, Slot)> = self
            .streams
            .iter()
            .enumerate()
            .filter(|(slot, s)| s.open && !self.cut_off[*slot])
            .map(|(slot, s)| (s.held(), slot as Slot))
            .filter(|&(bytes, _)| bytes >= CUT_OFF_MIN)
            .collect();
        behind.sort_unstable_by_key(|&(bytes, _)| std::cmp::Reverse(bytes));
        let mut left = total + self.in_flight;
        let mut cut = Vec::new();
        for (bytes, slot) in behind {
            if left <= self.budget {
                break;
            }
            left -= bytes;
            self.cut(slot);
            cut.push(slot);
        }
        cut
    }

    /// Marks a stream cut off and leaves it out of flushes (its bytes stay
    /// until it is released); returns false if it was already.
    fn cut(&mut self, slot: Slot) -> bool {
        self.cut_off.resize(self.streams.len(), false);
        if std::mem::replace(&mut self.cut_off[slot as usize], true) {
            return false;
        }
        if let Some(stream) = self.stream_mut(slot) {
            stream.paused = true;
        }
        true
    }

    /// The owner of an open stream.
    pub fn owner(&self, slot: Slot) -> Option<Owner> {
        self.streams
            .get(slot as usize)
            .filter(|s| s.open)
            .map(|s| s.owner)
    }

    pub fn is_open(&self, slot: Slot) -> bool {
        self.streams.get(slot as usize).is_some_and(|s| s.open)
    }

    /// Number of open streams.
    pub fn len(&self) -> usize {
        self.streams.len() - self.free.len()
    }

    /// Queues a frame; returns the bytes now queued for that stream.
    pub fn push_frame(&mut self, slot: Slot, frame: &Frame) -> Result<usize, PushError> {
        self.push_event(slot, |buffer| buffer.push_frame(frame))
    }

    /// Queues bytes encoded elsewhere, copying them (see
    /// [`OutboundBuffer::push_encoded`]).
    pub fn push_encoded(&mut self, slot: Slot, bytes: &[u8]) -> Result<usize, PushError> {
        self.push_event(slot, |buffer| buffer.push_encoded(bytes))
    }

    /// Queues a frame encoded once for many streams, sharing its bytes.
    pub fn push_shared(&mut self, slot: Slot, bytes: &Bytes) -> Result<usize, PushError> {
        self.push_event(slot, |buffer| buffer.push_shared(bytes))
    }

    /// Queues entry `entry` of Redis stream `topic`: its frame as encoded
    /// for every client, or, for a client that follows several streams, its
    /// own `id:` line (the composite id) before the frame's shared rest; then
    /// moves the client's cursor in that stream to the entry.
    pub fn push_entry(
        &mut self,
        slot: Slot,
        topic: &str,
        entry: &ReadyEntry,
    ) -> Result<usize, PushError> {
        let stream = open_mut(&mut self.streams, slot).ok_or(PushError::Closed)?;
        let before = stream.buffer.queued();
        let queued = match stream.cursors.as_deref_mut() {
            Some(cursors) => {
                let queued = if cursors.composite() {
                    let line = cursors.id_line(topic, entry.id);
                    stream.buffer.push_shared_after(&line, &entry.body())?
                } else {
                    stream.buffer.push_shared(&entry.frame)?
                };
                cursors.advance(topic, entry.id);
                queued
            }
            None => stream.buffer.push_shared(&entry.frame)?,
        };
        self.held += queued - before;
        self.counters.events += 1;
        self.mark_dirty(slot);
        Ok(queued)
    }

    /// Starts following Redis stream `topic` for a stream, at `at` if
    /// known; with `composite`, its ids are composite from now on (its
    /// client resumed from one). See [`Cursors::add`].
    pub fn follow_topic(
        &mut self,
        slot: Slot,
        topic: &Arc<str>,
        at: Option<StreamId>,
        composite: bool,
    ) -> Result<(), TooManyStreams> {
        let Some(stream) = self.stream_mut(slot) else {
            return Ok(());
        };
        let cursors = stream.cursors.get_or_insert_with(Box::default);
        cursors.add(topic, at)?;
        if composite {
            cursors.make_composite();
        }
        Ok(())
    }

    /// Stops following Redis stream `topic` for a stream.
    pub fn unfollow_topic(&mut self, slot: Slot, topic: &str) {
        if let Some(cursors) = self.cursors_mut(slot) {
            cursors.remove(topic);
        }
    }

    /// Sets where a stream is in `topic`, if that was not known.
    pub fn place_topic(&mut self, slot: Slot, topic: &str, at: StreamId) {
        if let Some(cursors) = self.cursors_mut(slot) {
            cursors.place(topic, at);
        }
    }

    /// A stream's composite id, if its ids are composite.
    pub fn topics_id(&self, slot: Slot) -> Option<String> {
        let stream = self.streams.get(slot as usize).filter(|s| s.open)?;
        stream
            .cursors
            .as_deref()
            .filter(|c| c.composite())
            .map(Cursors::id)
    }

    fn cursors_mut(&mut self, slot: Slot) -> Option<&mut Cursors> {
        self.stream_mut(slot)?.cursors.as_deref_mut()
    }

    /// Queues one event on an open stream with `push`, counts it, and lists
    /// the stream for the next flush.
    fn push_event(
        &mut self,
        slot: Slot,
        push: impl FnOnce(&mut OutboundBuffer) -> Result<usize, Refused>,
    ) -> Result<usize, PushError> {
        let stream = open_mut(&mut self.streams, slot).ok_or(PushError::Closed)?;
        let before = stream.buffer.queued();
        let queued = push(&mut stream.buffer)?;
        self.held += queued - before;
        self.counters.events += 1;
        self.mark_dirty(slot);
        Ok(queued)
    }

    /// Queues the opening of a stream; see [`OutboundBuffer::push_opening`].
    pub fn push_opening(&mut self, slot: Slot, retry: Option<u32>) -> Result<usize, PushError> {
        let stream = open_mut(&mut self.streams, slot).ok_or(PushError::Closed)?;
        let before = stream.buffer.queued();
        let queued = stream.buffer.push_opening(retry);
        self.held += queued - before;
        self.mark_dirty(slot);
        Ok(queued)
    }

    /// Bytes queued for a stream, and those of its bytes held elsewhere
    /// (see [`Hub::set_held`]).
    pub fn buffered(&self, slot: Slot) -> usize {
        self.streams
            .get(slot as usize)
            .filter(|s| s.open)
            .map_or(0, |s| s.held() + s.buffer.in_flight())
    }

    /// At most the size of the chunk [`Hub::take_chunk_to`] would take
    /// for a stream now (its bytes, their length in hex and two line
    /// ends); 0 for none.
    pub fn chunk_len(&self, slot: Slot) -> usize {
        match self.streams.get(slot as usize).filter(|s| s.open) {
            Some(stream) if !stream.buffer.is_empty() => stream.buffer.len() + 20,
            _ => 0,
        }
    }

    /// Says how many of a stream's bytes, taken from its queue, wait
    /// elsewhere, refused by its socket: they count against its cap.
    pub fn set_held(&mut self, slot: Slot, held: usize) {
        self.set_held_in_flight(slot, held, 0);
    }

    /// Says how many of a stream's bytes, taken from its queue, wait
    /// elsewhere: `held` refused by its socket, which count against its
    /// cap and the budget, and `in_flight` handed to a writer thread that
    /// has not tried them yet, which pace its replay only (a client is not
    /// slow because the server's threads are late; the writers' blocks are
    /// counted as they are, see [`Hub::set_in_flight`]).
    pub fn set_held_in_flight(&mut self, slot: Slot, held: usize, in_flight: usize) {
        if let Some(stream) = open_mut(&mut self.streams, slot) {
            self.held = self.held - stream.buffer.held() + held;
            stream.buffer.set_held(held, in_flight);
        }
    }

    /// Says how many bytes the writer threads' queues hold now (the blocks
    /// handed to them, a broadcast's bytes once for all the clients given
    /// it): they count against the budget beside what streams hold.
    pub fn set_in_flight(&mut self, bytes: usize) {
        self.in_flight = bytes;
    }

    /// The writer threads' share of the budget: a quarter. Past it, a
    /// flush first waits for them to write down to half of it, a bounded
    /// time (see `Direct::let_writers_catch_up`, src/io/direct.rs): the
    /// event loop is held back as Node's own writes would hold it, and so
    /// is a producer that does not wait. If they are still past it, see
    /// [`Hub::writers_full`].
    pub fn writers_share(&self) -> usize {
        self.budget / 4
    }

    /// Whether the writer threads' queues hold more than their share of
    /// the budget ([`Hub::writers_share`]) even after the flush waited for
    /// them: a flush hands them no more until they have written some, and
    /// what waits stays in its streams' queues, counted as theirs. So
    /// writer threads the machine keeps from running hold a bounded
    /// amount; a client that keeps up is cut off only once they have
    /// fallen that far behind, and its own queue filled too.
    pub fn writers_full(&self) -> bool {
        self.in_flight > self.writers_share()
    }

    /// Lists a stream for the next flush again: its bytes were left queued
    /// (see [`Hub::writers_full`]).
    pub fn keep_for_next_flush(&mut self, slot: Slot) {
        if open_mut(&mut self.streams, slot).is_some() {
            self.mark_dirty(slot);
        }
    }

    /// Moves a stream's queued bytes to `out` as one HTTP/1.1 chunk, for
    /// the binding to write to its socket; returns whether there were any.
    pub fn take_chunk(&mut self, slot: Slot, now: Instant, out: &mut Vec<u8>) -> bool {
        let mut chunks = Chunks {
            bytes: std::mem::take(out),
            last: None,
        };
        let taken = self.take_chunk_to(slot, now, &mut chunks).is_some();
        *out = chunks.bytes;
        taken
    }

    /// Moves a stream's queued bytes to `chunks` as one HTTP/1.1 chunk and
    /// returns where in `chunks.bytes` that chunk is; None if nothing was
    /// queued. A stream whose queue is exactly the shared frame the
    /// previous chunk was made of is given that chunk (see [`Chunks`]).
    pub fn take_chunk_to(
        &mut self,
        slot: Slot,
        now: Instant,
        chunks: &mut Chunks,
    ) -> Option<(u32, u32)> {
        let stream = open_mut(&mut self.streams, slot)?;
        if stream.buffer.is_empty() {
            return None;
        }
        self.held -= stream.buffer.len();
        stream.dirty = false;
        stream.last_sent = now;
        let sole = stream.buffer.sole_shared();
        if let (Some((last, start, end)), Some(sole)) = (&chunks.last, sole) {
            if last.as_ptr() == sole.as_ptr() && last.len() == sole.len() {
                let at = (*start, *end);
                stream.buffer.discard_queued();
                return Some(at);
            }
        }
        let sole = sole.cloned();
        let start = chunks.bytes.len() as u32;
        put_chunk(&mut chunks.bytes, &mut stream.buffer);
        let end = chunks.bytes.len() as u32;
        chunks.last = sole.map(|frame| (frame, start, end));
        Some((start, end))
    }

    /// Asks to be told (by [`Hub::drained`]) once the stream's bytes have
    /// all left.
    pub fn watch_drain(&mut self, slot: Slot) {
        if let Some(stream) = self.stream_mut(slot) {
            stream.wants_drain = true;
        }
    }

    /// Whether someone waited for this stream to empty and it now has:
    /// nothing queued, nothing held. Clears the wish.
    pub fn drained(&mut self, slot: Slot) -> bool {
        match self.stream_mut(slot) {
            Some(s)
                if s.wants_drain
                    && s.held() == 0
                    && s.buffer.in_flight() == 0
                    && !s.buffer.replaying() =>
            {
                s.wants_drain = false;
                true
            }
            _ => false,
        }
    }

    /// A stream's cap, in bytes (0 if it is not open).
    pub fn max_buffered_bytes(&self, slot: Slot) -> usize {
        self.streams
            .get(slot as usize)
            .filter(|s| s.open)
            .map_or(0, |s| s.buffer.max())
    }

    /// Leaves a stream out of flushes: its response is full.
    pub fn pause(&mut self, slot: Slot) {
        if let Some(stream) = self.stream_mut(slot) {
            stream.paused = true;
        }
    }

    /// Takes a stream back into flushes; returns whether it has bytes
    /// waiting, so that the caller schedules a flush.
    pub fn resume(&mut self, slot: Slot) -> bool {
        let Some(stream) = self.stream_mut(slot) else {
            return false;
        };
        stream.paused = false;
        if stream.buffer.is_empty() && !stream.buffer.replaying() {
            return false;
        }
        self.mark_dirty(slot);
        true
    }

    /// How this stream's flushed bytes are framed from now on. Bytes taken
    /// with [`Hub::take`] are never framed.
    pub fn set_framing(&mut self, slot: Slot, framing: Framing) {
        if let Some(stream) = self.stream_mut(slot) {
            stream.framing = framing;
        }
    }

    /// Takes one stream's queued bytes now, ahead of the next flush (used
    /// when a stream is about to end).
    pub fn take(&mut self, slot: Slot) -> Vec<u8> {
        match open_mut(&mut self.streams, slot) {
            Some(stream) => {
                stream.dirty = false;
                self.held -= stream.buffer.queued();
                stream.buffer.take()
            }
            None => Vec::new(),
        }
    }

    /// Queues a keep-alive comment on every stream of `owner` that has sent
    /// nothing for its keep-alive time, so that proxies do not time the
    /// connection out. Paused streams are skipped: they have bytes on the
    /// way. Returns how many comments were queued.
    pub fn queue_keep_alives(&mut self, owner: Owner, now: Instant) -> usize {
        let mut queued = 0;
        for slot in 0..self.streams.len() {
            let stream = &mut self.streams[slot];
            let Some(idle_limit) = stream.keep_alive else {
                continue;
            };
            let idle_limit = Duration::from_millis(idle_limit.get().into());
            if !stream.open
                || stream.owner != owner
                || stream.paused
                || stream.buffer.queued() != 0
                || stream.buffer.replaying()
                || now.saturating_duration_since(stream.last_sent) < idle_limit
            {
                continue;
            }
            // A cap smaller than a comment refuses it: nothing is queued.
            if let Ok(added) = stream.buffer.push_encoded(b":\n") {
                self.held += added;
                self.mark_dirty(slot as Slot);
                queued += 1;
            }
        }
        queued
    }

    /// Takes the queued bytes of every unpaused stream of `owner`, in one
    /// contiguous batch. Other owners' streams stay queued for their own
    /// flush.
    pub fn flush(&mut self, owner: Owner, now: Instant) -> Batch {
        self.flush_within(owner, now, MAX_BATCH_BYTES)
    }

    fn flush_within(&mut self, owner: Owner, now: Instant, max_bytes: usize) -> Batch {
        let mut batch = Batch::default();
        let mut stuck = Vec::new();
        batch.more = self.feed_replays(owner, &mut stuck);
        // Not the budget's doing: replays their clients can never take.
        for slot in stuck {
            if self.cut(slot) {
                batch.cut_off.push(slot);
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        let framed_len = |s: &Stream| match s.framing {
            Framing::Plain => s.buffer.len(),
            Framing::Chunked => s.buffer.len() + CHUNK_FRAMING_MAX,
            Framing::Direct => 0,
        };
        let mut others = Vec::new();
        for &slot in &dirty {
            let stream = &mut self.streams[slot as usize];
            // A stream can be listed yet clean: taken early, or released
            // and reopened in the same turn.
            if !stream.dirty {
                continue;
            }
            if stream.owner != owner || batch.bytes.len() + framed_len(stream) > max_bytes {
                batch.more |= stream.owner == owner;
                others.push(slot);
                continue;
            }
            stream.dirty = false;
            if stream.paused || stream.buffer.is_empty() {
                continue;
            }
            let start = batch.bytes.len() as u32;
            if stream.framing != Framing::Direct {
                self.held -= stream.buffer.len();
            }
            match stream.framing {
                Framing::Plain => stream.buffer.drain_into(&mut batch.bytes),
                Framing::Chunked => put_chunk(&mut batch.bytes, &mut stream.buffer),
                Framing::Direct => {
                    batch.direct.push(slot);
                    continue;
                }
            }
            stream.last_sent = now;
            batch
                .layout
                .extend_from_slice(&[slot, start, batch.bytes.len() as u32]);
        }
        // Keep the list's allocation for the next turn.
        self.dirty = dirty;
        self.dirty.clear();
        self.dirty.extend_from_slice(&others);
        let over = self.over_budget();
        self.counters.bytes_written += batch.bytes.len() as u64;
        self.counters.budget_cut_offs += over.len() as u64;
        batch.cut_off.extend(over);
        batch
    }

    fn stream_mut(&mut self, slot: Slot) -> Option<&mut Stream> {
        open_mut(&mut self.streams, slot)
    }

    /// Starts a replay of `frames[start..]` on a stream, after what it has
    /// queued: nothing is queued now, and nothing counts against its cap
    /// or the budget until a flush feeds it (see [`Hub::flush`]). What is
    /// queued for the stream meanwhile waits behind the replay.
    pub fn start_replay(&mut self, slot: Slot, frames: Arc<[Bytes]>, start: usize) {
        let Some(stream) = self.stream_mut(slot) else {
            return;
        };
        let was = stream.buffer.replaying();
        stream.buffer.start_replay(frames, start);
        if !was && stream.buffer.replaying() {
            self.replaying.push(slot);
            self.mark_dirty(slot);
        }
    }

    /// Feeds every replay in full, whatever the window and the budget: for
    /// tests that look at what a stream is sent, not at its pace.
    #[cfg(test)]
    pub fn feed_all(&mut self) {
        for slot in std::mem::take(&mut self.replaying) {
            if let Some(stream) = open_mut(&mut self.streams, slot) {
                if let Ok(added) = stream.buffer.feed(usize::MAX, &mut { usize::MAX }) {
                    self.held += added;
                }
            }
        }
    }

    /// Drops a stream's replays not yet fed, and what waits behind them
    /// (see [`OutboundBuffer::drop_replays`]).
    pub fn drop_replays(&mut self, slot: Slot) {
        if let Some(stream) = open_mut(&mut self.streams, slot) {
            self.held -= stream.buffer.drop_replays();
        }
    }

    /// Whether a stream of `owner` with a replay could be fed more now: it
    /// took what it was given and the budget has room. The binding asks
    /// after a flush's writes, so that a flush follows while replays go on.
    pub fn replays_waiting(&self, owner: Owner) -> bool {
        self.replay_room() > 0
            && self
                .replaying
                .iter()
                .any(|&slot| self.can_feed(slot, owner))
    }

    /// Bytes replays may still add before they fill their share of the
    /// budget (see [`Hub::replay_budget`]): what a resume from Redis may
    /// read next.
    pub fn replay_room(&self) -> usize {
        self.replay_budget()
            .saturating_sub(self.held + self.in_flight)
    }

    /// What replays may fill of the budget: a quarter. The rest is for
    /// live events, so that the broadcasts that go on during a storm of
    /// resumes (waiting behind the replays) do not take the clients being
    /// replayed past the budget, and for what a process's memory costs
    /// beyond the bytes it counts (the allocator's fragments, a heap that
    /// grows in steps). Measured (10,000 clients resuming 500 events at
    /// once, adopted, beside a busy process per core): with half, 123-189
    /// MiB beyond the connections; with a quarter, 72-98, and the clients
    /// caught up as fast (the sockets, not the room, set the pace).
    fn replay_budget(&self) -> usize {
        self.budget / 4
    }

    fn can_feed(&self, slot: Slot, owner: Owner) -> bool {
        let Some(stream) = self.streams.get(slot as usize) else {
            return false;
        };
        stream.open
            && stream.owner == owner
            && !stream.paused
            && stream.buffer.replaying()
            && !self.cut_off.get(slot as usize).copied().unwrap_or(false)
            && stream.buffer.len() + stream.buffer.held() + stream.buffer.in_flight()
                < REPLAY_WINDOW
    }

    /// Feeds the replays of `owner`'s streams: each stream up to
    /// [`REPLAY_WINDOW`] ahead of what it took, all together up to
    /// [`REPLAY_TURN_BYTES`] and while the bytes held for all streams are
    /// under the budget. Returns whether streams that could take more were
    /// left for the next flush.
    fn feed_replays(&mut self, owner: Owner, cut_off: &mut Vec<Slot>) -> bool {
        if self.replaying.is_empty() {
            return false;
        }
        let mut turn = REPLAY_TURN_BYTES;
        let count = self.replaying.len();
        let first = self.replay_turn % count;
        let mut left_over = false;
        for i in 0..count {
            let slot = self.replaying[(first + i) % count];
            if !self.can_feed(slot, owner) {
                continue;
            }
            let mut room = turn.min(
                self.replay_budget()
                    .saturating_sub(self.held + self.in_flight),
            );
            if room == 0 {
                self.replay_turn = first + i;
                left_over = turn == 0;
                break;
            }
            let before = room;
            let stream = &mut self.streams[slot as usize];
            match stream.buffer.feed(REPLAY_WINDOW, &mut room) {
                Ok(added) => self.held += added,
                // It can never take the rest: cut off like a slow consumer
                // (it resumes from what it has).
                Err(_) => cut_off.push(slot),
            }
            turn = turn.saturating_sub(before - room);
            if !self.streams[slot as usize].buffer.is_empty() {
                self.mark_dirty(slot);
            }
        }
        let streams = &self.streams;
        self.replaying.retain(|&slot| {
            streams
                .get(slot as usize)
                .is_some_and(|s| s.open && s.buffer.replaying())
        });
        left_over
    }

    fn mark_dirty(&mut self, slot: Slot) {
        let stream = &mut self.streams[slot as usize];
        if !stream.dirty && !stream.paused {
            stream.dirty = true;
            self.dirty.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(batch: &Batch, slot: Slot) -> Vec<&[u8]> {
        batch
            .layout
            .chunks(3)
            .filter(|c| c[0] == slot)
            .map(|c| &batch.bytes[c[1] as usize..c[2] as usize])
            .collect()
    }

    fn open(hub: &mut Hub) -> Slot {
        hub.open(StreamOptions::default(), Instant::now())
    }

    #[test]
    fn one_flush_carries_every_stream_once() {
        let mut hub = Hub::default();
        let a = open(&mut hub);
        let b = open(&mut hub);
        hub.push_frame(a, &Frame::message("a1")).unwrap();
        hub.push_frame(b, &Frame::message("b1")).unwrap();
        hub.push_frame(a, &Frame::message("a2")).unwrap();
        let batch = hub.flush(0, Instant::now());
        assert_eq!(batch.layout.len(), 6);
        assert_eq!(share(&batch, a), vec![&b"data: a1\n\ndata: a2\n\n"[..]]);
        assert_eq!(share(&batch, b), vec![&b"data: b1\n\n"[..]]);
        assert!(hub.flush(0, Instant::now()).is_empty());
        assert_eq!(hub.buffered(a), 0);
    }

    #[test]
    fn released_slots_are_reused_without_leaking_old_bytes() {
        let mut hub = Hub::default();
        let a = open(&mut hub);
        hub.push_frame(a, &Frame::message("old")).unwrap();
        hub.release(a);
        assert!(!hub.is_open(a));
        assert_eq!(
            hub.push_frame(a, &Frame::message("x")),
            Err(PushError::Closed)
        );
        let again = open(&mut hub);
        assert_eq!(again, a);
        hub.push_frame(again, &Frame::message("new")).unwrap();
        let batch = hub.flush(0, Instant::now());
        assert_eq!(share(&batch, again), vec![&b"data: new\n\n"[..]]);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn taken_streams_are_skipped_by_the_flush() {
        let mut hub = Hub::default();
        let a = open(&mut hub);
        hub.push_comment_for_test(a);
        assert_eq!(&hub.take(a)[..], b": ok\n\n");
        assert!(hub.flush(0, Instant::now()).is_empty());
    }

    #[test]
    fn paused_streams_keep_queueing_and_leave_on_resume() {
        let mut hub = Hub::default();
        let a = open(&mut hub);
        let b = open(&mut hub);
        hub.push_frame(a, &Frame::message("1")).unwrap();
        hub.pause(a);
        hub.push_frame(a, &Frame::message("2")).unwrap();
        hub.push_frame(b, &Frame::message("b")).unwrap();
        let batch = hub.flush(0, Instant::now());
        assert!(share(&batch, a).is_empty(), "a paused stream is left out");
        assert_eq!(share(&batch, b).len(), 1);
        assert_eq!(hub.buffered(a), 2 * "data: 1\n\n".len());
        assert!(hub.resume(a));
        let batch = hub.flush(0, Instant::now());
        assert_eq!(share(&batch, a), vec![&b"data: 1\n\ndata: 2\n\n"[..]]);
        assert!(!hub.resume(a), "nothing waits after the flush");
    }

    #[test]
    fn a_stream_over_its_cap_refuses_the_frame() {
        let mut hub = Hub::default();
        let a = hub.open(
            StreamOptions {
                owner: 0,
                max_buffered_bytes: 20,
                keep_alive: None,
            },
            Instant::now(),
        );
        hub.pause(a);
        assert!(hub.push_frame(a, &Frame::message("0123456789")).is_ok());
        assert_eq!(
            hub.push_frame(a, &Frame::message("0123456789")),
            Err(PushError::Overflow)
        );
        assert_eq!(
            hub.push_encoded(a, b"data: 0123456789\n\n"),
            Err(PushError::Overflow)
        );
        assert_eq!(hub.buffered(a), 18);
    }

    #[test]
    fn keep_alives_go_to_idle_streams_only() {
        let mut hub = Hub::default();
        let start = Instant::now();
        let options = StreamOptions {
            owner: 0,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            keep_alive: Some(Duration::from_millis(200)),
        };
        let idle = hub.open(options, start);
        let busy = hub.open(options, start);
        let paused = hub.open(options, start);
        let off = hub.open(StreamOptions::default(), start);
        hub.pause(paused);
        assert_eq!(
            hub.queue_keep_alives(0, start + Duration::from_millis(100)),
            0
        );

        hub.push_frame(busy, &Frame::message("x")).unwrap();
        hub.flush(0, start + Duration::from_millis(150));
        assert_eq!(
            hub.queue_keep_alives(0, start + Duration::from_millis(250)),
            1
        );
        let batch = hub.flush(0, start + Duration::from_millis(250));
        assert_eq!(share(&batch, idle), vec![&b":\n"[..]]);
        assert!(share(&batch, busy).is_empty());
        assert!(share(&batch, paused).is_empty());
        assert!(share(&batch, off).is_empty());

        // The comment counts as traffic: the next one is due 200 ms later.
        assert_eq!(
            hub.queue_keep_alives(0, start + Duration::from_millis(400)),
            1
        );
        let batch = hub.flush(0, start + Duration::from_millis(400));
        assert_eq!(share(&batch, busy), vec![&b":\n"[..]]);
        assert!(share(&batch, idle).is_empty());
    }

    #[test]
    fn chunked_streams_are_flushed_as_http_chunks() {
        let mut hub = Hub::default();
        let plain = open(&mut hub);
        let chunked = open(&mut hub);
        hub.set_framing(chunked, Framing::Chunked);
        let data = "y".repeat(20);
        let frame = Frame::message(&data);
        hub.push_frame(plain, &frame).unwrap();
        hub.push_frame(chunked, &frame).unwrap();
        let batch = hub.flush(0, Instant::now());
        let body = "data: yyyyyyyyyyyyyyyyyyyy\n\n";
        assert_eq!(share(&batch, plain), vec![body.as_bytes()]);
        let framed = format!("1c\r\n{body}\r\n");
        assert_eq!(share(&batch, chunked), vec![framed.as_bytes()]);
        // Taking (to end the stream through the response) is never framed.
        hub.push_frame(chunked, &frame).unwrap();
        assert_eq!(&hub.take(chunked)[..], body.as_bytes());
    }

    #[test]
    fn streams_holding_the_same_broadcast_share_one_chunk() {
        let mut hub = Hub::default();
        let [a, b, own, c, d] = [(); 5].map(|_| open(&mut hub));
        let all = Frame::message("all").to_bytes().freeze();
        let other = Frame::message("other").to_bytes().freeze();
        hub.push_frame(own, &Frame::message("mine")).unwrap();
        for slot in [a, b, own, c] {
            hub.push_shared(slot, &all).unwrap();
        }
        hub.push_shared(d, &other).unwrap();
        let held = hub.held_total();
        let now = Instant::now();
        let mut chunks = Chunks::default();
        let at: Vec<_> = [a, b, own, c, d]
            .iter()
            .map(|&slot| hub.take_chunk_to(slot, now, &mut chunks).unwrap())
            .collect();
        fn chunk(chunks: &Chunks, (start, end): (u32, u32)) -> Vec<u8> {
            chunks.bytes[start as usize..end as usize].to_vec()
        }
        assert_eq!(chunk(&chunks, at[0]), b"b\r\ndata: all\n\n\r\n".to_vec());
        assert_eq!(at[1], at[0], "the same broadcast, the same chunk");
        assert_eq!(
            chunk(&chunks, at[2]),
            b"17\r\ndata: mine\n\ndata: all\n\n\r\n".to_vec()
        );
        // After a stream with bytes of its own, the broadcast is copied
        // again; another frame never shares.
        assert_eq!(chunk(&chunks, at[3]), chunk(&chunks, at[0]));
        assert_ne!(at[3], at[0]);
        assert_eq!(chunk(&chunks, at[4]), b"d\r\ndata: other\n\n\r\n".to_vec());
        assert_eq!(chunks.bytes.len(), 2 * 16 + 29 + 18);
        // Each stream gave up all it had queued, shared or not.
        assert_eq!(held, 4 * 11 + 12 + 13);
        assert_eq!(hub.held_total(), 0);
        for slot in [a, b, own, c, d] {
            assert_eq!(hub.buffered(slot), 0);
            assert_eq!(hub.take_chunk_to(slot, now, &mut chunks), None);
        }
        assert!(hub.flush(0, now).is_empty(), "none is listed any more");
        // Sealed, the next one is copied even if it is the same frame.
        hub.push_shared(a, &other).unwrap();
        chunks.seal();
        let again = hub.take_chunk_to(a, now, &mut chunks).unwrap();
        assert_ne!(again, at[4]);
        assert_eq!(chunk(&chunks, again), chunk(&chunks, at[4]));
    }

    impl Hub {
        fn push_comment_for_test(&mut self, slot: Slot) {
            self.push_opening(slot, None).unwrap();
        }
    }

    #[test]
    fn each_owner_flushes_its_own_streams_only() {
        let mut hub = Hub::default();
        let owned = |owner| StreamOptions {
            owner,
            ..StreamOptions::default()
        };
        let a = hub.open(owned(1), Instant::now());
        let b = hub.open(owned(2), Instant::now());
        hub.push_frame(a, &Frame::message("for a")).unwrap();
        hub.push_frame(b, &Frame::message("for b")).unwrap();
        let first = hub.flush(1, Instant::now());
        assert_eq!(first.layout[0], a);
        assert_eq!(first.layout.len(), 3);
        assert!(!first.more);
        // Owner 2's bytes waited for owner 2's flush.
        let second = hub.flush(2, Instant::now());
        assert_eq!(second.layout[0], b);
        assert_eq!(&second.bytes[..], b"data: for b\n\n");
        assert!(hub.flush(1, Instant::now()).is_empty());
        // Keep-alives too are queued for one owner's streams.
        let idle = Instant::now() + Duration::from_secs(60);
        let keep = |owner| StreamOptions {
            owner,
            keep_alive: Some(Duration::from_secs(1)),
            ..StreamOptions::default()
        };
        let c = hub.open(keep(1), Instant::now());
        let d = hub.open(keep(2), Instant::now());
        assert_eq!(hub.queue_keep_alives(1, idle), 1);
        assert_eq!(hub.buffered(c), 2);
        assert_eq!(hub.buffered(d), 0);
    }

    #[test]
    fn a_refused_keep_alive_is_not_counted() {
        let mut hub = Hub::default();
        let options = StreamOptions {
            max_buffered_bytes: 1,
            keep_alive: Some(Duration::from_secs(1)),
            ..StreamOptions::default()
        };
        let tiny = hub.open(options, Instant::now());
        assert_eq!(
            hub.queue_keep_alives(0, Instant::now() + Duration::from_secs(5)),
            0
        );
        assert_eq!(hub.buffered(tiny), 0);
        assert!(hub.flush(0, Instant::now()).is_empty());
    }

    #[test]
    fn a_batch_stops_at_its_size_and_leaves_the_rest_for_the_next() {
        let mut hub = Hub::default();
        let a = open(&mut hub);
        let b = open(&mut hub);
        hub.push_frame(a, &Frame::message("0123456789")).unwrap();
        hub.push_frame(b, &Frame::message("0123456789")).unwrap();
        let first = hub.flush_within(0, Instant::now(), 20);
        assert_eq!(first.layout, vec![a, 0, 18]);
        assert!(first.more);
        let second = hub.flush_within(0, Instant::now(), 20);
        assert_eq!(second.layout, vec![b, 0, 18]);
        assert!(!second.more);
    }

    #[test]
    fn past_the_budget_the_streams_furthest_behind_are_cut_off_first() {
        let mut hub = Hub::default();
        hub.set_budget(300 * 1024);
        let slots: Vec<_> = (0..4).map(|_| open(&mut hub)).collect();
        let chunk = vec![b'x'; 10 * 1024];
        // Behind by 200, 150 and 40 KiB (paused: their clients do not read),
        // and one that keeps up.
        for (&slot, kib) in slots.iter().zip([200, 150, 40]) {
            hub.pause(slot);
            for _ in 0..kib / 10 {
                hub.push_encoded(slot, &chunk).unwrap();
            }
        }
        hub.push_encoded(slots[3], &chunk).unwrap();
        assert_eq!(hub.held_total(), 400 * 1024);
        let batch = hub.flush(0, Instant::now());
        // 400 KiB held, 300 allowed: the one 200 KiB behind goes, and that
        // is enough; the one 40 KiB behind (keeping up) never would.
        assert_eq!(batch.cut_off, vec![slots[0]]);
        assert!(
            hub.flush(0, Instant::now()).cut_off.is_empty(),
            "picked once"
        );
        hub.release(slots[0]);
        hub.set_budget(10 * 1024);
        assert_eq!(hub.flush(0, Instant::now()).cut_off, vec![slots[1]]);
    }

    /// Bytes in the writers' queues count against the budget once, as the
    /// blocks that hold them, not as each client's: a client whose bytes
    /// wait only for a writer is never the one cut off, however many; one
    /// whose socket refused its bytes is. Past a quarter of the budget the
    /// writers are full.
    #[test]
    fn bytes_on_their_way_count_once_and_never_cut_a_reader() {
        let mut hub = Hub::default();
        hub.set_budget(1024 * 1024);
        let (reader, refusing) = (open(&mut hub), open(&mut hub));
        hub.set_held_in_flight(reader, 0, 900 * 1024);
        hub.set_held_in_flight(refusing, 300 * 1024, 0);
        assert_eq!(hub.held_total(), 300 * 1024, "the reader holds nothing");
        assert_eq!(hub.buffered(reader), 900 * 1024, "but it is not drained");
        hub.set_in_flight(200 * 1024);
        assert!(hub.flush(0, Instant::now()).cut_off.is_empty());
        assert!(!hub.writers_full());
        hub.set_in_flight(800 * 1024);
        assert!(hub.writers_full());
        assert_eq!(hub.flush(0, Instant::now()).cut_off, vec![refusing]);
        hub.release(refusing);
        hub.set_in_flight(2 * 1024 * 1024);
        assert!(
            hub.flush(0, Instant::now()).cut_off.is_empty(),
            "a reader is never cut off for the writers' backlog"
        );
    }

    /// `n` frames of `size` bytes each (`data: xxx…\n\n`), shared as a
    /// history's are.
    fn history(n: usize, size: usize) -> Arc<[Bytes]> {
        (0..n)
            .map(|i| {
                let mut frame = format!("data: {i:05}").into_bytes();
                frame.resize(size - 2, b'x');
                frame.extend_from_slice(b"\n\n");
                Bytes::from(frame)
            })
            .collect()
    }

    #[test]
    fn a_replay_goes_a_window_at_a_time_and_what_comes_meanwhile_waits_behind_it() {
        let mut hub = Hub::default();
        let slot = open(&mut hub);
        hub.flush(0, Instant::now()); // nothing yet: no opening pushed
        let frames = history(100, 1024);
        hub.start_replay(slot, frames.clone(), 10);
        hub.push_frame(slot, &Frame::message("after")).unwrap();
        // Nothing of the replay counts until fed; what came after does.
        assert_eq!(hub.held_total(), 13);
        let mut got = Vec::new();
        let mut flushes = 0;
        loop {
            let batch = hub.flush(0, Instant::now());
            flushes += 1;
            let bytes: usize = share(&batch, slot).iter().map(|b| b.len()).sum();
            assert!(bytes <= REPLAY_WINDOW + 1024, "{bytes} bytes in one turn");
            for part in share(&batch, slot) {
                got.extend_from_slice(part);
            }
            if !batch.more && !hub.replays_waiting(0) {
                break;
            }
        }
        assert!(flushes >= 90 * 1024 / REPLAY_WINDOW, "{flushes} flushes");
        let mut want: Vec<u8> = frames[10..].iter().flat_map(|f| f.to_vec()).collect();
        want.extend_from_slice(b"data: after\n\n");
        assert_eq!(got, want);
        assert_eq!(hub.held_total(), 0);
        assert!(!hub.replays_waiting(0));
    }

    #[test]
    fn a_replay_waits_for_its_client_and_for_the_budget() {
        let mut hub = Hub::default();
        hub.set_budget(200 * 1024);
        let slots: Vec<_> = (0..10).map(|_| open(&mut hub)).collect();
        assert_eq!(hub.replay_budget(), 50 * 1024);
        let frames = history(200, 512);
        for &slot in &slots {
            hub.start_replay(slot, frames.clone(), 0);
        }
        // A client that does not read: its response holds what it got.
        let batch = hub.flush(0, Instant::now());
        let held = hub.held_total();
        for &slot in &slots {
            let bytes: usize = share(&batch, slot).iter().map(|b| b.len()).sum();
            hub.set_held(slot, bytes);
        }
        // Replays may fill a quarter of the budget (50 KiB): a window and a half,
        // and the rest wait; no one is cut off: each is under a window
        // behind.
        assert!(hub.held_total() <= 50 * 1024 + 512, "{}", hub.held_total());
        assert_eq!(held, 0, "what a flush took is its transports' to report");
        let batch = hub.flush(0, Instant::now());
        assert!(batch.layout.is_empty() && batch.cut_off.is_empty());
        assert!(
            !hub.replays_waiting(0),
            "nothing to do until they take some"
        );
        // The first takes everything it was given: that makes room for a
        // window, which goes to the first that has had none (turns go
        // round, so every replay goes on).
        hub.set_held(slots[0], 0);
        assert!(hub.replays_waiting(0));
        let batch = hub.flush(0, Instant::now());
        assert_eq!(batch.layout, vec![slots[2], 0, REPLAY_WINDOW as u32]);
    }

    #[test]
    fn a_storm_of_replays_is_sliced_into_turns() {
        let mut hub = Hub::default();
        let slots: Vec<_> = (0..1000).map(|_| open(&mut hub)).collect();
        let frames = history(500, 512);
        for &slot in &slots {
            hub.start_replay(slot, frames.clone(), 0);
        }
        let mut total = 0;
        let mut turns = 0;
        loop {
            let batch = hub.flush(0, Instant::now());
            assert!(batch.bytes.len() <= REPLAY_TURN_BYTES + 512);
            total += batch.bytes.len();
            turns += 1;
            if !batch.more {
                break;
            }
        }
        assert_eq!(total, 1000 * 500 * 512);
        assert!(turns >= total / REPLAY_TURN_BYTES, "{turns} turns");
    }

    #[test]
    fn a_replay_its_client_can_never_take_cuts_it_off() {
        let mut hub = Hub::default();
        let slot = hub.open(
            StreamOptions {
                max_buffered_bytes: 4096,
                ..StreamOptions::default()
            },
            Instant::now(),
        );
        hub.start_replay(slot, history(3, 1024), 0);
        // What waits behind the replay fills the cap: the replay cannot go.
        hub.push_encoded(slot, &[b'x'; 3500]).unwrap();
        let batch = hub.flush(0, Instant::now());
        assert_eq!(batch.cut_off, vec![slot]);
        assert_eq!(hub.counters.budget_cut_offs, 0);
    }
}
