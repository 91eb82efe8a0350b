//! The binding of event streams: it converts values and calls the pure
//! core, nothing more.
//!
//! A JavaScript `EventEndpoint` owns a slot in this thread's [`Hub`] and
//! hands strings in (cheap); encoded bytes come back once per event-loop
//! turn for all the streams of one owner through [`flush`], never one
//! Buffer per frame. Each copy of the JavaScript layer on the thread is an
//! owner of its own ([`new_owner`]), so that no copy flushes another's
//! streams.
//!
//! [`Hub`]: crate::core::hub::Hub

use std::sync::Arc;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{Buffer, Uint32Array};
use napi_derive::napi;

use super::defaults::{SEND_OVERFLOW, SEND_STALE, SEND_TOO_LARGE};
use super::error::{closed, frame_error, too_many_streams, Result};
use super::state::{self, with_direct, with_hub, with_last_frame};
use crate::core::frame::{self, Frame};
use crate::core::hub::{Framing, PushError, StreamOptions};
use crate::core::stream_entry::StreamId;
use crate::io::Written;

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
    state::new_owner()
}

fn queued(result: std::result::Result<usize, PushError>) -> Result<i64> {
    match result {
        Ok(queued) => Ok(queued as i64),
        Err(PushError::Overflow) => Ok(SEND_OVERFLOW.into()),
        Err(PushError::TooLarge) => Ok(SEND_TOO_LARGE.into()),
        Err(err @ PushError::Closed) => Err(closed(err)),
    }
}

/// Opens a stream and queues its opening bytes; returns its slot.
#[napi(catch_unwind)]
pub fn open_stream(settings: StreamSettings) -> u32 {
    let options = StreamOptions {
        owner: settings.owner,
        max_buffered_bytes: settings.max_buffered_bytes as usize,
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
        with_last_frame(|last| queued(hub.push_encoded(slot, last.encode(owner, &frame))))
    })
}

/// Queues the frame that the last `send` of this slot's owner encoded,
/// without passing or encoding it again; returns as [`send`] does, or
/// [`SEND_STALE`] when another owner encoded a frame since, or when the
/// slot is not open (send in full, which says why). Called as
/// `sendAgain(slot)` from JavaScript (see [`super::fast`]).
pub fn send_again_queued(slot: u32) -> i64 {
    with_hub(|hub| {
        let Some(owner) = hub.owner(slot) else {
            return SEND_STALE.into();
        };
        with_last_frame(|last| match last.share(owner) {
            Some(bytes) => queued(hub.push_shared(slot, bytes)).unwrap_or(SEND_STALE.into()),
            None => SEND_STALE.into(),
        })
    })
}

/// Queues a `retry:` field on its own (a block that dispatches no event):
/// the client waits `ms` before it reconnects. Returns whether it fit.
#[napi(catch_unwind)]
pub fn send_retry(slot: u32, ms: u32) -> bool {
    let mut block = bytes::BytesMut::new();
    frame::encode_retry(ms, &mut block);
    block.extend_from_slice(b"\n");
    with_hub(|hub| hub.push_encoded(slot, &block)).is_ok()
}

/// Queues bytes the application wrote to the body itself, behind the
/// endpoint (`res.write()` on an adopted connection), as they are; false if
/// the stream's cap refuses them.
#[napi(catch_unwind)]
pub fn send_written_behind(slot: u32, bytes: Buffer) -> bool {
    with_hub(|hub| hub.push_encoded(slot, &bytes)).is_ok()
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
    with_hub(|hub| {
        // An adopted connection's writes are made off this thread: what it
        // holds now, not what its last report said.
        if let Some((held, in_flight)) = with_direct(|direct| direct.held_now(slot)) {
            hub.set_held_in_flight(slot, held, in_flight);
        }
        hub.buffered(slot) as f64
    })
}

/// Starts following Redis stream `stream` for a stream, its cursor there at
/// `at`, before entries of it are replayed; see
/// [`Hub::follow_topic`](crate::core::hub::Hub::follow_topic).
#[napi(catch_unwind)]
pub fn follow_topic(slot: u32, topic: String, at: String, composite: bool) -> Result<()> {
    let at = StreamId::parse(&at);
    with_hub(|hub| hub.follow_topic(slot, &Arc::from(topic), at, composite))
        .map_err(too_many_streams)
}

/// A stream's composite id, the `Last-Event-ID` that resumes every Redis
/// stream its client follows, or `null` if its ids are not composite.
#[napi(catch_unwind)]
pub fn topics_id(slot: u32) -> Option<String> {
    with_hub(|hub| hub.topics_id(slot))
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
    with_direct(|direct| direct.release(slot));
    with_hub(|hub| hub.release(slot));
}

/// Bytes replays may still add under this thread's budget (see
/// [`Hub::replay_room`](crate::core::hub::Hub::replay_room)).
#[napi(catch_unwind)]
pub fn replay_room() -> f64 {
    with_hub(|hub| hub.replay_room() as f64)
}

/// Sets this thread's memory budget, in bytes.
#[napi(catch_unwind)]
pub fn set_memory_budget(bytes: f64) {
    with_hub(|hub| hub.set_budget(bytes as usize));
}

/// Says how many of a stream's bytes its response holds (handed over, not
/// yet taken by the client), so that its cap and the budget count them.
#[napi(catch_unwind)]
pub fn set_held(slot: u32, bytes: u32) {
    with_hub(|hub| hub.set_held(slot, bytes as usize));
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
    /// Streams to cut off as slow consumers: picked by the memory budget
    /// (furthest behind first), or stalled on a direct socket; or `null`.
    pub cut_off: Option<Uint32Array>,
}

/// Takes the bytes queued on every unpaused stream of `owner`; `null` when
/// nothing waits.
#[napi(catch_unwind)]
pub fn flush(owner: u32) -> Option<FlushBatch> {
    with_hub(|hub| with_direct(|direct| direct.let_writers_catch_up(hub)));
    let now = Instant::now();
    let (batch, written) = with_hub(|hub| {
        // What adopted connections' writes did first: it resumes streams
        // whose sockets took all.
        let mut written = Written::default();
        with_direct(|direct| {
            direct.take_reports(hub, now, &mut written);
            hub.set_in_flight(direct.in_flight());
        });
        let mut batch = hub.flush(owner, now);
        written.append(&mut with_direct(|direct| {
            direct.write_all(hub, &batch.direct, now)
        }));
        state::with_after_wakeups(|after| written.append(after));
        // Replays that their clients kept up with go on next turn.
        batch.more |= hub.replays_waiting(owner);
        // A stalled client is cut off like one the budget picked.
        for &slot in &written.stalled {
            if !batch.cut_off.contains(&slot) {
                batch.cut_off.push(slot);
            }
        }
        (batch, written)
    });
    let list = |slots: Vec<u32>| (!slots.is_empty()).then(|| Uint32Array::new(slots));
    let nothing = batch.layout.is_empty()
        && !batch.more
        && written.drained.is_empty()
        && written.failed.is_empty()
        && batch.cut_off.is_empty();
    (!nothing).then(|| FlushBatch {
        bytes: Buffer::from(batch.bytes),
        layout: Uint32Array::new(batch.layout),
        more: batch.more,
        drained: list(written.drained),
        failed: list(written.failed),
        cut_off: list(batch.cut_off),
    })
}
