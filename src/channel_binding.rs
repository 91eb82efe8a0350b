//! The JavaScript binding of [`Channel`]: converts values, nothing more.
//! A broadcast is one call, whatever the number of subscribers.

use napi::bindgen_prelude::Uint32Array;
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::channel::Channel;
use crate::endpoint::{invalid, with_hub};
use crate::frame::Frame;

#[napi]
pub struct NativeChannel {
    channel: Channel,
}

/// What a subscription replayed; see [`crate::channel::Replay`].
#[napi(object)]
pub struct ReplayResult {
    pub frames: u32,
    pub complete: bool,
    pub last_id: Option<String>,
    pub overflow: bool,
}

#[napi]
impl NativeChannel {
    #[napi(constructor)]
    pub fn new(history_size: u32) -> Self {
        NativeChannel {
            channel: Channel::new(history_size as usize),
        }
    }

    /// Adds a stream and queues the history after `last_event_id` on it.
    #[napi]
    pub fn subscribe(&mut self, slot: u32, last_event_id: String) -> ReplayResult {
        let replay = with_hub(|hub| self.channel.subscribe(hub, slot, &last_event_id));
        ReplayResult {
            frames: replay.frames as u32,
            complete: replay.complete,
            last_id: replay.last_id,
            overflow: replay.overflow,
        }
    }

    #[napi]
    pub fn unsubscribe(&mut self, slot: u32) -> bool {
        self.channel.unsubscribe(slot)
    }

    /// Validates and encodes the frame once and queues it on every
    /// subscriber. Returns the slots that it would have overflowed, or
    /// `null` when there are none (the usual case).
    #[napi]
    pub fn broadcast(
        &mut self,
        data: String,
        event: Option<String>,
        id: Option<String>,
    ) -> Result<Option<Uint32Array>> {
        let mut frame = Frame::message(&data);
        if let Some(event) = event.as_deref() {
            frame = frame.event(event).map_err(invalid)?;
        }
        let id = id.as_deref().filter(|id| !id.is_empty());
        if let Some(id) = id {
            frame = frame.id(id).map_err(invalid)?;
        }
        let overflowed = with_hub(|hub| self.channel.broadcast(hub, &frame, id)).map_err(|big| {
            Error::new(
                Status::InvalidArg,
                format!(
                    "The \"data\" argument is too large: the event takes {} bytes, more than a subscriber's maxBufferedBytes ({})",
                    big.len, big.max
                ),
            )
        })?;
        Ok((!overflowed.is_empty()).then(|| Uint32Array::new(overflowed)))
    }
}
