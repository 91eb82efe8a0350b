//! The last frame that `send`/`sendEvent` encoded on this thread, so that
//! looping the same event over many endpoints encodes it once.
//!
//! The frame is copied into the stream it was sent to and kept in a buffer
//! that the next frame reuses; only if it is sent again (to another
//! endpoint) is it frozen into shared bytes, which every further endpoint
//! then queues without a copy.
//!
//! JavaScript decides that a send is "the same event again" by comparing
//! the strings it passed last. Two copies of the JavaScript layer on one
//! thread each compare with their own last strings, so the cache also
//! remembers which owner encoded it, and refuses a repeat asked for by
//! another owner: that caller then sends the event in full.

use bytes::{Bytes, BytesMut};

use crate::core::frame::Frame;
use crate::core::hub::Owner;

#[derive(Default)]
pub struct LastFrame {
    /// Who encoded it; `None` before the first frame.
    owner: Option<Owner>,
    own: BytesMut,
    shared: Option<Bytes>,
}

impl LastFrame {
    /// Encodes `frame` as `owner`'s last frame; returns its bytes.
    pub fn encode(&mut self, owner: Owner, frame: &Frame) -> &[u8] {
        self.owner = Some(owner);
        self.shared = None;
        self.own.clear();
        frame.encode_into(&mut self.own);
        &self.own
    }

    /// The last frame as shared bytes, if `owner` encoded it.
    pub fn share(&mut self, owner: Owner) -> Option<&Bytes> {
        if self.owner != Some(owner) {
            return None;
        }
        let own = &mut self.own;
        Some(self.shared.get_or_insert_with(|| own.split().freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_the_frame_its_owner_encoded_last() {
        let mut last = LastFrame::default();
        assert!(last.share(1).is_none());
        last.encode(1, &Frame::message("one"));
        assert_eq!(&last.share(1).unwrap()[..], b"data: one\n\n");
        assert_eq!(&last.share(1).unwrap()[..], b"data: one\n\n");
        // Another copy of the JavaScript layer encoded since: owner 1's
        // idea of "the last frame" is stale, and the repeat is refused.
        last.encode(2, &Frame::message("two"));
        assert!(last.share(1).is_none());
        assert_eq!(&last.share(2).unwrap()[..], b"data: two\n\n");
    }
}
