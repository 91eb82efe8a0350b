//! The keep-alive timers: one per owner (copy of the JavaScript layer) on a
//! thread, each a tokio task that calls JavaScript back every period through
//! a weak thread-safe function, which never keeps Node alive. JavaScript
//! starts one with the first stream that wants keep-alive and stops it with
//! the last, so nothing outlives the endpoints.

use std::time::{Duration, Instant};

use napi::bindgen_prelude::Function;
use napi_derive::napi;

use super::callback::{call, spawn, weak};
use super::state::{with_hub, with_keep_alive_timers};

/// Queues a keep-alive comment on every idle stream of `owner`; returns how
/// many.
#[napi(catch_unwind)]
pub fn queue_keep_alives(owner: u32) -> u32 {
    with_hub(|hub| hub.queue_keep_alives(owner, Instant::now()) as u32)
}

/// Starts (or restarts with a new period) `owner`'s keep-alive timer, which
/// calls `on_tick` every `period_ms`.
#[napi(catch_unwind)]
pub fn start_keep_alive_timer(
    owner: u32,
    on_tick: Function<(), ()>,
    period_ms: u32,
) -> napi::Result<()> {
    let on_tick = weak(&on_tick)?;
    let period = Duration::from_millis(period_ms.max(1).into());
    let task = spawn(Box::pin(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if !call(&on_tick, ()) {
                break;
            }
        }
    }));
    if let Some(previous) = with_keep_alive_timers(|timers| timers.insert(owner, task)) {
        previous.abort();
    }
    Ok(())
}

/// Stops `owner`'s keep-alive timer; its thread-safe function goes with it.
#[napi(catch_unwind)]
pub fn stop_keep_alive_timer(owner: u32) {
    if let Some(timer) = with_keep_alive_timers(|timers| timers.remove(&owner)) {
        timer.abort();
    }
}
