//! native-sse: Server-Sent Events for Node.js with the byte path in Rust.
//!
//! `frame`, `buffer`, `hub` and `stop` are plain Rust and know nothing of
//! JavaScript; `endpoint` is the napi binding over them.

pub mod buffer;
pub mod frame;
pub mod hub;
pub mod stop;

// Under `cargo test` napi-derive registers nothing, so the exports look unused.
#[cfg_attr(test, allow(dead_code))]
mod endpoint;

#[cfg(test)]
mod whatwg;
