//! The JavaScript binding of [`Channel`]: converts values, nothing more.
//! A broadcast is one call, whatever the number of subscribers.

use napi::bindgen_prelude::{Either, Uint32Array};
use napi_derive::napi;

use super::error::{frame_error, too_large, too_many_streams, Result};
use super::redis::{RedisLink, StreamPage};
use super::state::{add_history_bytes, with_hub};
use crate::core::channel::Channel;
use crate::core::frame::Frame;
use crate::core::stream_entry::StreamId;
use crate::core::topics::{resume_of, Resume};
use crate::io::redis::Retention;

/// The longest id a stream entry can have (`<u64>-<u64>`), for checking the
/// size of a broadcast before Redis gives it its id.
const LONGEST_STREAM_ID: &str = "18446744073709551615-18446744073709551615";

/// What delivering a page of live entries did.
#[napi(object)]
pub struct DeliveryResult {
    /// Subscribers to cut off as slow consumers, or `null`.
    pub overflowed: Option<Uint32Array>,
    /// Ids of entries too large for some subscriber, or `null`.
    pub too_large: Option<Vec<String>>,
}

/// What replaying a page to one subscriber did; see [`crate::core::channel::Replayed`].
#[napi(object)]
pub struct PageReplay {
    pub frames: u32,
    pub too_large: Option<Vec<String>>,
    pub last: Option<String>,
    pub full: bool,
}

fn ids(ids: Vec<StreamId>) -> Option<Vec<String>> {
    (!ids.is_empty()).then(|| ids.iter().map(StreamId::to_string).collect())
}

/// Where a client resumes a Redis stream; see [`Resume`].
#[napi(object)]
pub struct ResumePoint {
    /// The stream id to replay after, or `null`: live only.
    pub after: Option<String>,
    /// With no id to replay after: whether the client missed nothing (it
    /// sent no id, or its composite id does not name the stream); false for
    /// an id of another kind, or a pair of the stream with no id.
    pub complete: bool,
    /// The client's id was composite: later ones are too.
    pub composite: bool,
}

/// What a client's `Last-Event-ID` says of a Redis stream, its `topic` on
/// its deployment (see [`RedisLink::topic`](super::redis::RedisLink::topic)).
#[napi(catch_unwind)]
pub fn resume_point(last_event_id: String, topic: String) -> ResumePoint {
    let (after, complete, composite) = match resume_of(&last_event_id, &topic) {
        Resume::Named(id) => (Some(id), true, true),
        Resume::Unplaced | Resume::Elsewhere => (None, false, true),
        Resume::NotNamed => (None, true, true),
        Resume::Plain(id) => (Some(id), true, false),
        Resume::Unknown => (None, last_event_id.is_empty(), false),
    };
    ResumePoint {
        after: after.map(|id| id.to_string()),
        complete,
        composite,
    }
}

#[napi]
pub struct NativeChannel {
    channel: Channel,
}

/// What a subscription replayed; see [`crate::core::channel::Replay`].
#[napi(object)]
pub struct ReplayResult {
    pub frames: u32,
    pub complete: bool,
    pub last_id: Option<String>,
    pub overflow: bool,
}

impl Drop for NativeChannel {
    fn drop(&mut self) {
        add_history_bytes(0, self.channel.history_held());
    }
}

#[napi]
impl NativeChannel {
    #[napi(constructor, catch_unwind)]
    pub fn new(history_size: u32, history_bytes: f64) -> Self {
        NativeChannel {
            channel: Channel::new(history_size as usize, history_bytes as usize),
        }
    }

    /// Adds a stream and queues the history after `last_event_id` on it.
    #[napi(catch_unwind)]
    pub fn subscribe(&mut self, slot: u32, last_event_id: String) -> ReplayResult {
        let replay = with_hub(|hub| self.channel.subscribe(hub, slot, &last_event_id));
        ReplayResult {
            frames: replay.frames as u32,
            complete: replay.complete,
            last_id: replay.last_id,
            overflow: replay.overflow,
        }
    }

    #[napi(catch_unwind)]
    pub fn unsubscribe(&mut self, slot: u32) -> bool {
        with_hub(|hub| self.channel.unsubscribe(hub, slot))
    }

