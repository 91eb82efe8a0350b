//! The one conversion from the core's errors to JavaScript errors.
//!
//! Every error that crosses into JavaScript carries a code per kind (its
//! `code` property there) and a short detail; JavaScript writes the message a
//! user reads, naming the argument it knows (`options.event`, `eventId`…).
//! No message text is parsed or patched on either side. The codes are the
//! ones users match on, listed in the README.

use napi::Error;

use crate::channel::FrameTooLarge;
use crate::frame::FrameError;
use crate::hub::PushError;

/// The kinds of error, as JavaScript sees them in `err.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// An event name holds CR or LF.
    InvalidEvent,
    /// An id holds CR, LF or NUL, or is too long to come back.
    InvalidId,
    /// An event larger than a stream's `maxBufferedBytes`.
    TooLarge,
    /// The stream is closed.
    Closed,
    /// Redis settings that cannot be used (URL, TLS material).
    RedisConfig,
    /// Redis could not be reached or read.
    RedisUnavailable,
    /// Node-API itself failed, or the addon panicked: a bug of ours.
    Internal,
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        match self {
            Code::InvalidEvent => "ERR_SSE_INVALID_EVENT",
            Code::InvalidId => "ERR_SSE_INVALID_ID",
            Code::TooLarge => "ERR_SSE_EVENT_TOO_LARGE",
            Code::Closed => "ERR_SSE_CLOSED",
            Code::RedisConfig => "ERR_SSE_REDIS_CONFIG",
            Code::RedisUnavailable => "ERR_SSE_REDIS_UNAVAILABLE",
            Code::Internal => "ERR_SSE_INTERNAL",
        }
    }
}

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
        Code::TooLarge,
        format!(
            "the event takes {} bytes, more than a subscriber's maxBufferedBytes ({})",
            big.len, big.max
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
