//! native-sse: Server-Sent Events for Node.js with the byte path in Rust.
//!
//! The core is plain Rust and knows nothing of JavaScript: `frame`
//! (encoding and validation), `buffer` (one client's queue), `hub` (the
//! streams of a thread), `channel` (broadcast and history), `stop` (stop
//! tokens) and `stream_entry` (entries read from Redis). The bindings only
//! translate: `stream_binding`, `last_frame`, `keep_alive`, `stop_binding`,
//! `channel_binding` and `redis_link`, with `error` as the one conversion of
//! the core's errors into JavaScript errors.

mod buffer;
mod channel;
mod frame;
mod hub;
mod stop;
mod stream_entry;

#[cfg(unix)]
#[cfg_attr(test, allow(dead_code))]
mod direct;
#[cfg(not(unix))]
#[path = "direct_fallback.rs"]
mod direct;
mod error;
mod last_frame;

// Under `cargo test` napi-derive registers nothing, so the exports look unused.
#[cfg_attr(test, allow(dead_code))]
mod channel_binding;
#[cfg_attr(test, allow(dead_code))]
mod keep_alive;
#[cfg_attr(test, allow(dead_code))]
mod redis_link;
#[cfg_attr(test, allow(dead_code))]
mod stop_binding;
#[cfg_attr(test, allow(dead_code))]
mod stream_binding;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod whatwg;
