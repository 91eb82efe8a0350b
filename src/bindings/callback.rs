//! Callbacks into JavaScript, and tasks on the runtime.
//!
//! Every callback from a tokio task into JavaScript is a *weak* thread-safe
//! function: it never keeps Node alive by itself. Where JavaScript must
//! stay alive for a callback (a broadcast's outcome, a channel's `ready`),
//! the JavaScript layer holds a timer until it comes.

use napi::bindgen_prelude::{Function, JsValuesTupleIntoVec};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

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
/// I/O is given.
pub fn spawn(task: Task) -> tokio::task::AbortHandle {
    napi::bindgen_prelude::spawn(task).abort_handle()
}
