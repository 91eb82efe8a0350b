//! The bytes queued for one client and not yet handed to its response.
//!
//! Frames are appended as they are sent and leave together, so that many
//! frames produced in one turn of the event loop cost one `write`.

use bytes::BytesMut;

use crate::frame::{encode_comment, encode_retry, Frame};

/// One client's queue of encoded bytes.
#[derive(Debug, Default)]
pub struct OutboundBuffer {
    pending: BytesMut,
}

impl OutboundBuffer {
    /// Appends an encoded frame and returns the bytes now queued.
    pub fn push_frame(&mut self, frame: &Frame) -> usize {
        frame.encode_into(&mut self.pending);
        self.pending.len()
    }

    /// Appends a comment block: the comment lines and the blank line after
    /// them. Returns the bytes now queued.
    pub fn push_comment(&mut self, text: &str) -> usize {
        encode_comment(text, &mut self.pending);
        self.pending.extend_from_slice(b"\n");
        self.pending.len()
    }

    /// Appends what opens a stream: a comment, so that the client sees bytes
    /// (and fires `open`) before the first event, and the reconnection time
    /// if one is set.
    pub fn push_opening(&mut self, retry: Option<u32>) -> usize {
        encode_comment("ok", &mut self.pending);
        if let Some(ms) = retry {
            encode_retry(ms, &mut self.pending);
        }
        self.pending.extend_from_slice(b"\n");
        self.pending.len()
    }

    /// Appends bytes that were encoded elsewhere.
    pub fn push_encoded(&mut self, bytes: &[u8]) -> usize {
        self.pending.extend_from_slice(bytes);
        self.pending.len()
    }

    /// Bytes queued and not yet taken.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The queued bytes, in order, leaving the buffer empty.
    pub fn take(&mut self) -> BytesMut {
        self.pending.split()
    }

    /// Forgets what is queued, for a client that is gone.
    pub fn clear(&mut self) {
        self.pending = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatwg::parse;

    #[test]
    fn frames_leave_together_and_in_order() {
        let mut buffer = OutboundBuffer::default();
        buffer.push_comment("ok");
        buffer.push_frame(&Frame::message("one"));
        let n = buffer.push_frame(&Frame::message("two").event("e").unwrap());
        assert_eq!(n, buffer.len());
        let bytes = buffer.take();
        assert!(buffer.is_empty());
        assert_eq!(&bytes[..], b": ok\n\ndata: one\n\nevent: e\ndata: two\n\n");
        let events = parse(&bytes);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].kind, "e");
    }

    #[test]
    fn the_opening_sets_retry_without_an_event() {
        let mut buffer = OutboundBuffer::default();
        buffer.push_opening(Some(3000));
        let bytes = buffer.take();
        assert_eq!(&bytes[..], b": ok\nretry: 3000\n\n");
        let mut parser = crate::whatwg::Parser::default();
        parser.feed(&bytes);
        assert!(parser.events.is_empty());
        assert_eq!(parser.retry, Some(3000));
        buffer.push_opening(None);
        assert_eq!(&buffer.take()[..], b": ok\n\n");
    }

    #[test]
    fn take_after_take_is_empty() {
        let mut buffer = OutboundBuffer::default();
        buffer.push_encoded(b"data: x\n\n");
        assert_eq!(buffer.take().len(), 9);
        assert!(buffer.take().is_empty());
    }
}
