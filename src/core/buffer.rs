//! The bytes queued for one client and not yet handed to its response.
//!
//! Frames are appended as they are sent and leave together, so that many
//! frames produced in one turn of the event loop cost one `write`. A frame
//! encoded once for many clients (a broadcast) is queued as a shared
//! [`Bytes`], so that a thousand slow subscribers hold one copy of it, not a
//! thousand. The buffer has a hard cap: a client that cannot keep up is cut off rather
//! than allowed to grow the server's memory without bound, and a frame that
//! would cross the cap is refused whole, so the stream never ends mid-frame.

use std::sync::Arc;

use smallvec::SmallVec;

use bytes::{Bytes, BytesMut};

use crate::core::frame::{encode_comment, encode_retry, Frame};

/// The default of `highWaterMark`: past it, `send()` waits for the client.
pub const DEFAULT_HIGH_WATER_MARK: usize = 64 * 1024;
/// The default of `maxBufferedBytes`: past it, the client is dropped.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 4 * 1024 * 1024;

/// A frame did not fit under the buffer's cap; nothing of it was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client is too far behind: the frame would overflow the queue.
    Overflow,
    /// The frame alone is larger than the cap: no client could ever take it.
    TooLarge,
}

/// One client's queue of encoded bytes: shared segments, then the bytes
/// encoded for this client alone since the last of them.
///
/// # Replays
///
/// A client that resumes may be owed hundreds of frames of a channel's
/// history. Queued at once, a reconnect storm after a deploy puts every
/// client's whole backlog in memory in one turn (10,000 clients resuming
/// 500 frames of 512 bytes held 2.6 GB). So a replay is queued as a
/// [`Stage`] instead: the frames it owes (shared with the history, not
/// copied) and a place for what is queued for the client after it. The
/// hub feeds the frames in a window at a time, at the client's pace and
/// under the budget (see [`OutboundBuffer::feed`]); what waits behind a
/// replay counts against the cap and the budget like any queued byte.
#[derive(Debug)]
pub struct OutboundBuffer {
    /// Inline for the first: a broadcast to thousands of streams with
    /// nothing queued allocates nothing per stream.
    segments: SmallVec<[Bytes; 1]>,
    tail: BytesMut,
    len: usize,
    /// This client's bytes held elsewhere (taken from here, not yet written
    /// to its socket, which refused them): they count against the cap too.
    held: usize,
    /// This client's bytes on their way to its socket: handed to a writer
    /// thread that has not tried them yet. They pace its replay, and count
    /// neither against its cap (the server's own threads being late is not
    /// the client being slow) nor as its own against the budget: the
    /// writers' blocks hold a broadcast's bytes once for all the clients
    /// given it, and the hub counts those blocks as they are (see
    /// `Hub::set_in_flight`).
    in_flight: usize,
    max: usize,
    /// Replays not yet fed, oldest first; empty for nearly every client.
    stages: Stages,
    /// Bytes queued behind the replays (in their stages), not yet takeable.
    waiting: usize,
}

/// A replay being fed to a client, and what was queued for the client
/// after it began.
#[derive(Debug)]
struct Stage {
    frames: Arc<[Bytes]>,
    next: usize,
    behind: Behind,
}

/// A client's replays not yet fed, oldest first. Boxed, and none at all
/// when there are none (nearly every client): one word in every stream,
/// where a `Vec` is three.
// The box is the point (one word inline); its extra allocation is made
// only while a replay is fed.
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
struct Stages(Option<Box<Vec<Stage>>>);

impl Stages {
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn first_mut(&mut self) -> Option<&mut Stage> {
        self.0.as_mut()?.first_mut()
    }

    fn last_mut(&mut self) -> Option<&mut Stage> {
        self.0.as_mut()?.last_mut()
    }

    fn push(&mut self, stage: Stage) {
        self.0.get_or_insert_with(Box::default).push(stage);
    }

    /// Takes the oldest; there is one (see [`Stages::first_mut`]).
    fn take_first(&mut self) -> Stage {
        let stages = self.0.as_mut().expect("a stage to take");
        let stage = stages.remove(0);
        if stages.is_empty() {
            self.0 = None;
        }
        stage
    }
}

/// Bytes queued behind a replay, in order.
#[derive(Debug, Default)]
struct Behind {
    segments: Vec<Bytes>,
    tail: BytesMut,
}

