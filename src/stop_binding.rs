//! The binding of stop tokens (see [`crate::stop`]): the farewell frame of
//! `close(true)`, the check of a reconnect's `Last-Event-ID`, and the
//! settings. The keys are process-wide: a client told to stop may reconnect
//! to any worker thread.

use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::error::{frame_error, Result};
use crate::frame::Frame;
use crate::stop::{StopKeys, STOP_EVENT};
use crate::stream_binding::with_hub;

static STOP_KEYS: LazyLock<Mutex<StopKeys>> = LazyLock::new(|| Mutex::new(StopKeys::default()));

pub(crate) fn stop_keys() -> MutexGuard<'static, StopKeys> {
    STOP_KEYS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The shortest key `configureStopTokens` takes, in bytes.
#[napi]
pub const MIN_STOP_KEY_BYTES: u32 = crate::stop::MIN_KEY_LEN as u32;

/// Queues the farewell frame of `close(true)` and returns its token, or
/// `null` if the client is too far behind to receive it.
#[napi(catch_unwind)]
pub fn send_stop(slot: u32) -> Result<Option<String>> {
    let token = stop_keys().issue(SystemTime::now());
    let frame = Frame::new("", Some(STOP_EVENT), Some(&token)).map_err(frame_error)?;
    let queued = with_hub(|hub| hub.push_frame(slot, &frame)).is_ok();
    Ok(queued.then_some(token))
}

/// Whether a `Last-Event-ID` is the token of a client told to stop, made
/// by any process that shares a key with this one.
#[napi(catch_unwind)]
pub fn is_stop_token(last_event_id: String) -> bool {
    stop_keys().verify(&last_event_id, SystemTime::now())
}

/// Sets the key that signs stop tokens (checked by JavaScript to be at least
/// [`MIN_STOP_KEY_BYTES`] long) and how long tokens are honoured.
#[napi(catch_unwind)]
pub fn configure_stop_tokens(key: Option<Buffer>, max_age_ms: Option<f64>) {
    let mut keys = stop_keys();
    if let Some(key) = key {
        keys.set_key(&key);
    }
    if let Some(ms) = max_age_ms {
        keys.set_max_age(Duration::from_millis(ms as u64));
    }
}
