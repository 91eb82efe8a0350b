//! What the addon holds and has done on this thread, in one object: the
//! Rust half of `diagnostics()` (lib/diagnostics/index.js), read in one call.

use napi_derive::napi;

use super::state::{self, with_direct, with_hub, with_keep_alive_timers};

/// This thread's figures. The names are those of `diagnostics()`.
#[napi(object)]
pub struct Figures {
    /// Open streams, of every owner.
    pub open_streams: u32,
    /// Whether a keep-alive timer runs (a tokio task and its thread-safe
    /// function).
    pub keep_alive_timer: bool,
    /// Sockets Rust writes to itself.
    pub direct_sockets: u32,
    /// Connections Rust has taken over from Node, streaming or finishing.
    pub adopted_connections: u32,
    /// Bytes held for all streams now: queued, and held by their responses.
    pub held_bytes: f64,
    /// The memory budget, in bytes.
    pub memory_budget: f64,
    /// Events queued for clients since the thread began (one per client).
    pub events_queued: f64,
    /// Bytes handed to transports or written to sockets.
    pub bytes_written: f64,
    /// Streams cut off by the memory budget.
    pub budget_cut_offs: f64,
    /// Milliseconds flushes waited for the threads that write adopted
    /// connections to catch up.
    pub writer_wait_ms: f64,
    /// Bytes the histories of this thread's channels hold.
    pub history_bytes: f64,
}

#[napi(catch_unwind)]
pub fn figures() -> Figures {
    let (open_streams, held_bytes, memory_budget, counters) =
        with_hub(|hub| (hub.len(), hub.held_total(), hub.budget(), hub.counters));
    Figures {
        open_streams: open_streams as u32,
        keep_alive_timer: with_keep_alive_timers(|timers| {
            timers.values().any(|timer| !timer.is_finished())
        }),
        direct_sockets: with_direct(|direct| direct.count()) as u32,
        adopted_connections: with_direct(|direct| direct.adopted_count()) as u32,
        held_bytes: held_bytes as f64,
        memory_budget: memory_budget as f64,
        events_queued: counters.events as f64,
        bytes_written: counters.bytes_written as f64,
        budget_cut_offs: counters.budget_cut_offs as f64,
        writer_wait_ms: with_direct(|direct| direct.waited_for_writers()).as_secs_f64() * 1000.0,
        history_bytes: state::history_bytes() as f64,
    }
}