impl Behind {
    fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.segments.push(self.tail.split().freeze());
        }
    }
}

impl Default for OutboundBuffer {
    fn default() -> Self {
        OutboundBuffer::with_limit(DEFAULT_MAX_BUFFERED_BYTES)
    }
}

impl OutboundBuffer {
    /// A buffer that refuses to hold more than `max` bytes.
    pub fn with_limit(max: usize) -> Self {
        OutboundBuffer {
            segments: SmallVec::new(),
            tail: BytesMut::new(),
            len: 0,
            held: 0,
            in_flight: 0,
            max,
            stages: Stages::default(),
            waiting: 0,
        }
    }

    /// Appends an encoded frame and returns the bytes now queued.
    pub fn push_frame(&mut self, frame: &Frame) -> Result<usize, Refused> {
        let tail = self.tail_mut();
        let before = tail.len();
        frame.encode_into(tail);
        let added = tail.len() - before;
        if let Err(refused) = self.check(added) {
            self.tail_mut().truncate(before);
            return Err(refused);
        }
        self.add(added);
        Ok(self.queued())
    }

    /// Where bytes encoded for this client go: behind the last replay, if
    /// one is being fed.
    fn tail_mut(&mut self) -> &mut BytesMut {
        match self.stages.last_mut() {
            Some(stage) => &mut stage.behind.tail,
            None => &mut self.tail,
        }
    }

