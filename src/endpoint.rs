//! The JavaScript binding of an event stream: it converts values and calls
//! the pure Rust core, nothing more.
//!
//! The JavaScript `EventEndpoint` owns a slot in this thread's [`Hub`] and
//! hands strings in (cheap); encoded bytes come back once per event-loop
//! turn for all streams together through [`flush`], never one Buffer per
//! frame.

use std::cell::RefCell;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use napi::bindgen_prelude::{Buffer, Uint32Array};
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::frame::{Frame, FrameError};
use crate::hub::{Hub, Slot};
use crate::stop::{StopTokens, STOP_EVENT};

thread_local! {
    // Every call comes from the JavaScript thread that owns the streams; a
    // worker thread gets a hub of its own.
    static HUB: RefCell<Hub> = RefCell::new(Hub::default());
}

// Process-wide: a client told to stop may reconnect to any worker thread.
static STOP_TOKENS: LazyLock<Mutex<StopTokens>> =
    LazyLock::new(|| Mutex::new(StopTokens::default()));

fn with_hub<T>(f: impl FnOnce(&mut Hub) -> T) -> T {
    HUB.with(|hub| f(&mut hub.borrow_mut()))
}

fn invalid(err: FrameError) -> Error {
    Error::new(Status::InvalidArg, err.to_string())
}

fn closed() -> Error {
    Error::new(Status::GenericFailure, "The event stream is closed")
}

fn push(slot: Slot, frame: &Frame) -> Result<u32> {
    with_hub(|hub| hub.push_frame(slot, frame))
        .map(|queued| queued as u32)
        .ok_or_else(closed)
}

/// Opens a stream and queues its opening bytes; returns its slot.
#[napi]
pub fn open_stream(reconnection_time: Option<u32>) -> u32 {
    with_hub(|hub| {
        let slot = hub.open();
        hub.push_opening(slot, reconnection_time);
        slot
    })
}

/// Queues a `message` event; returns the bytes queued for the stream.
#[napi]
pub fn send(slot: u32, data: String, event_id: Option<String>) -> Result<u32> {
    let mut frame = Frame::message(&data);
    if let Some(id) = event_id.as_deref().filter(|id| !id.is_empty()) {
        frame = frame.id(id).map_err(invalid)?;
    }
    push(slot, &frame)
}

/// Queues a named event; returns the bytes queued for the stream.
#[napi]
pub fn send_event(slot: u32, event: String, data: String, event_id: Option<String>) -> Result<u32> {
    let mut frame = Frame::message(&data).event(&event).map_err(invalid)?;
    if let Some(id) = event_id.as_deref().filter(|id| !id.is_empty()) {
        frame = frame.id(id).map_err(invalid)?;
    }
    push(slot, &frame)
}

/// Queues the farewell frame of `close(true)` and returns its token.
#[napi]
pub fn send_stop(slot: u32) -> Result<String> {
    let token = STOP_TOKENS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .issue(Instant::now());
    let frame = Frame::message("")
        .event(STOP_EVENT)
        .and_then(|f| f.id(&token))
        .map_err(invalid)?;
    push(slot, &frame)?;
    Ok(token)
}

/// Whether a `Last-Event-ID` is the token of a client told to stop.
#[napi]
pub fn is_stop_token(last_event_id: String) -> bool {
    STOP_TOKENS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .contains(&last_event_id, Instant::now())
}

/// Takes one stream's queued bytes ahead of the next flush.
#[napi]
pub fn take_queued(slot: u32) -> Option<Buffer> {
    let bytes = with_hub(|hub| hub.take(slot));
    (!bytes.is_empty()).then(|| Buffer::from(Vec::from(bytes)))
}

/// Bytes queued for a stream and not yet flushed.
#[napi]
pub fn buffered_amount(slot: u32) -> u32 {
    with_hub(|hub| hub.buffered(slot) as u32)
}

/// Closes a stream's slot, dropping what is still queued.
#[napi]
pub fn release_stream(slot: u32) {
    with_hub(|hub| hub.release(slot));
}

/// Open streams on this thread; for tests and diagnostics.
#[napi]
pub fn open_stream_count() -> u32 {
    with_hub(|hub| hub.len() as u32)
}

/// Everything queued on this thread, for one `write` per stream.
#[napi(object)]
pub struct FlushBatch {
    /// The bytes of all streams, one after another.
    pub bytes: Buffer,
    /// `[slot, start, end, …]`: each stream's share of `bytes`.
    pub layout: Uint32Array,
}

/// Takes the bytes queued on every stream; `null` when nothing waits.
#[napi]
pub fn flush() -> Option<FlushBatch> {
    let batch = with_hub(|hub| hub.flush());
    (!batch.is_empty()).then(|| FlushBatch {
        bytes: Buffer::from(batch.bytes),
        layout: Uint32Array::new(batch.layout),
    })
}
