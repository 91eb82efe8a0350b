//! The open event streams of one JavaScript thread, and which of them have
//! bytes waiting.
//!
//! JavaScript pays for every call into Rust and more for every Buffer that
//! comes back, so the streams live here, addressed by a small integer, and a
//! flush hands back the waiting bytes of *all* streams at once: one Buffer
//! and one layout array per flush, however many frames and clients.

use bytes::BytesMut;

use crate::buffer::OutboundBuffer;
use crate::frame::Frame;

/// A stream's slot number; stable while the stream is open, then reused.
pub type Slot = u32;

#[derive(Debug, Default)]
struct Stream {
    buffer: OutboundBuffer,
    open: bool,
    /// Listed in `Hub::dirty`, so that a stream is listed at most once.
    dirty: bool,
}

/// What one flush produced: every waiting byte, stream after stream, and
/// where each stream's share ends.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// `[slot, start, end, slot, start, end, …]` into `bytes`.
    pub layout: Vec<u32>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.layout.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Hub {
    streams: Vec<Stream>,
    free: Vec<Slot>,
    dirty: Vec<Slot>,
}

impl Hub {
    /// Opens a stream and returns its slot.
    pub fn open(&mut self) -> Slot {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.streams.push(Stream::default());
                (self.streams.len() - 1) as Slot
            }
        };
        let stream = &mut self.streams[slot as usize];
        stream.open = true;
        slot
    }

    /// Closes a stream, dropping anything still queued, and frees its slot.
    pub fn release(&mut self, slot: Slot) {
        if let Some(stream) = self.stream_mut(slot) {
            stream.buffer.clear();
            stream.open = false;
            stream.dirty = false;
            self.free.push(slot);
        }
    }

    pub fn is_open(&self, slot: Slot) -> bool {
        self.streams.get(slot as usize).is_some_and(|s| s.open)
    }

    /// Number of open streams.
    pub fn len(&self) -> usize {
        self.streams.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a frame; returns the bytes now queued for that stream, or
    /// `None` if the slot is not open.
    pub fn push_frame(&mut self, slot: Slot, frame: &Frame) -> Option<usize> {
        let queued = self.stream_mut(slot)?.buffer.push_frame(frame);
        self.mark_dirty(slot);
        Some(queued)
    }

    /// Queues the opening of a stream; see [`OutboundBuffer::push_opening`].
    pub fn push_opening(&mut self, slot: Slot, retry: Option<u32>) -> Option<usize> {
        let queued = self.stream_mut(slot)?.buffer.push_opening(retry);
        self.mark_dirty(slot);
        Some(queued)
    }

    /// Queues a comment block; see [`OutboundBuffer::push_comment`].
    pub fn push_comment(&mut self, slot: Slot, text: &str) -> Option<usize> {
        let queued = self.stream_mut(slot)?.buffer.push_comment(text);
        self.mark_dirty(slot);
        Some(queued)
    }

    /// Bytes queued for a stream.
    pub fn buffered(&self, slot: Slot) -> usize {
        self.streams
            .get(slot as usize)
            .filter(|s| s.open)
            .map_or(0, |s| s.buffer.len())
    }

    /// Takes one stream's queued bytes now, ahead of the next flush (used
    /// when a stream is about to end).
    pub fn take(&mut self, slot: Slot) -> BytesMut {
        match self.stream_mut(slot) {
            Some(stream) => {
                stream.dirty = false;
                stream.buffer.take()
            }
            None => BytesMut::new(),
        }
    }

    /// Takes every stream's queued bytes, in one contiguous batch.
    pub fn flush(&mut self) -> Batch {
        let mut batch = Batch::default();
        let dirty = std::mem::take(&mut self.dirty);
        let total: usize = dirty
            .iter()
            .filter_map(|&slot| self.streams.get(slot as usize))
            .filter(|s| s.dirty)
            .map(|s| s.buffer.len())
            .sum();
        batch.bytes.reserve_exact(total);
        for &slot in &dirty {
            let Some(stream) = self.streams.get_mut(slot as usize) else {
                continue;
            };
            // A stream can be listed yet clean: taken early, or released
            // and reopened in the same turn.
            if !stream.dirty {
                continue;
            }
            stream.dirty = false;
            if stream.buffer.is_empty() {
                continue;
            }
            let start = batch.bytes.len() as u32;
            batch.bytes.extend_from_slice(&stream.buffer.take());
            batch
                .layout
                .extend_from_slice(&[slot, start, batch.bytes.len() as u32]);
        }
        // Keep the list's allocation for the next turn.
        self.dirty = dirty;
        self.dirty.clear();
        batch
    }

    fn stream_mut(&mut self, slot: Slot) -> Option<&mut Stream> {
        self.streams.get_mut(slot as usize).filter(|s| s.open)
    }

    fn mark_dirty(&mut self, slot: Slot) {
        let stream = &mut self.streams[slot as usize];
        if !stream.dirty {
            stream.dirty = true;
            self.dirty.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(batch: &Batch, slot: Slot) -> Vec<&[u8]> {
        batch
            .layout
            .chunks(3)
            .filter(|c| c[0] == slot)
            .map(|c| &batch.bytes[c[1] as usize..c[2] as usize])
            .collect()
    }

    #[test]
    fn one_flush_carries_every_stream_once() {
        let mut hub = Hub::default();
        let a = hub.open();
        let b = hub.open();
        hub.push_frame(a, &Frame::message("a1"));
        hub.push_frame(b, &Frame::message("b1"));
        hub.push_frame(a, &Frame::message("a2"));
        let batch = hub.flush();
        assert_eq!(batch.layout.len(), 6);
        assert_eq!(share(&batch, a), vec![&b"data: a1\n\ndata: a2\n\n"[..]]);
        assert_eq!(share(&batch, b), vec![&b"data: b1\n\n"[..]]);
        assert!(hub.flush().is_empty());
        assert_eq!(hub.buffered(a), 0);
    }

    #[test]
    fn released_slots_are_reused_without_leaking_old_bytes() {
        let mut hub = Hub::default();
        let a = hub.open();
        hub.push_frame(a, &Frame::message("old"));
        hub.release(a);
        assert!(!hub.is_open(a));
        assert_eq!(hub.push_frame(a, &Frame::message("x")), None);
        let again = hub.open();
        assert_eq!(again, a);
        hub.push_frame(again, &Frame::message("new"));
        let batch = hub.flush();
        assert_eq!(share(&batch, again), vec![&b"data: new\n\n"[..]]);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn taken_streams_are_skipped_by_the_flush() {
        let mut hub = Hub::default();
        let a = hub.open();
        hub.push_comment(a, "ok");
        assert_eq!(&hub.take(a)[..], b": ok\n\n");
        assert!(hub.flush().is_empty());
    }
}