    /// Makes what was encoded into the tail a segment of its own, so that
    /// a shared segment pushed next goes after it.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.segments.push(self.tail.split().freeze());
        }
    }

    /// Counts `added` bytes just queued where [`Self::tail_mut`] points.
    fn add(&mut self, added: usize) {
        if self.stages.is_empty() {
            self.len += added;
        } else {
            self.waiting += added;
        }
    }

    /// Appends a frame encoded once for many clients, without copying it.
    pub fn push_shared(&mut self, bytes: &Bytes) -> Result<usize, Refused> {
        self.push_shared_after(&[], bytes)
    }

    /// Queues a frame made of bytes of this client's own (copied; an `id:`
    /// line) and the shared rest of a frame encoded once for many, whole or
    /// not at all.
    pub fn push_shared_after(&mut self, own: &[u8], bytes: &Bytes) -> Result<usize, Refused> {
        self.check(own.len() + bytes.len())?;
        match self.stages.last_mut() {
            Some(stage) => {
                let behind = &mut stage.behind;
                behind.tail.extend_from_slice(own);
                behind.seal();
                behind.segments.push(bytes.clone());
            }
            None => {
                self.tail.extend_from_slice(own);
                self.seal_tail();
                self.segments.push(bytes.clone());
            }
        }
        self.add(own.len() + bytes.len());
        Ok(self.queued())
    }

    /// Appends bytes encoded elsewhere (a `send`'s frame, encoded in the
    /// last frame; a `retry:` block), copied into this client's own tail.
    pub fn push_encoded(&mut self, bytes: &[u8]) -> Result<usize, Refused> {
        self.check(bytes.len())?;
        self.tail_mut().extend_from_slice(bytes);
        self.add(bytes.len());
        Ok(self.queued())
    }

    /// Appends a comment block: the comment lines and the blank line after
    /// them. Comments are small and never refused.
    #[cfg(test)]
    pub fn push_comment(&mut self, text: &str) -> usize {
        let tail = self.tail_mut();
        let before = tail.len();
        encode_comment(text, tail);
        tail.extend_from_slice(b"\n");
        let added = tail.len() - before;
        self.add(added);
        self.queued()
    }

    /// Appends what opens a stream: a comment, so that the client sees bytes
    /// (and fires `open`) before the first event, and the reconnection time
    /// if one is set.
    pub fn push_opening(&mut self, retry: Option<u32>) -> usize {
        let tail = self.tail_mut();
        let before = tail.len();
        encode_comment("ok", tail);
        if let Some(ms) = retry {
            encode_retry(ms, tail);
        }
        tail.extend_from_slice(b"\n");
        let added = tail.len() - before;
        self.add(added);
        self.queued()
    }

    /// The cap, in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether `added` more bytes fit.
    fn check(&self, added: usize) -> Result<(), Refused> {
        if added > self.max {
            Err(Refused::TooLarge)
        } else if self.queued() + self.held + added > self.max {
            Err(Refused::Overflow)
        } else {
            Ok(())
        }
    }

    /// Bytes queued that can be taken now (not behind a replay).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Every byte queued: what can be taken, and what waits behind a
    /// replay.
    pub fn queued(&self) -> usize {
        self.len + self.waiting
    }

    /// Whether a replay is still being fed.
    pub fn replaying(&self) -> bool {
        !self.stages.is_empty()
    }

    /// Starts feeding `frames[start..]` after everything queued so far;
    /// what is queued from now on waits behind them. Nothing is queued yet:
    /// see [`OutboundBuffer::feed`].
    pub fn start_replay(&mut self, frames: Arc<[Bytes]>, start: usize) {
        if start < frames.len() {
            self.stages.push(Stage {
                frames,
                next: start,
                behind: Behind::default(),
            });
        }
    }

    /// Queues frames of the replays while what this client has queued and
    /// held stays under `window` (one frame at least, when it holds
    /// nothing) and `room` lasts, taking what it queues from `room`; once a
    /// replay is all queued, what waited behind it follows. Returns the
    /// bytes added to [`OutboundBuffer::queued`] (the replay's frames; what
    /// waited behind was counted when queued), or [`Refused`] when the
    /// next frame can never fit under the cap: it is larger than the cap,
    /// or what waits behind the replay leaves no room for it though the
    /// client has taken everything else.
    pub fn feed(&mut self, window: usize, room: &mut usize) -> Result<usize, Refused> {
        let mut added = 0;
        let counted_held = self.held;
        while let Some(stage) = self.stages.first_mut() {
            if let Some(frame) = stage.frames.get(stage.next) {
                let ahead = self.len + self.held + self.in_flight;
                if *room == 0 || (ahead > 0 && ahead >= window) {
                    break;
                }
                if frame.len() > self.max {
                    return Err(Refused::TooLarge);
                }
                if self.len + self.waiting + counted_held + frame.len() > self.max {
                    if ahead == 0 {
                        return Err(Refused::Overflow);
                    }
                    break;
                }
                let frame = frame.clone();
                stage.next += 1;
                self.seal_tail();
                self.len += frame.len();
                added += frame.len();
                *room = room.saturating_sub(frame.len());
                self.segments.push(frame);
                continue;
            }
            let mut stage = self.stages.take_first();
            stage.behind.seal();
            let behind: usize = stage.behind.segments.iter().map(Bytes::len).sum();
            self.seal_tail();
            self.segments.extend(stage.behind.segments);
            self.len += behind;
            self.waiting -= behind;
        }
        Ok(added)
    }

    /// Drops the replays not yet fed, and what waited behind them: the
    /// client is going, and resumes the rest from its `Last-Event-ID`.
    /// Returns the bytes that waited.
    pub fn drop_replays(&mut self) -> usize {
        self.stages = Stages::default();
        std::mem::take(&mut self.waiting)
    }

    /// Says how many of this client's bytes are held elsewhere, refused by
    /// its socket (`held`) and on their way to it (`in_flight`).
    pub fn set_held(&mut self, held: usize, in_flight: usize) {
        self.held = held;
        self.in_flight = in_flight;
    }

    /// Bytes held elsewhere because the client's socket refused them: they
    /// count against the cap and the budget.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes on their way to the socket, in a writer's queue; see
    /// [`OutboundBuffer::set_held`].
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Moves the queued bytes, in order, to the end of `out`, leaving the
    /// buffer empty.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) {
        out.reserve(self.len);
        for segment in self.segments.drain(..) {
            out.extend_from_slice(&segment);
        }
        out.extend_from_slice(&self.tail);
        self.tail.clear();
        self.len = 0;
    }

    /// The one shared frame that is all this buffer holds, if it is so (a
    /// broadcast's frame, queued on a stream that had nothing else).
    pub fn sole_shared(&self) -> Option<&Bytes> {
        match self.segments.as_slice() {
            [only] if self.tail.is_empty() => Some(only),
            _ => None,
        }
    }

    /// Forgets what is queued, its bytes having been taken as they are
    /// elsewhere; what is held elsewhere stays counted.
    pub fn discard_queued(&mut self) {
        self.segments.clear();
        self.tail.clear();
        self.len = 0;
    }

    /// The bytes that can be taken, in order, leaving the buffer empty.
    /// Replays not yet fed are dropped, with what waited behind them (see
    /// [`OutboundBuffer::drop_replays`]): this is for a stream that ends.
    pub fn take(&mut self) -> Vec<u8> {
        self.drop_replays();
        let mut out = Vec::with_capacity(self.len);
        self.drain_into(&mut out);
        out
    }

    /// Forgets what is queued, for a client that is gone.
    pub fn clear(&mut self) {
        self.segments = SmallVec::new();
        self.tail = BytesMut::new();
        self.len = 0;
        self.held = 0;
        self.in_flight = 0;
        self.stages = Stages::default();
        self.waiting = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::whatwg::parse;

    #[test]
    fn frames_leave_together_and_in_order() {
        let mut buffer = OutboundBuffer::default();
        buffer.push_comment("ok");
        buffer.push_frame(&Frame::message("one")).unwrap();
        let n = buffer
            .push_frame(&Frame::message("two").event("e").unwrap())
            .unwrap();
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
        let mut parser = crate::testing::whatwg::Parser::default();
        parser.feed(&bytes);
        assert!(parser.events.is_empty());
        assert_eq!(parser.retry, Some(3000));
        buffer.push_opening(None);
        assert_eq!(&buffer.take()[..], b": ok\n\n");
    }

    #[test]
    fn take_after_take_is_empty() {
        let mut buffer = OutboundBuffer::default();
        buffer.push_encoded(b"data: x\n\n").unwrap();
        assert_eq!(buffer.take().len(), 9);
        assert!(buffer.take().is_empty());
    }

    #[test]
    fn a_frame_past_the_cap_is_refused_whole() {
        let mut buffer = OutboundBuffer::with_limit(30);
        assert_eq!(buffer.push_frame(&Frame::message("0123456789")), Ok(18));
        assert_eq!(
            buffer.push_frame(&Frame::message("0123456789")),
            Err(Refused::Overflow)
        );
        assert_eq!(buffer.len(), 18, "nothing of the refused frame stays");
        assert_eq!(buffer.push_encoded(&[b'x'; 13]), Err(Refused::Overflow));
        assert_eq!(buffer.push_encoded(&[b'x'; 31]), Err(Refused::TooLarge));
        assert_eq!(buffer.push_encoded(&[b'x'; 12]), Ok(30));
        assert_eq!(parse(&buffer.take()).len(), 1);
        // Taking makes room again.
        assert!(buffer.push_frame(&Frame::message("0123456789")).is_ok());
    }

    #[test]
    fn shared_frames_keep_their_place_among_own_frames() {
        let shared = Bytes::from_static(b"data: all\n\n");
        let mut a = OutboundBuffer::default();
        let mut b = OutboundBuffer::default();
        a.push_frame(&Frame::message("a1")).unwrap();
        a.push_shared(&shared).unwrap();
        b.push_shared(&shared).unwrap();
        a.push_frame(&Frame::message("a2")).unwrap();
        assert_eq!(a.len(), 10 + 11 + 10);
        assert_eq!(a.take(), b"data: a1\n\ndata: all\n\ndata: a2\n\n");
        assert_eq!(b.take(), b"data: all\n\n");
        assert!(a.is_empty() && b.is_empty());
        let mut capped = OutboundBuffer::with_limit(15);
        capped.push_shared(&shared).unwrap();
        assert_eq!(capped.push_shared(&shared), Err(Refused::Overflow));
        assert_eq!(capped.len(), 11);
    }

    #[test]
    fn bytes_held_elsewhere_count_against_the_cap() {
        let mut buffer = OutboundBuffer::with_limit(30);
        buffer.set_held(20, 0);
        assert_eq!(buffer.push_encoded(b"0123456789ab"), Err(Refused::Overflow));
        buffer.set_held(0, 0);
        assert!(buffer.push_encoded(b"0123456789ab").is_ok());
    }

    /// Bytes on their way to the socket (a writer thread has not tried
    /// them) are the server's delay, not the client's: they never count
    /// against the cap, however many; bytes its socket refused do.
    #[test]
    fn bytes_on_their_way_never_count_against_the_cap() {
        let mut buffer = OutboundBuffer::with_limit(30);
        buffer.set_held(0, 300);
        assert!(buffer.push_encoded(b"0123456789ab").is_ok());
        assert_eq!((buffer.held(), buffer.in_flight()), (0, 300));
        buffer.set_held(20, 300);
        assert_eq!(buffer.push_encoded(b"0123456789ab"), Err(Refused::Overflow));
    }
}
