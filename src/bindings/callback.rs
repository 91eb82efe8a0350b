//! Callbacks into JavaScript, and tasks on the runtime.
//!
//! Every callback from a tokio task into JavaScript is a *weak* thread-safe
//! function: it never keeps Node alive by itself. Where JavaScript must
//! stay alive for a callback (a broadcast's outcome, a channel's `ready`),
//! the JavaScript layer holds a timer until it comes.

use napi::bindgen_prelude::{Function, JsValuesTupleIntoVec};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use std::sync::LazyLock;

use crate::io::Task;

/// A weak thread-safe function taking `T`.
pub type Weak<T> = ThreadsafeFunction<T, (), T, Status, false, true>;

/// Makes `f` callable from any thread, weakly.
pub fn weak<T: 'static + JsValuesTupleIntoVec>(f: &Function<'_, T, ()>) -> napi::Result<Weak<T>> {
    f.build_threadsafe_function::<T>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()
}

/// Queues a call of `f` with `value` without blocking; false once
/// JavaScript is gone (the environment is closing).
pub fn call<T: 'static + JsValuesTupleIntoVec>(f: &Weak<T>, value: T) -> bool {
    f.call(value, ThreadsafeFunctionCallMode::NonBlocking) != Status::Closing
}

/// Starts a task on Node-API's tokio runtime: the [`crate::io::Spawn`] the
/// Redis link and the keep-alive timers are given.
pub fn spawn(task: Task) -> tokio::task::AbortHandle {
    napi::bindgen_prelude::spawn(task).abort_handle()
}

/// The runtime that writes to sockets: the writer shards and the adopted
/// connections' tasks, on threads of their own. Those threads lower their
/// priority (see [`crate::io::writers`]); on Node-API's runtime they would
/// lower it for everything else it runs too, the Redis link first: on a
/// machine whose every core was busy, a broadcast's outcome then took 9 s
/// instead of a few milliseconds, and resumes from Redis stalled. `None` if
/// its threads could not be started (the writers then share Node-API's).
static WRITING: LazyLock<Option<tokio::runtime::Runtime>> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("native-sse-write")
        .enable_all()
        .build()
        .ok()
});

/// Starts a task that writes to sockets (see [`WRITING`]): the
/// [`crate::io::Spawn`] the direct and adopted paths are given.
pub fn spawn_writing(task: Task) -> tokio::task::AbortHandle {
    match &*WRITING {
        Some(runtime) => runtime.spawn(task).abort_handle(),
        None => spawn(task),
    }
}
