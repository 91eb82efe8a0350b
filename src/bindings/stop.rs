//! The binding of stop tokens (see [`crate::core::stop`]): the farewell
//! frame of `close(true)`, the check of a reconnect's `Last-Event-ID`, and
//! the settings. The keys are process-wide (see [`super::state`]): a client
//! told to stop may reconnect to any worker thread.

use std::time::{Duration, SystemTime};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use super::error::{frame_error, Result};
use super::state::{stop_keys, with_hub};
use crate::core::frame::Frame;
use crate::core::stop::STOP_EVENT;

/// Queues the farewell frame of `close(true)` and returns its token, or
/// `null` if the client is too far behind to receive it.
#[napi(catch_unwind)]
pub fn send_stop(slot: u32) -> Result<Option<String>> {
    let token = stop_keys().issue(SystemTime::now());
    let frame = Frame::new("", Some(STOP_EVENT), Some(&token)).map_err(frame_error)?;
    let queued = with_hub(|hub| {
        // The client is stopping: a replay still being fed is not owed, and
        // the farewell must not wait behind it.
        hub.drop_replays(slot);
        hub.push_frame(slot, &frame)
    })
    .is_ok();
    Ok(queued.then_some(token))
}

/// Whether a `Last-Event-ID` is the token of a client told to stop, made
/// by any process that shares a key with this one.
#[napi(catch_unwind)]
pub fn is_stop_token(last_event_id: String) -> bool {
    stop_keys().verify(&last_event_id, SystemTime::now())
}

/// Sets the key that signs stop tokens (checked by JavaScript to be at least
/// [`super::defaults::MIN_STOP_KEY_BYTES`] long) and how long tokens are
/// honoured.
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
