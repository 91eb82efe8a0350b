//! The binding of direct socket writes ([`crate::io::direct`]): a stream's
//! socket handed to Rust, written to by every flush, and handed back.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Function};
use napi_derive::napi;

use super::callback::{call, weak};
use super::error::{internal, Result};
use super::state::{with_after_wakeups, with_direct, with_hub};
use crate::core::hub::Framing;
use crate::io::Adoption;

/// Takes over writing a stream's bytes to its socket: `fd` is the socket's
/// descriptor, whose headers have gone out and of which Node holds no
/// unwritten byte. Returns false where that cannot be done (then nothing
/// changed).
#[napi(catch_unwind)]
pub fn attach_socket(slot: u32, fd: i32, stall_timeout_ms: u32) -> bool {
    let stall = Duration::from_millis(stall_timeout_ms.into());
    with_hub(|hub| with_direct(|direct| direct.attach(hub, slot, fd, stall)))
}

/// Gives a stream's socket back to Node (the stream is ending): returns the
/// bytes that were framed for it and not yet written, to be written to the
/// socket as they are, first; `null` if none.
#[napi(catch_unwind)]
pub fn detach_socket(slot: u32) -> Option<Buffer> {
    let pending = with_direct(|direct| direct.detach(slot));
    with_hub(|hub| {
        hub.set_held(slot, 0);
        hub.set_framing(slot, Framing::Plain);
    });
    (!pending.is_empty()).then(|| Buffer::from(pending))
}

/// Makes the last close of the socket whose open descriptor is `fd` reset
/// the connection, discarding what is still queued for the client (see
/// [`crate::io::direct::reset_on_close`]). Returns whether it was set.
#[napi(catch_unwind)]
pub fn reset_on_close(fd: i32) -> bool {
    crate::io::direct::reset_on_close(fd)
}

/// Sets the function that `owner`'s direct sockets call (with the slot)
/// when they can be written again.
#[napi(catch_unwind)]
pub fn set_direct_wakeup(owner: u32, on_writable: Function<u32, ()>) -> Result<()> {
    let on_writable = weak(&on_writable).map_err(internal)?;
    with_direct(|direct| {
        direct.set_wakeup(
            owner,
            Arc::new(move |slot| {
                call(&on_writable, slot);
            }),
        )
    });
    Ok(())
}

/// What an adopted connection tells its owner: the client left (`gone`),
/// or the connection is closed (then never again of that `id`), `clean`
/// if its stream ended it with everything written. `slot`: the stream it
/// was adopted for (which JavaScript finds it through while that stream
/// lives).
#[napi(object)]
pub struct AdoptionEvent {
    pub id: u32,
    pub slot: u32,
    pub gone: bool,
    pub clean: bool,
}

/// Sets the function that `owner`'s adopted connections call with their
/// [`AdoptionEvent`]s.
#[napi(catch_unwind)]
pub fn set_adoption_events(owner: u32, on_event: Function<AdoptionEvent, ()>) -> Result<()> {
    let on_event = weak(&on_event).map_err(internal)?;
    with_direct(|direct| {
        direct.set_adoption_events(
            owner,
            Arc::new(move |event| {
                let event = match event {
                    Adoption::Gone { id, slot } => AdoptionEvent {
                        id,
                        slot,
                        gone: true,
                        clean: false,
                    },
                    Adoption::Finished { id, slot, clean } => AdoptionEvent {
                        id,
                        slot,
                        gone: false,
                        clean,
                    },
                };
                call(&on_event, event);
            }),
        )
    });
    Ok(())
}

/// Takes over a stream's connection, which Rust writes to already, for
/// Node to let go of (see [`crate::io::adopted`]): returns its adoption id,
/// or -1 where it cannot be done (nothing changed).
#[napi(catch_unwind)]
pub fn adopt_socket(slot: u32) -> i64 {
    with_direct(|direct| direct.adopt(slot)).map_or(-1, i64::from)
}

/// Ends an adopted stream's connection cleanly within `timeout_ms` (or
/// resets it): what is queued, then the response's last chunk. Returns
/// false if the stream's connection is not adopted.
#[napi(catch_unwind)]
pub fn end_adopted(slot: u32, timeout_ms: u32) -> bool {
    let timeout = Duration::from_millis(timeout_ms.into());
    with_hub(|hub| with_direct(|direct| direct.end_adopted(hub, slot, timeout)))
}

/// Lets go of a connection that is finishing after its stream ended (see
/// [`end_adopted`]): reset now if it is still open (`closeAll()`'s
/// timeout), forgotten once it has said it is closed.
#[napi(catch_unwind)]
pub fn release_adopted(id: u32) {
    with_direct(|direct| direct.release_adopted(id));
}

/// After a wakeup: writes what a direct socket had pending. Returns whether
/// the stream takes bytes again; what it drained or failed is reported by
/// the next flush.
#[napi(catch_unwind)]
pub fn resume_direct(slot: u32) -> bool {
    with_hub(|hub| {
        with_after_wakeups(|after| with_direct(|direct| direct.resume(hub, slot, after)))
    })
}
