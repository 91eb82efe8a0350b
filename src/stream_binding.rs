//! The binding of event streams: it converts values and calls the pure Rust
//! core, nothing more.
//!
//! A JavaScript `EventEndpoint` owns a slot in this thread's [`Hub`] and
//! hands strings in (cheap); encoded bytes come back once per event-loop
//! turn for all the streams of one owner through [`flush`], never one Buffer
//! per frame. Each copy of the JavaScript layer on the thread is an owner of
//! its own ([`new_owner`]), so that no copy flushes another's streams.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{Buffer, Function, Uint32Array};
use napi_derive::napi;

use crate::direct;
use crate::error::{closed, frame_error, internal, Result};
use crate::frame::Frame;
use crate::hub::{Framing, Hub, Owner, PushError, StreamOptions};
use crate::last_frame::LastFrame;

thread_local! {
    // Every call comes from the JavaScript thread that owns the streams; a
    // worker thread gets a hub of its own.
    static HUB: RefCell<Hub> = RefCell::new({
        let mut hub = Hub::default();
        hub.set_budget(DEFAULT_MEMORY_BUDGET as usize);
        hub
    });
    static LAST_FRAME: RefCell<LastFrame> = RefCell::new(LastFrame::default());
    static OWNERS: Cell<Owner> = const { Cell::new(0) };
    // Drains and failures found while resuming direct sockets, reported by
    // the next flush.
    static AFTER_WAKEUPS: RefCell<direct::Written> = RefCell::new(direct::Written::default());
}

pub(crate) fn with_hub<T>(f: impl FnOnce(&mut Hub) -> T) -> T {
    HUB.with(|hub| f(&mut hub.borrow_mut()))
}

/// The longest event id, in UTF-8 bytes (see [`crate::frame::MAX_ID_BYTES`]).
#[napi]
pub const MAX_ID_BYTES: u32 = crate::frame::MAX_ID_BYTES as u32;

/// Bytes a client may fall behind before it is cut off as a slow consumer,
/// unless an endpoint says otherwise.
#[napi]
pub const DEFAULT_MAX_BUFFERED_BYTES: u32 = crate::buffer::DEFAULT_MAX_BUFFERED as u32;
/// Bytes behind at which `send()` starts to wait, unless an endpoint says
/// otherwise.
#[napi]
pub const DEFAULT_HIGH_WATER_MARK: u32 = crate::buffer::DEFAULT_HIGH_WATER_MARK as u32;
/// How long a closed stream may take to hand its last bytes to a client
/// before the connection is dropped, unless an endpoint says otherwise (ms).
#[napi]
pub const DEFAULT_CLOSE_TIMEOUT_MS: u32 = 30_000;
/// The most bytes held for all clients of a thread together (queued in
/// Rust, and held by their responses), unless `setMemoryBudget` says
/// otherwise: past it, the clients furthest behind are cut off.
#[napi]
pub const DEFAULT_MEMORY_BUDGET: u32 = 128 << 20;
/// How long a socket that Rust writes to may take no byte at all of what
/// waits for it before its client is cut off as a slow consumer, unless an
/// endpoint says otherwise (ms).
#[napi]
pub const DEFAULT_STALL_TIMEOUT_MS: u32 = 5_000;
/// What `send` returns when the frame would pass the stream's cap.
#[napi]
pub const SEND_OVERFLOW: i32 = -1;
/// What `send` returns when the frame alone is larger than the cap.
#[napi]
pub const SEND_TOO_LARGE: i32 = -2;
/// What `sendAgain` returns when the last frame is not the caller's.
#[napi]
pub const SEND_STALE: i32 = -3;

/// A stream's settings, as the endpoint validated them.
#[napi(object)]
pub struct StreamSettings {
    pub owner: u32,
    /// The reconnection time sent at the start, if any (ms).
    pub retry: Option<u32>,
    pub max_buffered_bytes: u32,
    /// Idle time before a keep-alive comment; `0` is off (ms).
    pub keep_alive: u32,
}

/// A new owner: one per copy of the JavaScript layer on this thread.
#[napi(catch_unwind)]
pub fn new_owner() -> u32 {
    OWNERS.with(|owners| {
        let next = owners.get() + 1;
        owners.set(next);
        next
    })
}

fn queued(result: std::result::Result<usize, PushError>) -> Result<i64> {
    match result {
        Ok(queued) => Ok(queued as i64),
        Err(PushError::Full) => Ok(SEND_OVERFLOW.into()),
        Err(PushError::FrameTooLarge) => Ok(SEND_TOO_LARGE.into()),
        Err(err @ PushError::Closed) => Err(closed(err)),
    }
}

