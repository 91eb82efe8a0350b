//! The JavaScript binding of event streams: it converts values and calls
//! the pure Rust core, nothing more.
//!
//! The JavaScript `EventEndpoint` owns a slot in this thread's [`Hub`] and
//! hands strings in (cheap); encoded bytes come back once per event-loop
//! turn for all streams together through [`flush`], never one Buffer per
//! frame.

use std::cell::RefCell;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use napi::bindgen_prelude::{Buffer, Function, Uint32Array};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::frame::{Frame, FrameError};
use crate::hub::{Hub, PushError, Slot, StreamOptions};
use crate::stop::{StopKeys, STOP_EVENT};

thread_local! {
    // Every call comes from the JavaScript thread that owns the streams; a
    // worker thread gets a hub of its own.
    static HUB: RefCell<Hub> = RefCell::new(Hub::default());
    // The last frame encoded by `send`/`sendEvent`, so that looping the same
    // event over many endpoints encodes it once (see `send_again`).
    static LAST_FRAME: RefCell<LastFrame> = RefCell::new(LastFrame::default());
    static KEEP_ALIVE_TIMER: RefCell<Option<tokio::task::AbortHandle>> = const { RefCell::new(None) };
}

// Process-wide: a client told to stop may reconnect to any worker thread.
static STOP_KEYS: LazyLock<Mutex<StopKeys>> = LazyLock::new(|| Mutex::new(StopKeys::default()));

pub(crate) fn stop_keys() -> MutexGuard<'static, StopKeys> {
    STOP_KEYS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The last frame `send`/`sendEvent` encoded. It is copied into the stream
/// it was sent to and kept in a buffer that the next frame reuses; only if
/// it is sent again (to another endpoint) is it frozen into shared bytes,
/// which every further endpoint then queues without a copy.
#[derive(Default)]
struct LastFrame {
    own: BytesMut,
    shared: Option<Bytes>,
}

impl LastFrame {
    fn encode(&mut self, frame: &Frame) -> &[u8] {
        self.shared = None;
        self.own.clear();
        frame.encode_into(&mut self.own);
        &self.own
    }

    fn share(&mut self) -> &Bytes {
        let own = &mut self.own;
        self.shared.get_or_insert_with(|| own.split().freeze())
    }
}

/// What `send` returns when the frame would pass the stream's cap.
const OVERFLOW: i64 = -1;
/// What `send` returns when the frame alone is larger than the cap.
const TOO_LARGE: i64 = -2;

pub(crate) fn with_hub<T>(f: impl FnOnce(&mut Hub) -> T) -> T {
    HUB.with(|hub| f(&mut hub.borrow_mut()))
}

pub(crate) fn invalid(err: FrameError) -> Error {
    Error::new(Status::InvalidArg, err.to_string())
}

fn queued(result: std::result::Result<usize, PushError>) -> Result<i64> {
    match result {
        Ok(queued) => Ok(queued as i64),
        Err(PushError::Full) => Ok(OVERFLOW),
        Err(PushError::FrameTooLarge) => Ok(TOO_LARGE),
        Err(PushError::Closed) => Err(Error::new(
            Status::GenericFailure,
            "The event stream is closed",
        )),
    }
}

/// Encodes `frame` as the last frame and queues it on `slot`.
fn push_new(slot: Slot, frame: &Frame) -> Result<i64> {
    LAST_FRAME.with(|last| {
        let mut last = last.borrow_mut();
        let bytes = last.encode(frame);
        queued(with_hub(|hub| hub.push_encoded(slot, bytes)))
    })
}

/// Opens a stream and queues its opening bytes; returns its slot.
#[napi]
pub fn open_stream(reconnection_time: Option<u32>, max_buffered: u32, keep_alive_ms: u32) -> u32 {
    let options = StreamOptions {
        max_buffered: max_buffered as usize,
        keep_alive: (keep_alive_ms > 0).then(|| Duration::from_millis(keep_alive_ms.into())),
    };
    with_hub(|hub| {
        let slot = hub.open(options, Instant::now());
        // A fresh stream is empty: the opening always fits.
        let _ = hub.push_opening(slot, reconnection_time);
        slot
    })
}

/// Queues a `message` event. Returns the bytes queued for the stream, -1
/// if the frame would pass its cap, or -2 if the frame alone is larger than
/// the cap (nothing is queued in either case).
#[napi]
pub fn send(slot: u32, data: String, event_id: Option<String>) -> Result<i64> {
    let mut frame = Frame::message(&data);
    if let Some(id) = event_id.as_deref().filter(|id| !id.is_empty()) {
        frame = frame.id(id).map_err(invalid)?;
    }
    push_new(slot, &frame)
}

/// Queues a named event; returns as [`send`] does.
#[napi]
pub fn send_event(slot: u32, event: String, data: String, event_id: Option<String>) -> Result<i64> {
    let mut frame = Frame::message(&data).event(&event).map_err(invalid)?;
    if let Some(id) = event_id.as_deref().filter(|id| !id.is_empty()) {
        frame = frame.id(id).map_err(invalid)?;
    }
    push_new(slot, &frame)
}

