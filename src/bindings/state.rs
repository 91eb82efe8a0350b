//! What the addon keeps between calls, all of it.
//!
//! Per JavaScript thread (the main thread, and each worker on its own):
//! every call comes from the thread that owns the streams, so this state is
//! thread-local and needs no lock. Each piece has its own cell, so that
//! one may be used while another is borrowed (a flush writes direct sockets
//! while it holds the hub), and no cell is borrowed while JavaScript runs.
//!
//! | state | what it is | why here |
//! |---|---|---|
//! | [`with_hub`] | the thread's streams ([`Hub`]) | every stream call addresses a slot of it |
//! | [`with_last_frame`] | the frame the last `send` encoded ([`LastFrame`]) | a fan-out loop encodes an event once |
//! | [`new_owner`] | the last owner number given out | each copy of the JavaScript layer flushes its own streams |
//! | [`with_direct`] | the sockets Rust writes to ([`Direct`]) | their descriptors live as long as their streams |
//! | [`with_after_wakeups`] | drains and failures found by wakeups ([`Written`]) | reported by the next flush, with the rest |
//! | [`with_keep_alive_timers`] | each owner's keep-alive task | stopped with the owner's last stream |
//! | [`add_history_bytes`] | bytes the channels' histories hold | `diagnostics().historyBytes` |
//!
//! Per process, one thing: the stop-token keys ([`stop_keys`]), behind a
//! mutex, since a client told to stop by one thread may reconnect to any
//! other, and the key shared through Redis arrives on a tokio thread.
//!
//! The JavaScript layer keeps the rest, per copy of `lib/` (a module
//! registry reset loads a second copy on the same thread, with an owner of
//! its own): `lib/outbox.js` (its owner, the sinks by slot, whether a flush
//! is scheduled, the keep-alive periods in use), `lib/endpoint.js` (the open
//! endpoints, for `closeAll()`; the last frame it sent, to re-send it by
//! [`with_last_frame`]), `lib/internal.js` (the sequence that orders ids
//! across endpoints and channels) and `lib/diagnostics/` (counters, and the
//! entries already warned of).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use tokio::task::AbortHandle;

use super::callback::spawn_writing;
use super::defaults::DEFAULT_MEMORY_BUDGET;
use crate::core::hub::{Hub, Owner};
use crate::core::last_frame::LastFrame;
use crate::core::stop::StopKeys;
use crate::io::direct::Direct;
use crate::io::Written;

thread_local! {
    static HUB: RefCell<Hub> = RefCell::new({
        let mut hub = Hub::default();
        hub.set_budget(DEFAULT_MEMORY_BUDGET as usize);
        hub
    });
    static LAST_FRAME: RefCell<LastFrame> = RefCell::new(LastFrame::default());
    static OWNERS: Cell<Owner> = const { Cell::new(0) };
    static DIRECT: RefCell<Direct> = RefCell::new(Direct::new(spawn_writing));
    static AFTER_WAKEUPS: RefCell<Written> = RefCell::new(Written::default());
    static KEEP_ALIVE_TIMERS: RefCell<HashMap<Owner, AbortHandle>> = RefCell::new(HashMap::new());
    static HISTORY_HELD: Cell<usize> = const { Cell::new(0) };
}

static STOP_KEYS: LazyLock<Mutex<StopKeys>> = LazyLock::new(|| Mutex::new(StopKeys::default()));

pub fn with_hub<T>(f: impl FnOnce(&mut Hub) -> T) -> T {
    HUB.with(|hub| f(&mut hub.borrow_mut()))
}

pub fn with_last_frame<T>(f: impl FnOnce(&mut LastFrame) -> T) -> T {
    LAST_FRAME.with(|last| f(&mut last.borrow_mut()))
}

/// A new owner: one per copy of the JavaScript layer on this thread.
pub fn new_owner() -> Owner {
    OWNERS.with(|owners| {
        let next = owners.get() + 1;
        owners.set(next);
        next
    })
}

pub fn with_direct<T>(f: impl FnOnce(&mut Direct) -> T) -> T {
    DIRECT.with(|direct| f(&mut direct.borrow_mut()))
}

pub fn with_after_wakeups<T>(f: impl FnOnce(&mut Written) -> T) -> T {
    AFTER_WAKEUPS.with(|after| f(&mut after.borrow_mut()))
}

pub fn with_keep_alive_timers<T>(f: impl FnOnce(&mut HashMap<Owner, AbortHandle>) -> T) -> T {
    KEEP_ALIVE_TIMERS.with(|timers| f(&mut timers.borrow_mut()))
}

/// Notes that the histories of this thread's channels grew by `added`
/// bytes and shrank by `removed`.
pub fn add_history_bytes(added: usize, removed: usize) {
    HISTORY_HELD.with(|held| held.set((held.get() + added).saturating_sub(removed)));
}

pub fn history_bytes() -> usize {
    HISTORY_HELD.with(Cell::get)
}

/// The process's stop-token keys. A panic while they were held leaves them
/// usable: they are only ever replaced whole.
pub fn stop_keys() -> MutexGuard<'static, StopKeys> {
    STOP_KEYS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds the key shared through Redis (the I/O's `on_shared_key`). It runs
/// on the publisher's task, which a panic would stop without a word: the
/// first touch of the keys makes this process's own key, and should the
/// random source fail there, the shared key is not taken and the publisher
/// goes on (later calls from JavaScript then fail with `ERR_SSE_INTERNAL`).
pub fn add_shared_stop_key(key: &[u8]) {
    let _ = std::panic::catch_unwind(|| stop_keys().add_shared(key));
}