    /// Validates and encodes the frame once and queues it on every
    /// subscriber. Returns the slots that it would have overflowed, or
    /// `null` when there are none (the usual case).
    #[napi(catch_unwind)]
    pub fn broadcast(
        &mut self,
        data: String,
        event: Option<String>,
        id: Option<String>,
    ) -> Result<Option<Uint32Array>> {
        let frame = Frame::new(&data, event.as_deref(), id.as_deref()).map_err(frame_error)?;
        let id = id.as_deref().filter(|id| !id.is_empty());
        let before = self.channel.history_held();
        let overflowed =
            with_hub(|hub| self.channel.broadcast(hub, &frame, id)).map_err(too_large)?;
        let after = self.channel.history_held();
        add_history_bytes(after, before);
        Ok((!overflowed.is_empty()).then(|| Uint32Array::new(overflowed)))
    }

    /// Checks an event bound for the stream as `broadcast` would check it
    /// here (a name that would break a frame, or a frame larger than a
    /// local subscriber's cap, is refused before it reaches Redis), then
    /// queues it on `link`. Returns its number once queued (its outcome
    /// comes under it), or why it was refused at once (not appended).
    #[napi(catch_unwind)]
    pub fn publish(
        &self,
        link: &RedisLink,
        stream: String,
        max_len: u32,
        ttl_ms: f64,
        data: String,
        event: Option<String>,
    ) -> Result<Either<f64, String>> {
        let frame =
            Frame::new(&data, event.as_deref(), Some(LONGEST_STREAM_ID)).map_err(frame_error)?;
        self.channel
            .check_size(frame.encoded_len())
            .map_err(too_large)?;
        // Checked in JavaScript: a whole number of ms, 0 to 2^53 - 1.
        let retention = Retention {
            max_len,
            ttl_ms: ttl_ms as u64,
        };
        Ok(
            match link.link().enqueue(stream.into(), retention, data, event) {
                Ok(number) => Either::A(number as f64),
                Err(refusal) => Either::B(refusal),
            },
        )
    }

    /// Forgets the history; returns how many events it held.
    #[napi(catch_unwind)]
    pub fn clear_history(&mut self) -> u32 {
        let before = self.channel.history_held();
        let held = self.channel.clear_history();
        add_history_bytes(self.channel.history_held(), before);
        held as u32
    }

    /// Forgets which entries live subscribers already have: the stream went
    /// back, and its ids are no guide any more.
    #[napi(catch_unwind)]
    pub fn forget_floors(&mut self) {
        self.channel.forget_floors();
    }

    /// Subscribes a stream that already has the entries of Redis stream
    /// `stream` up to `floor`; its cursor there starts at `at` (see
    /// [`Channel::subscribe_after`]).
    #[napi(catch_unwind)]
    pub fn subscribe_after(
        &mut self,
        slot: u32,
        topic: String,
        floor: Option<String>,
        at: Option<String>,
        composite: bool,
    ) -> Result<()> {
        let floor = floor.as_deref().and_then(StreamId::parse);
        let at = at.as_deref().and_then(StreamId::parse);
        let topic = self.channel.topic_named(&topic);
        with_hub(|hub| {
            self.channel
                .subscribe_after(hub, slot, &topic, floor, at, composite)
        })
        .map_err(too_many_streams)
    }

    /// Queues live entries of the stream on every subscriber. The page's
    /// entries are taken: their memory goes with the queued bytes, not
    /// whenever the garbage collector gets to the page; with `keep`, they
    /// are shared instead, for another channel on the same stream.
    /// `topic` is the stream's on its deployment (see
    /// [`RedisLink::topic`](super::redis::RedisLink::topic)).
    #[napi(catch_unwind)]
    pub fn deliver(
        &mut self,
        page: &mut StreamPage,
        topic: String,
        keep: Option<bool>,
    ) -> DeliveryResult {
        let entries = if keep == Some(true) {
            page.entries()
        } else {
            page.take_entries()
        };
        let (topic, last) = (self.channel.topic_named(&topic), page.last_read());
        let delivery = with_hub(|hub| self.channel.deliver(hub, &topic, &entries, last));
        DeliveryResult {
            overflowed: (!delivery.overflowed.is_empty())
                .then(|| Uint32Array::new(delivery.overflowed)),
            too_large: ids(delivery.too_large),
        }
    }

    /// Queues entries read back from the stream on one resuming stream;
    /// takes the page's entries, as [`NativeChannel::deliver`] does.
    #[napi(catch_unwind)]
    pub fn replay(&self, slot: u32, page: &mut StreamPage, topic: String) -> PageReplay {
        let entries = page.take_entries();
        let replayed = with_hub(|hub| Channel::replay(hub, slot, &topic, &entries));
        PageReplay {
            frames: replayed.frames as u32,
            too_large: ids(replayed.too_large),
            last: replayed.last.map(|id| id.to_string()),
            full: replayed.full,
        }
    }
}
