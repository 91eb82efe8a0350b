//! native-sse: Server-Sent Events for Node.js with the byte path in Rust.
//!
//! The crate is in three layers, each a folder, and each layer uses only
//! the ones above it in this list:
//!
//! - [`core`]: pure Rust. Frames (encoding and validation), one client's
//!   buffer, the hub of a thread's streams and its memory budget, channels
//!   and their history, Redis stream entries as events, stop tokens, the
//!   last frame encoded, and the registry of error codes. No napi, no tokio
//!   I/O.
//! - [`io`]: what owns descriptors and connections. The direct socket path
//!   (Rust writing to a stream's socket) and the Redis link (publisher,
//!   reader, pages, replies). Plain Rust callbacks out, tasks spawned
//!   through a function handed in: no napi.
//! - [`bindings`]: the only code that touches Node-API. One module owns the
//!   thread's state; one converts errors; one holds every exported
//!   constant; one per exported class or group of functions.
//!
//! Test-only code (a reference WHATWG parser, a model-based test) lives in
//! `testing`, compiled under `cargo test` only. `npm run lint` fails when
//! `core` or `io` names napi (scripts/check-layers.mjs).

// The crate's documentation is for its maintainers, built with
// `--document-private-items` (npm run lint): links to private items are
// the point.
#![allow(rustdoc::private_intra_doc_links)]

mod core;
mod io;

// Under `cargo test` napi-derive registers nothing, so the exports look
// unused: one allowance for the whole layer.
#[cfg_attr(test, allow(dead_code))]
mod bindings;

#[cfg(test)]
mod testing;
