//! The one conversion from the core's errors to JavaScript errors, and the
//! export of the registry of codes ([`crate::core::codes`]).
//!
//! Every error that crosses into JavaScript carries a [`Code`] (its `code`
//! property there) and a short detail; JavaScript writes the message a user
//! reads, naming the argument it knows (`options.event`, `eventId`…). No
//! message text is parsed or patched on either side.

use std::collections::HashMap;

use napi::Error;
use napi_derive::napi;

use crate::core::channel::FrameTooLarge;
use crate::core::codes::Code;
use crate::core::frame::FrameError;
use crate::core::frame::MAX_ID_BYTES;
use crate::core::hub::PushError;
use crate::core::topics::TooManyStreams;

/// An error of the binding: a [`Code`] and a detail.
pub type SseError = Error<Code>;
pub type Result<T> = std::result::Result<T, SseError>;

pub fn error(code: Code, detail: impl Into<String>) -> SseError {
    Error::new(code, detail.into())
}

/// A refused frame: its code says which field; JavaScript names the
/// argument that field came from.
pub fn frame_error(err: FrameError) -> SseError {
    let code = match err {
        FrameError::EventHasLineBreak => Code::InvalidEvent,
        FrameError::IdHasLineBreak | FrameError::IdHasNul | FrameError::IdTooLong => {
            Code::InvalidId
        }
    };
    error(code, err.to_string())
}

pub fn too_large(big: FrameTooLarge) -> SseError {
    error(
        Code::EventTooLarge,
        format!(
            "the event takes {} bytes, more than a subscriber's maxBufferedBytes ({})",
            big.len, big.max
        ),
    )
}

pub fn too_many_streams(too_many: TooManyStreams) -> SseError {
    error(
        Code::TooManyChannels,
        format!(
            "with this channel, the endpoint's Last-Event-ID could take {} bytes, more than the {MAX_ID_BYTES} a client can send back",
            too_many.longest
        ),
    )
}

/// A push that found no open stream.
pub fn closed(_: PushError) -> SseError {
    error(Code::Closed, "the event stream is closed")
}

/// A failure of Node-API itself (creating a thread-safe function, say).
pub fn internal(err: napi::Error) -> SseError {
    error(Code::Internal, err.reason)
}

/// The registry of codes, by name: `{ SlowConsumer: "ERR_SSE_SLOW_CONSUMER", … }`.
#[napi(catch_unwind)]
pub fn error_codes() -> HashMap<&'static str, &'static str> {
    Code::ALL
        .iter()
        .map(|code| (code.name(), code.as_str()))
        .collect()
}
