//! The I/O: what owns descriptors and connections. Plain Rust and tokio;
//! nothing here knows of JavaScript (`npm run lint` fails if this folder
//! names the Node-API crates). What it reports goes through plain Rust callbacks, and
//! the tasks it needs are started through a [`Spawn`] handed in, both
//! given by the bindings, which alone touch Node-API.
//!
//! - The direct and adopted paths (Unix), a chain of files each of which
//!   uses only those before it (`npm run lint` checks it):
//!   - `sys`: the system calls, and every `unsafe` block they need;
//!   - `conn`: an adopted connection as its stream, its writers and the
//!     watcher share it (its unwritten bytes, the watcher's inbox, its
//!     reports);
//!   - `writers`: the shards whose tasks write adopted connections, so
//!     that a flush hands each shard its blocks;
//!   - `adopted`: the stream's handle on an adopted connection, and the
//!     watcher: one thread's readiness loop that watches and ends them all;
//!   - [`direct`]: the thread's coordinator: writing streams' bytes
//!     straight to their sockets, and handing adopted ones to the writers
//!     (elsewhere a stand-in that takes no socket).
//! - [`redis`]: a channel's link to a Redis Stream: the publisher, the
//!   reader, pages for resuming clients, and what their replies mean.

use std::future::Future;
use std::pin::Pin;

use crate::core::hub::Slot;

// The direct and adopted paths, a chain in which each file uses only
// those before it: sys (system calls, every `unsafe`) → conn (a
// connection as its stream, writers and task share it) → writers →
// adopted (the stream's handle and the watcher) → direct (the
// thread's coordinator).
#[cfg(unix)]
pub mod adopted;
#[cfg(unix)]
pub mod conn;
#[cfg(unix)]
pub mod direct;
#[cfg(not(unix))]
#[path = "direct_fallback.rs"]
pub mod direct;
pub mod redis;
#[cfg(unix)]
mod sys;
#[cfg(unix)]
pub mod writers;
mod written;

pub use written::Written;

/// A task of the I/O: it runs on the addon's tokio runtime.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a direct socket's waiting task calls, with the stream's slot, once
/// the socket is writable again or its stall deadline came: the bindings
/// make it wake the owner's JavaScript. It must not block.
pub type Wakeup = std::sync::Arc<dyn Fn(crate::core::hub::Slot) + Send + Sync>;

/// What an adopted connection (src/io/adopted.rs) tells its owner's
/// JavaScript, by its adoption id, and the slot of the stream it was
/// adopted for (through which JavaScript finds it while that stream lives:
/// the slot alone may be another stream's by then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// The client left (the end of its side, or an error): the stream is
    /// to end. Said once.
    Gone { id: u32, slot: Slot },
    /// The connection is closed and its descriptor released; `clean`: it
    /// was ended by its stream with everything written, the last chunk
    /// included (its response finished). Said once, last.
    Finished { id: u32, slot: Slot, clean: bool },
}

/// What the owner is told of its adopted connections; must not block.
pub type AdoptionEvents = std::sync::Arc<dyn Fn(Adoption) + Send + Sync>;

/// Starts a task on the runtime the bindings run (Node-API's tokio
/// runtime) and returns the handle that stops it.
pub type Spawn = fn(Task) -> tokio::task::AbortHandle;
