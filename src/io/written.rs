//! What writing a flush's direct streams did: the one report both the Unix
//! direct path and its stand-in give.

use crate::core::hub::Slot;

#[derive(Debug, Default)]
pub struct Written {
    /// Streams someone waited on that have now sent everything.
    pub drained: Vec<Slot>,
    /// Streams whose socket failed; JavaScript ends them.
    pub failed: Vec<Slot>,
    /// Streams whose socket took nothing for their stall timeout while
    /// bytes waited: JavaScript cuts them off as slow consumers.
    pub stalled: Vec<Slot>,
}

impl Written {
    /// Takes what `other` found.
    pub fn append(&mut self, other: &mut Written) {
        self.drained.append(&mut other.drained);
        self.failed.append(&mut other.failed);
        self.stalled.append(&mut other.stalled);
    }
}