/// Queues the frame that the last `send`/`sendEvent` encoded, without
/// passing or encoding it again; returns as [`send`] does. The caller must
/// know that this is the frame it means to send.
#[napi]
pub fn send_again(slot: u32) -> Result<i64> {
    LAST_FRAME.with(|last| {
        let mut last = last.borrow_mut();
        let bytes = last.share();
        queued(with_hub(|hub| hub.push_shared(slot, bytes)))
    })
}

/// Queues the farewell frame of `close(true)` and returns its token, or
/// `null` if the client is too far behind to receive it.
#[napi]
pub fn send_stop(slot: u32) -> Result<Option<String>> {
    let token = stop_keys().issue(SystemTime::now());
    let frame = Frame::message("")
        .event(STOP_EVENT)
        .and_then(|f| f.id(&token))
        .map_err(invalid)?;
    let result = with_hub(|hub| hub.push_frame(slot, &frame));
    Ok((queued(result)? >= 0).then_some(token))
}

/// Whether a `Last-Event-ID` is the token of a client told to stop, made
/// by any process that shares a key with this one.
#[napi]
pub fn is_stop_token(last_event_id: String) -> bool {
    stop_keys().verify(&last_event_id, SystemTime::now())
}

/// The shortest key `configureStopTokens` takes, in bytes.
#[napi]
pub const MIN_STOP_KEY_BYTES: u32 = crate::stop::MIN_KEY_LEN as u32;

/// Sets the key that signs stop tokens (checked by JavaScript to be at least
/// [`MIN_STOP_KEY_BYTES`] long) and how long tokens are honoured.
#[napi]
pub fn configure_stop_tokens(key: Option<Buffer>, max_age_ms: Option<f64>) {
    let mut keys = stop_keys();
    if let Some(key) = key {
        keys.set_key(&key);
    }
    if let Some(ms) = max_age_ms {
        keys.set_max_age(Duration::from_millis(ms as u64));
    }
}

/// Takes one stream's queued bytes ahead of the next flush.
#[napi]
pub fn take_queued(slot: u32) -> Option<Buffer> {
    let bytes = with_hub(|hub| hub.take(slot));
    (!bytes.is_empty()).then(|| Buffer::from(bytes))
}

/// Bytes queued for a stream and not yet flushed.
#[napi]
pub fn buffered_amount(slot: u32) -> f64 {
    with_hub(|hub| hub.buffered(slot) as f64)
}

/// Leaves a stream out of flushes until [`resume_stream`]: its response
/// reported backpressure.
#[napi]
pub fn pause_stream(slot: u32) {
    with_hub(|hub| hub.pause(slot));
}

/// Frames a stream's flushed bytes as HTTP/1.1 chunks, so that JavaScript
/// can write them straight to the socket of a chunked response.
#[napi]
pub fn set_chunked(slot: u32, chunked: bool) {
    with_hub(|hub| hub.set_chunked(slot, chunked));
}

/// Takes a paused stream back; returns whether bytes wait for a flush.
#[napi]
pub fn resume_stream(slot: u32) -> bool {
    with_hub(|hub| hub.resume(slot))
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

/// Takes the bytes queued on every unpaused stream; `null` when nothing
/// waits.
#[napi]
pub fn flush() -> Option<FlushBatch> {
    let batch = with_hub(|hub| hub.flush(Instant::now()));
    (!batch.is_empty()).then(|| FlushBatch {
        bytes: Buffer::from(batch.bytes),
        layout: Uint32Array::new(batch.layout),
    })
}

/// Queues a keep-alive comment on every idle stream; returns how many.
#[napi]
pub fn queue_keep_alives() -> u32 {
    with_hub(|hub| hub.queue_keep_alives(Instant::now()) as u32)
}

/// Starts (or restarts with a new period) the one keep-alive timer of this
/// thread: a tokio task that calls `on_tick` every `period_ms`. The call
/// goes through a weak thread-safe function, which never keeps Node alive.
#[napi]
pub fn start_keep_alive_timer(on_tick: Function<(), ()>, period_ms: u32) -> Result<()> {
    let tsfn = on_tick
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    let period = Duration::from_millis(period_ms.max(1).into());
    let task = napi::bindgen_prelude::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Closing {
                break;
            }
        }
    });
    let previous = KEEP_ALIVE_TIMER.with(|timer| timer.borrow_mut().replace(task.abort_handle()));
    if let Some(previous) = previous {
        previous.abort();
    }
    Ok(())
}

/// Stops the keep-alive timer; its thread-safe function is released with it.
#[napi]
pub fn stop_keep_alive_timer() {
    if let Some(timer) = KEEP_ALIVE_TIMER.with(|timer| timer.borrow_mut().take()) {
        timer.abort();
    }
}

/// Whether the keep-alive timer runs; for tests of what outlives endpoints.
#[napi]
pub fn keep_alive_timer_running() -> bool {
    KEEP_ALIVE_TIMER.with(|timer| timer.borrow().as_ref().is_some_and(|t| !t.is_finished()))
}
