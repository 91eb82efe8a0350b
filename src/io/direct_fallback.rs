//! Where direct socket writes are not supported (not a Unix): every stream
//! stays on the JavaScript path. The same interface as `direct.rs`.

use std::time::{Duration, Instant};

use crate::core::hub::{Hub, Owner, Slot};
use crate::io::{AdoptionEvents, Spawn, Wakeup, Written};

/// Not supported here: the connection ends as Node ends it.
pub fn reset_on_close(_: i32) -> bool {
    false
}

pub struct Direct;

impl Direct {
    pub fn new(_: Spawn) -> Self {
        Direct
    }

    pub fn write_all(&mut self, _: &mut Hub, _: &[Slot], _: Instant) -> Written {
        Written::default()
    }

    /// No adopted connection writes elsewhere: nothing to report.
    pub fn take_reports(&mut self, _: &mut Hub, _: Instant, _: &mut Written) {}

    pub fn set_wakeup(&mut self, _: Owner, _: Wakeup) {}

    /// Never takes a socket: the stream stays on the JavaScript path.
    pub fn attach(&mut self, _: &mut Hub, _: Slot, _: i32, _: Duration) -> bool {
        false
    }

    pub fn resume(&mut self, _: &mut Hub, _: Slot, _: &mut Written) -> bool {
        false
    }

    pub fn detach(&mut self, _: Slot) -> Vec<u8> {
        Vec::new()
    }

    pub fn release(&mut self, _: Slot) {}

    pub fn count(&self) -> usize {
        0
    }

    pub fn set_adoption_events(&mut self, _: Owner, _: AdoptionEvents) {}

    /// Never adopts: no socket is taken.
    pub fn adopt(&mut self, _: Slot) -> Option<u32> {
        None
    }

    pub fn end_adopted(&mut self, _: &mut Hub, _: Slot, _: Duration) -> bool {
        false
    }

    pub fn adopted_count(&self) -> usize {
        0
    }

    pub fn in_flight(&self) -> usize {
        0
    }

    pub fn let_writers_catch_up(&mut self, _: &Hub) {}

    pub fn waited_for_writers(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    pub fn release_adopted(&mut self, _: u32) {}

    pub fn held_now(&mut self, _: Slot) -> Option<usize> {
        None
    }
}