/// Opens a stream and queues its opening bytes; returns its slot.
#[napi(catch_unwind)]
pub fn open_stream(settings: StreamSettings) -> u32 {
    let options = StreamOptions {
        owner: settings.owner,
        max_buffered: settings.max_buffered_bytes as usize,
        keep_alive: (settings.keep_alive > 0)
            .then(|| Duration::from_millis(settings.keep_alive.into())),
    };
    with_hub(|hub| {
        let slot = hub.open(options, Instant::now());
        // A fresh stream is empty: the opening always fits.
        let _ = hub.push_opening(slot, settings.retry);
        slot
    })
}

/// Queues an event (a `message` when `event` is absent). Returns the bytes
/// queued for the stream, [`SEND_OVERFLOW`] if the frame would pass its
/// cap, or [`SEND_TOO_LARGE`] if the frame alone is larger than the cap
/// (nothing is queued in either case).
#[napi(catch_unwind)]
pub fn send(
    slot: u32,
    data: String,
    event: Option<String>,
    event_id: Option<String>,
) -> Result<i64> {
    let frame = Frame::new(&data, event.as_deref(), event_id.as_deref()).map_err(frame_error)?;
    with_hub(|hub| {
        let owner = hub.owner(slot).ok_or_else(|| closed(PushError::Closed))?;
        LAST_FRAME.with(|last| {
            let mut last = last.borrow_mut();
            let bytes = last.encode(owner, &frame);
            queued(hub.push_encoded(slot, bytes))
        })
    })
}

/// Queues the frame that the last `send` of this slot's owner encoded,
/// without passing or encoding it again; returns as [`send`] does, or
/// [`SEND_STALE`] when another owner encoded a frame since (send in full).
#[napi(catch_unwind)]
pub fn send_again(slot: u32) -> Result<i64> {
    with_hub(|hub| {
        let owner = hub.owner(slot).ok_or_else(|| closed(PushError::Closed))?;
        LAST_FRAME.with(|last| match last.borrow_mut().share(owner) {
            Some(bytes) => queued(hub.push_shared(slot, bytes)),
            None => Ok(SEND_STALE.into()),
        })
    })
}

/// Queues a `retry:` field on its own (a block that dispatches no event):
/// the client waits `ms` before it reconnects. Returns whether it fit.
#[napi(catch_unwind)]
pub fn send_retry(slot: u32, ms: u32) -> bool {
    let mut block = bytes::BytesMut::new();
    crate::frame::encode_retry(ms, &mut block);
    block.extend_from_slice(b"\n");
    with_hub(|hub| hub.push_encoded(slot, &block)).is_ok()
}

/// Takes one stream's queued bytes ahead of the next flush.
#[napi(catch_unwind)]
pub fn take_queued(slot: u32) -> Option<Buffer> {
    let bytes = with_hub(|hub| hub.take(slot));
    (!bytes.is_empty()).then(|| Buffer::from(bytes))
}

/// Bytes queued for a stream and not yet flushed.
#[napi(catch_unwind)]
pub fn buffered_amount(slot: u32) -> f64 {
    with_hub(|hub| hub.buffered(slot) as f64)
}

/// Leaves a stream out of flushes until [`resume_stream`]: its transport
/// reported backpressure.
#[napi(catch_unwind)]
pub fn pause_stream(slot: u32) {
    with_hub(|hub| hub.pause(slot));
}

/// Takes a paused stream back; returns whether bytes wait for a flush.
#[napi(catch_unwind)]
pub fn resume_stream(slot: u32) -> bool {
    with_hub(|hub| hub.resume(slot))
}

/// Asks the next flush to report (in `drained`) when this stream's bytes
/// have all been written to its socket; for `send()`s waiting on it.
#[napi(catch_unwind)]
pub fn watch_drain(slot: u32) {
    with_hub(|hub| hub.watch_drain(slot));
}

/// Takes over writing a stream's bytes to its socket (see
/// [`crate::direct`]): `fd` is the socket's descriptor, whose headers have
/// gone out and of which Node holds no unwritten byte. Returns false where
/// that cannot be done (then nothing changed).
#[napi(catch_unwind)]
pub fn attach_socket(slot: u32, fd: i32, stall_timeout_ms: u32) -> bool {
    let stall = Duration::from_millis(stall_timeout_ms.into());
    with_hub(|hub| direct::attach(hub, slot, fd, stall))
}

/// Gives a stream's socket back to Node (the stream is ending): returns the
/// bytes that were framed for it and not yet written, to be written to the
/// socket as they are, first; `null` if none.
#[napi(catch_unwind)]
pub fn detach_socket(slot: u32) -> Option<Buffer> {
    let pending = direct::detach(slot);
    with_hub(|hub| {
        hub.set_held(slot, 0);
        hub.set_framing(slot, Framing::Plain);
    });
    (!pending.is_empty()).then(|| Buffer::from(pending))
}

