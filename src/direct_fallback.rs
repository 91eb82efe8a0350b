//! Where direct socket writes are not supported (not a Unix): every stream
//! stays on the JavaScript path. Same interface as `direct.rs`.

use std::time::Instant;

use napi::bindgen_prelude::Function;

use crate::hub::{Hub, Owner, Slot};

#[derive(Default)]
pub struct Written {
    pub drained: Vec<Slot>,
    pub failed: Vec<Slot>,
    pub stalled: Vec<Slot>,
}

pub fn write_all(_: &mut Hub, _: &[Slot], _: Instant) -> Written {
    Written::default()
}

pub fn set_wakeup(_: Owner, _: Function<u32, ()>) -> napi::Result<()> {
    Ok(())
}

pub fn attach(_: &mut Hub, _: Slot, _: i32, _: std::time::Duration) -> bool {
    false
}

pub fn resume(_: &mut Hub, _: Slot, _: &mut Written) -> bool {
    false
}

pub fn detach(_: Slot) -> Vec<u8> {
    Vec::new()
}

pub fn release(_: Slot) {}

pub fn count() -> usize {
    0
}
