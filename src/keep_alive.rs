//! The keep-alive timers: one per owner (copy of the JavaScript layer) on a
//! thread, each a tokio task that calls JavaScript back every period through
//! a weak thread-safe function, which never keeps Node alive. JavaScript
//! starts one with the first stream that wants keep-alive and stops it with
//! the last, so nothing outlives the endpoints.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::Status;
use napi_derive::napi;

use crate::hub::Owner;
use crate::stream_binding::with_hub;

/// Idle time after which a keep-alive comment is sent, unless an endpoint
/// says otherwise (ms).
#[napi]
pub const DEFAULT_KEEP_ALIVE_MS: u32 = 15_000;
/// The default under Bun, whose `Bun.serve` drops a request idle for 10 s
/// unless told otherwise, checked on a 4 s grain: a request is dropped
/// after 8.5 to 12 s of silence. A comment goes out at most 1.2 periods
/// after the last byte (lib/outbox.js), 6 s at this period (ms).
#[napi]
pub const BUN_KEEP_ALIVE_MS: u32 = 5_000;

thread_local! {
    static TIMERS: RefCell<HashMap<Owner, tokio::task::AbortHandle>> = RefCell::new(HashMap::new());
}

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
    let tsfn = on_tick
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    let period = Duration::from_millis(period_ms.max(1).into());
    let task = napi::bindgen_prelude::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Closing {
                break;
            }
        }
    });
    let previous = TIMERS.with(|timers| timers.borrow_mut().insert(owner, task.abort_handle()));
    if let Some(previous) = previous {
        previous.abort();
    }
    Ok(())
}

/// Stops `owner`'s keep-alive timer; its thread-safe function goes with it.
#[napi(catch_unwind)]
pub fn stop_keep_alive_timer(owner: u32) {
    if let Some(timer) = TIMERS.with(|timers| timers.borrow_mut().remove(&owner)) {
        timer.abort();
    }
}

/// Whether a keep-alive timer runs on this thread; for tests of what
/// outlives endpoints.
#[napi(catch_unwind)]
pub fn keep_alive_timer_running() -> bool {
    TIMERS.with(|timers| timers.borrow().values().any(|t| !t.is_finished()))
}