/// Sets the function that `owner`'s direct sockets call (with the slot)
/// when they can be written again.
#[napi(catch_unwind)]
pub fn set_direct_wakeup(owner: u32, on_writable: Function<u32, ()>) -> Result<()> {
    direct::set_wakeup(owner, on_writable).map_err(internal)
}

/// After a wakeup: writes what a direct socket had pending. Returns whether
/// the stream takes bytes again; what it drained or failed is reported by
/// the next flush.
#[napi(catch_unwind)]
pub fn resume_direct(slot: u32) -> bool {
    with_hub(|hub| AFTER_WAKEUPS.with(|after| direct::resume(hub, slot, &mut after.borrow_mut())))
}

/// How a stream's flushed bytes are framed for its transport.
#[napi]
pub enum StreamFraming {
    /// As they are.
    Plain,
    /// As one HTTP/1.1 chunk per flush, for the socket of a chunked response.
    Chunked,
}

#[napi(catch_unwind)]
pub fn set_framing(slot: u32, framing: StreamFraming) {
    let framing = match framing {
        StreamFraming::Plain => Framing::Plain,
        StreamFraming::Chunked => Framing::Chunked,
    };
    with_hub(|hub| hub.set_framing(slot, framing));
}

/// Closes a stream's slot, dropping what is still queued (and our
/// descriptor of its socket, if we held one).
#[napi(catch_unwind)]
pub fn release_stream(slot: u32) {
    direct::release(slot);
    with_hub(|hub| hub.release(slot));
}

/// Sockets that Rust writes to itself on this thread; for diagnostics.
#[napi(catch_unwind)]
pub fn direct_socket_count() -> u32 {
    direct::count() as u32
}

/// Sets this thread's memory budget, in bytes.
#[napi(catch_unwind)]
pub fn set_memory_budget(bytes: f64) {
    with_hub(|hub| hub.set_budget(bytes as usize));
}

/// This thread's figures for diagnostics: `[bytes held now, the budget,
/// events queued, bytes handed on, streams cut off by the budget]`.
#[napi(catch_unwind)]
pub fn hub_figures() -> Vec<f64> {
    with_hub(|hub| {
        let c = hub.counters;
        vec![
            hub.held_total() as f64,
            hub.budget() as f64,
            c.events as f64,
            c.bytes as f64,
            c.evictions as f64,
        ]
    })
}

/// Says how many of a stream's bytes its response holds (handed over, not
/// yet taken by the client), so that its cap and the budget count them.
#[napi(catch_unwind)]
pub fn set_held(slot: u32, bytes: u32) {
    with_hub(|hub| hub.set_held(slot, bytes as usize));
}

/// Open streams on this thread, of every owner; for diagnostics.
#[napi(catch_unwind)]
pub fn open_stream_count() -> u32 {
    with_hub(|hub| hub.len() as u32)
}

/// Everything one owner has queued, for one `write` per stream.
#[napi(object)]
pub struct FlushBatch {
    /// The bytes of all streams, one after another.
    pub bytes: Buffer,
    /// `[slot, start, end, …]`: each stream's share of `bytes`.
    pub layout: Uint32Array,
    /// More bytes wait than one batch can hold: flush again.
    pub more: bool,
    /// Streams written directly whose waiting `send()`s may go (their
    /// bytes have all left), or `null`.
    pub drained: Option<Uint32Array>,
    /// Streams written directly whose socket failed, or `null`.
    pub failed: Option<Uint32Array>,
    /// Streams cut off by the memory budget (furthest behind first), or
    /// `null`.
    pub evicted: Option<Uint32Array>,
}

/// Takes the bytes queued on every unpaused stream of `owner`; `null` when
/// nothing waits.
#[napi(catch_unwind)]
pub fn flush(owner: u32) -> Option<FlushBatch> {
    let now = Instant::now();
    let (batch, written) = with_hub(|hub| {
        let batch = hub.flush(owner, now);
        let mut written = direct::write_all(hub, &batch.direct, now);
        AFTER_WAKEUPS.with(|after| {
            written.append(&mut after.borrow_mut());
        });
        // A stalled client is cut off like one the budget picked.
        let mut batch = batch;
        for &slot in &written.stalled {
            if !batch.evicted.contains(&slot) {
                batch.evicted.push(slot);
            }
        }
        (batch, written)
    });
    let list = |slots: Vec<u32>| (!slots.is_empty()).then(|| Uint32Array::new(slots));
    let nothing = batch.layout.is_empty()
        && written.drained.is_empty()
        && written.failed.is_empty()
        && batch.evicted.is_empty();
    (!nothing).then(|| FlushBatch {
        bytes: Buffer::from(batch.bytes),
        layout: Uint32Array::new(batch.layout),
        more: batch.more,
        drained: list(written.drained),
        failed: list(written.failed),
        evicted: list(batch.evicted),
    })
}
