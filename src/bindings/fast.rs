//! The hottest call of the seam, registered without napi-rs's wrapper.
//!
//! `sendAgain(slot)` runs once per endpoint when one event is looped over
//! many (`for (const ep of endpoints) ep.send(text)`): a thousand times a
//! turn for a ticker to a thousand clients. For a function with arguments,
//! the wrapper `#[napi]` generates sets up a borrow scope on every call (an
//! `Arc<Mutex<_>>` allocated and freed, a thread-local stack pushed and
//! popped) and a barrier, whatever the arguments' types: measured here, a
//! call of one `u32` that finds nothing cost about 150 ns, an empty N-API
//! call 30–50. This one reads its one argument and makes its one number
//! with three N-API calls, and never throws: where the full `send` would
//! throw (the slot is not open, the argument is not a number), or if the
//! core panicked, it answers `SEND_STALE`, and the caller sends in full,
//! through the wrapper, which raises the error.

use std::ptr;

use napi::bindgen_prelude::{JsObjectValue, Object, Result};
use napi::sys;
use napi_derive::napi;

use super::defaults::SEND_STALE;
use super::stream::send_again_queued;

/// `sendAgain(slot)`: see [`send_again_queued`].
unsafe extern "C" fn send_again(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let mut argc = 1;
    let mut argv = [ptr::null_mut(); 1];
    // No stream has slot u32::MAX (slots are indices of open streams): a
    // missing or wrong argument finds none.
    let mut slot = u32::MAX;
    // SAFETY: `env` and `info` are this call's, as Node-API hands them to
    // a callback; `argv` has room for `argc` values, and the value read is
    // one of them (null if the call had none, which the read refuses).
    unsafe {
        let read = sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        if read == sys::Status::napi_ok
            && argc >= 1
            && sys::napi_get_value_uint32(env, argv[0], &mut slot) != sys::Status::napi_ok
        {
            slot = u32::MAX;
        }
    }
    let queued = std::panic::catch_unwind(|| send_again_queued(slot)).unwrap_or(SEND_STALE.into());
    let mut value = ptr::null_mut();
    // SAFETY: as above; on failure `value` stays null, which Node-API
    // takes as `undefined` (the caller sends in full).
    unsafe { sys::napi_create_int64(env, queued, &mut value) };
    value
}

/// Adds the functions of this file to the addon's exports.
#[napi(module_exports)]
pub fn fast_exports(mut exports: Object) -> Result<()> {
    exports.create_c_named_method(c"sendAgain", send_again)
}
