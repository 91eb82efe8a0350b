//! native-sse: Server-Sent Events for Node.js with the byte path in Rust.
//!
//! `frame`, `buffer`, `hub`, `channel`, `stop` and `stream_entry` are plain Rust and know
//! nothing of JavaScript; `endpoint` and `channel_binding` are the napi
//! bindings over them.

pub mod buffer;
pub mod channel;
pub mod frame;
pub mod hub;
pub mod stop;
pub mod stream_entry;

// Under `cargo test` napi-derive registers nothing, so the exports look unused.
#[cfg_attr(test, allow(dead_code))]
mod channel_binding;
#[cfg_attr(test, allow(dead_code))]
mod endpoint;
#[cfg_attr(test, allow(dead_code))]
mod redis_link;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod whatwg;
