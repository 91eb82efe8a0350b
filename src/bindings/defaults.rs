//! Every number JavaScript reads from the addon, in one place. Where the
//! core or the I/O owns a number, it is read from there; the rest (what
//! only the JavaScript layer uses) is defined here. JavaScript writes none
//! of them itself.

use napi_derive::napi;

use crate::core::{buffer, frame, stop};
use crate::io::redis;

// Streams.

/// The longest event id, in UTF-8 bytes (see [`frame::MAX_ID_BYTES`]).
#[napi]
pub const MAX_ID_BYTES: u32 = frame::MAX_ID_BYTES as u32;
/// Bytes a client may fall behind before it is cut off as a slow consumer,
/// unless an endpoint says otherwise.
#[napi]
pub const DEFAULT_MAX_BUFFERED_BYTES: u32 = buffer::DEFAULT_MAX_BUFFERED_BYTES as u32;
/// Bytes behind at which `send()` starts to wait, unless an endpoint says
/// otherwise.
#[napi]
pub const DEFAULT_HIGH_WATER_MARK: u32 = buffer::DEFAULT_HIGH_WATER_MARK as u32;
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

// What `send` and `sendAgain` return besides a byte count.

/// What `send` returns when the frame would overflow the stream's cap.
#[napi]
pub const SEND_OVERFLOW: i32 = -1;
/// What `send` returns when the frame alone is larger than the cap.
#[napi]
pub const SEND_TOO_LARGE: i32 = -2;
/// What `sendAgain` returns when the last frame is not the caller's.
#[napi]
pub const SEND_STALE: i32 = -3;

// Keep-alive.

/// Idle time after which a keep-alive comment is sent, unless an endpoint
/// says otherwise (ms).
#[napi]
pub const DEFAULT_KEEP_ALIVE_MS: u32 = 15_000;
/// The default under Bun, whose `Bun.serve` drops a request idle for 10 s
/// unless told otherwise, checked on a 4 s grain: a request is dropped
/// after 8.5 to 12 s of silence. A comment goes out at most 1.2 periods
/// after the last byte (lib/outbox.js), 6 s at this period (ms).
#[napi]
pub const BUN_KEEP_ALIVE_MS: u32 = 5_000;

// Stop tokens.

/// The shortest key `configureStopTokens` takes, in bytes.
#[napi]
pub const MIN_STOP_KEY_BYTES: u32 = stop::MIN_KEY_LEN as u32;

/// How long a stop token is honoured unless configured (ms); the marks of
/// `close(true)` (lib/stop-marks.js) are kept as long.
#[napi]
pub const DEFAULT_STOP_MAX_AGE_MS: u32 = stop::DEFAULT_MAX_AGE.as_millis() as u32;

// Channels.

/// Events with an id that a local channel keeps for resuming clients,
/// unless it says otherwise.
#[napi]
pub const DEFAULT_HISTORY_SIZE: u32 = 1_000;
/// Bytes of history a local channel keeps at most, unless it says otherwise.
#[napi]
pub const DEFAULT_HISTORY_BYTES: u32 = 16 << 20;

// Redis-backed channels.

/// Entries a resuming subscriber reads from the stream per page at most;
/// fewer where entries are large, so that a page holds about what the
/// subscriber can take.
#[napi]
pub const RESUME_PAGE_SIZE: u32 = 1_000;
/// Entries in a resume's first page, before the size of an entry is known.
#[napi]
pub const RESUME_FIRST_PAGE_SIZE: u32 = 4;
/// Bytes of broadcasts waiting for Redis at most; past it, `broadcast` is
/// refused at once (not appended).
#[napi]
pub const MAX_PENDING_PUBLISH_BYTES: u32 = redis::MAX_PENDING_PUBLISH_BYTES as u32;
/// Entries a stream is trimmed to (about), unless the channel says otherwise.
#[napi]
pub const DEFAULT_STREAM_MAX_LEN: u32 = redis::DEFAULT_STREAM_MAX_LEN;
/// How long a channel's stream lives after its last broadcast, unless the
/// channel says otherwise, in ms.
#[napi]
pub const DEFAULT_STREAM_TTL_MS: u32 = redis::DEFAULT_STREAM_TTL_MS as u32;
/// How long a resuming client waits for the stream reader to start before
/// its stream is ended (it comes back later), in ms.
#[napi]
pub const RESUME_WAIT_MS: u32 = redis::RESUME_WAIT.as_millis() as u32;
