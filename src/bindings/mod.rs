//! The napi bindings: the only code that touches Node-API. Each module
//! converts values and calls the core or the I/O, nothing more.
//!
//! - [`state`]: everything the addon keeps per JavaScript thread (and the
//!   one thing it keeps per process), in one place.
//! - [`defaults`]: every `#[napi]` constant, each read from the layer that
//!   owns the number.
//! - [`error`]: the one conversion of the core's errors into JavaScript
//!   errors, and the export of the registry of codes.
//! - [`callback`]: the weak thread-safe function every callback into
//!   JavaScript is made of, and the runtime tasks are spawned on.
//! - [`stream`]: event streams (`EventEndpoint`), and the flush.
//! - [`fast`]: `sendAgain`, the hottest call, without napi-rs's wrapper.
//! - [`direct`]: handing a stream's socket to Rust and back.
//! - [`keep_alive`]: the keep-alive timers.
//! - [`stop`]: stop tokens.
//! - [`channel`]: `NativeChannel`, the core of `Channel`.
//! - [`redis`]: `RedisLink` and `StreamPage`, the link to a Redis Stream.
//! - [`diagnostics`]: the figures of `diagnostics()`, in one object.

pub mod callback;
pub mod channel;
pub mod defaults;
pub mod diagnostics;
pub mod direct;
pub mod error;
pub mod fast;
pub mod keep_alive;
pub mod redis;
pub mod state;
pub mod stop;
pub mod stream;
