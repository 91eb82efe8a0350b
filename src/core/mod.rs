//! The pure core: what an event stream is, byte for byte, and how the
//! streams of a thread share memory and time. Nothing here knows of
//! JavaScript, sockets or Redis connections (`npm run lint` fails if this
//! folder names the Node-API crates or the async runtime); everything here
//! is covered by `cargo test`.
//!
//! - [`frame`]: an event, validated and encoded into bytes.
//! - [`buffer`]: one client's queue of encoded bytes, with its cap.
//! - [`hub`]: the open streams of a thread, their flushes and the memory
//!   budget.
//! - [`last_frame`]: the last frame encoded, so that a fan-out loop encodes
//!   it once.
//! - [`channel`]: broadcast to many streams, and the history resuming
//!   clients are replayed from.
//! - [`stream_entry`]: entries of a Redis Stream checked and encoded as
//!   events (untrusted input).
//! - [`topics`]: the composite `Last-Event-ID` of a client that follows
//!   several Redis streams on one connection.
//! - [`stop`]: the signed tokens of `close(true)`.
//! - [`codes`]: the one registry of error codes, and close reasons.
//! - [`hex`] and [`backoff`]: small helpers the layers above share.

pub mod backoff;
pub mod buffer;
pub mod channel;
pub mod codes;
pub mod frame;
pub mod hex;
pub mod hub;
pub mod last_frame;
pub mod stop;
pub mod stream_entry;
pub mod topics;
