//! Broadcast to many streams, with a history to resume from.
//!
//! A broadcast is validated and encoded once, and the same [`Bytes`] are
//! queued to every subscriber: no per-subscriber encoding, no copy until the
//! bytes leave. Subscribers that fall behind are handled by their own
//! buffer's rules (see [`crate::core::buffer`]); a broadcast never waits for them.
//!
//! The history keeps the last `history_size` frames that carry an id, and no
//! more than `history_bytes` bytes of them (the oldest go first), so a
//! client that reconnects with `Last-Event-ID` gets exactly what it missed
//! while the history's memory stays bounded whatever the size of an event.
//! Frames without an id are delivered live only: there is nothing a client
//! could name to resume after them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::core::frame::Frame;
use crate::core::hub::{Hub, PushError, Slot};
use crate::core::stream_entry::{ReadyEntry, StreamId};
use crate::core::topics::TooManyStreams;

/// What a subscription replayed from the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Frames queued, in order.
    pub frames: usize,
    /// Whether the replay is known to be exactly what the client missed:
    /// false when its `Last-Event-ID` is not in the history any more (or
    /// never was), in which case everything held was replayed.
    pub complete: bool,
    /// The id of the last frame replayed.
    pub last_id: Option<String>,
    /// The subscriber's buffer overflowed during the replay.
    pub overflow: bool,
}

/// A broadcast frame larger than a subscriber's `maxBufferedBytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge {
    pub len: usize,
    pub max: usize,
}

#[derive(Debug)]
struct Entry {
    id: String,
    frame: Bytes,
}

/// What delivering entries of a stream did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Subscribers to cut off as slow consumers: full, or unable ever to
    /// take an entry. They were given nothing from the entry on.
    pub overflowed: Vec<Slot>,
    /// Entries larger than some subscriber's cap.
    pub too_large: Vec<StreamId>,
}

/// What replaying entries of a stream to one subscriber did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Frames queued.
    pub frames: usize,
    /// Entries larger than the subscriber's cap, left out (it could never
    /// take them; cutting it off would only bring it back for them).
    pub too_large: Vec<StreamId>,
    /// The id of the last entry dealt with (queued or left out): the
    /// subscriber has everything up to it.
    pub last: Option<StreamId>,
    /// The subscriber's buffer filled up before the end: the rest is to be
    /// read again once it has taken some, from `last`.
    pub full: bool,
}

#[derive(Debug, Default)]
pub struct Channel {
    /// Subscribers, in no order, with each one's index for O(1) removal.
    subscribers: Vec<Slot>,
    index: HashMap<Slot, usize>,
    /// Each subscriber's cap (`maxBufferedBytes`), beside it, and how many
    /// subscribers have each cap: a broadcast is checked against the
    /// smallest without visiting every subscriber.
    caps: Vec<usize>,
    cap_counts: BTreeMap<usize, usize>,
    history: VecDeque<Entry>,
    history_size: usize,
    /// Bytes the history may hold (frames and ids), and holds.
    history_bytes: usize,
    history_held: usize,
    /// Subscribers of a stream-backed channel that already have the entries
    /// up to an id (they replayed them): live delivery skips those.
    floors: HashMap<Slot, StreamId>,
    /// The Redis stream, for a stream-backed channel: the key under which
    /// each subscriber's cursor in it is kept (see [`crate::core::topics`]).
    topic: Option<Arc<str>>,
    /// Subscribers that joined before the point live delivery starts at was
    /// known: the next page delivered names it.
    unplaced: Vec<Slot>,
    /// The history's frames as replays are fed from them, made once for
    /// every client that resumes before the history changes (a storm of
    /// resumes shares one), and let go of when it does.
    frames: Option<Arc<[Bytes]>>,
}

impl Entry {
    fn size(&self) -> usize {
        self.id.len() + self.frame.len()
    }
}

impl Channel {
    /// A channel keeping at most `history_size` frames with an id, and at
    /// most `history_bytes` bytes of them.
    pub fn new(history_size: usize, history_bytes: usize) -> Self {
        Channel {
            history_size,
            history_bytes,
            ..Channel::default()
        }
    }

    /// Bytes the history holds now.
    pub fn history_held(&self) -> usize {
        self.history_held
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    pub fn contains(&self, slot: Slot) -> bool {
        self.index.contains_key(&slot)
    }

    /// Adds a stream and starts replaying to it the history after
    /// `last_event_id` (nothing for an empty id: a new client). Subscribing
    /// twice replays nothing more.
    ///
    /// The replay is not queued now: the hub feeds it at the client's pace
    /// and under the budget (see [`Hub::start_replay`]), from frames shared
    /// with the history, and broadcasts meanwhile wait behind it. `frames`
    /// and `last_id` say what it will have sent; `overflow` that a frame of
    /// it is larger than the client's cap (it could never take it).
    pub fn subscribe(&mut self, hub: &mut Hub, slot: Slot, last_event_id: &str) -> Replay {
        let mut replay = Replay {
            frames: 0,
            complete: true,
            last_id: None,
            overflow: false,
        };
        if self.contains(slot) {
            return replay;
        }
        self.add(hub, slot);
        if last_event_id.is_empty() {
            return replay;
        }
        let start = match self.history.iter().rposition(|e| e.id == last_event_id) {
            Some(at) => at + 1,
            None => {
                replay.complete = false;
                0
            }
        };
        if start >= self.history.len() || !hub.is_open(slot) {
            return replay;
        }
        let cap = hub.max_buffered_bytes(slot);
        if self.history.range(start..).any(|e| e.frame.len() > cap) {
            replay.overflow = true;
            return replay;
        }
        let history = &self.history;
        let frames = self
            .frames
            .get_or_insert_with(|| history.iter().map(|e| e.frame.clone()).collect())
            .clone();
        replay.frames = history.len() - start;
        replay.last_id = history.back().map(|e| e.id.clone());
        hub.start_replay(slot, frames, start);
        replay
    }

    /// Adds a stream that already has the entries of Redis stream `topic`
    /// up to `floor` (it replayed them): [`Channel::deliver`] gives it only
    /// later ones. Its cursor in `topic` starts at `at` (its floor, or
    /// where live delivery is), or if that is not known, at the end of the
    /// next page delivered; with `composite`, its ids are composite from
    /// now on. Refused, changing nothing, if its composite id could grow
    /// too long to come back.
    pub fn subscribe_after(
        &mut self,
        hub: &mut Hub,
        slot: Slot,
        topic: &Arc<str>,
        floor: Option<StreamId>,
        at: Option<StreamId>,
        composite: bool,
    ) -> Result<(), TooManyStreams> {
        if self.contains(slot) {
            return Ok(());
        }
        hub.follow_topic(slot, topic, at, composite)?;
        self.topic.get_or_insert_with(|| topic.clone());
        self.add(hub, slot);
        if let Some(floor) = floor {
            self.floors.insert(slot, floor);
        }
        if at.is_none() {
            self.unplaced.push(slot);
        }
        Ok(())
    }

    /// The key of Redis stream `name`, shared with the cursors of the
    /// channel's subscribers when it is the channel's own.
    pub fn topic_named(&self, name: &str) -> Arc<str> {
        match &self.topic {
            Some(topic) if **topic == *name => topic.clone(),
            _ => Arc::from(name),
        }
    }

    /// Forgets the floors of [`Channel::subscribe_after`]: the stream went
    /// back, and entries with ids below them are new.
    pub fn forget_floors(&mut self) {
        self.floors.clear();
    }

    /// Removes a stream; returns whether it was subscribed.
    pub fn unsubscribe(&mut self, hub: &mut Hub, slot: Slot) -> bool {
        self.floors.remove(&slot);
        if let Some(topic) = &self.topic {
            hub.unfollow_topic(slot, topic);
            self.unplaced.retain(|&s| s != slot);
        }
        let Some(at) = self.index.remove(&slot) else {
            return false;
        };
        self.subscribers.swap_remove(at);
        let cap = self.caps.swap_remove(at);
        if let Some(count) = self.cap_counts.get_mut(&cap) {
            *count -= 1;
            if *count == 0 {
                self.cap_counts.remove(&cap);
            }
        }
        if let Some(&moved) = self.subscribers.get(at) {
            self.index.insert(moved, at);
        }
        true
    }

    /// Adds a stream to the subscribers (it is not one).
    fn add(&mut self, hub: &Hub, slot: Slot) {
        let cap = hub.max_buffered_bytes(slot);
        self.index.insert(slot, self.subscribers.len());
        self.subscribers.push(slot);
        self.caps.push(cap);
        *self.cap_counts.entry(cap).or_default() += 1;
    }

    /// Encodes `frame` once, keeps it in the history if it has an id, and
    /// queues it on every subscriber. Returns the subscribers whose buffer
    /// it would have overflowed (they did not get it, and are to be cut off
    /// as slow consumers). A frame larger than some subscriber's cap is
    /// refused whole, before anything is queued or kept: that subscriber
    /// could never take it, and cutting it off would only make it come back
    /// for the same frame.
    pub fn broadcast(
        &mut self,
        hub: &mut Hub,
        frame: &Frame,
        id: Option<&str>,
    ) -> Result<Vec<Slot>, FrameTooLarge> {
        self.check_size(frame.encoded_len())?;
        let bytes = frame.to_bytes().freeze();
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            self.keep(Entry {
                id: id.to_string(),
                frame: bytes.clone(),
            });
        }
        let mut overflowed = Vec::new();
        for &slot in &self.subscribers {
            if let Err(PushError::Overflow) = hub.push_shared(slot, &bytes) {
                overflowed.push(slot);
            }
        }
        Ok(overflowed)
    }

    /// Keeps an entry in the history, dropping the oldest past either bound;
    /// an entry larger than the byte bound by itself is not kept (a client
    /// resuming after it is told its resume is incomplete).
    fn keep(&mut self, entry: Entry) {
        if self.history_size == 0 {
            return;
        }
        self.frames = None;
        let size = entry.size();
        if size > self.history_bytes {
            self.history_held = 0;
            self.history.clear();
            return;
        }
        while self.history.len() >= self.history_size
            || self.history_held + size > self.history_bytes
        {
            let Some(old) = self.history.pop_front() else {
                break;
            };
            self.history_held -= old.size();
        }
        self.history_held += size;
        self.history.push_back(entry);
    }

    /// Forgets the history: a client resuming from an id it held is told
    /// its resume is incomplete. Returns how many entries it held.
    pub fn clear_history(&mut self) -> usize {
        let held = self.history.len();
        self.history.clear();
        self.history_held = 0;
        self.frames = None;
        held
    }

    /// Refuses a frame of `len` bytes that some subscriber could never take.
    pub fn check_size(&self, len: usize) -> Result<(), FrameTooLarge> {
        match self.cap_counts.first_key_value() {
            Some((&max, _)) if max < len => Err(FrameTooLarge { len, max }),
            _ => Ok(()),
        }
    }

    /// Queues entries read live from a stream on every subscriber, in order,
    /// each encoded once already. Unlike [`Channel::broadcast`], an entry is
    /// never refused whole (it is in the stream already, and the other
    /// processes deliver it): a subscriber that cannot take it is cut off,
    /// and gets nothing more from this call, so that its stream has no gap.
    ///
    /// `last` is the id the page read up to: subscribers whose cursor was
    /// not known have everything up to it now.
    pub fn deliver(
        &mut self,
        hub: &mut Hub,
        topic: &str,
        entries: &[ReadyEntry],
        last: Option<StreamId>,
    ) -> Delivery {
        let mut delivery = Delivery::default();
        for entry in entries {
            let len = entry.frame.len();
            let mut too_large = false;
            for &slot in &self.subscribers {
                if !self.floors.is_empty() && self.floors.get(&slot).is_some_and(|&f| entry.id <= f)
                {
                    continue;
                }
                if delivery.overflowed.contains(&slot) {
                    continue;
                }
                if hub.max_buffered_bytes(slot) < len {
                    too_large = true;
                    delivery.overflowed.push(slot);
                } else if let Err(PushError::Overflow | PushError::TooLarge) =
                    hub.push_entry(slot, topic, entry)
                {
                    delivery.overflowed.push(slot);
                }
            }
            if !self.floors.is_empty() {
                self.floors.retain(|_, floor| *floor > entry.id);
            }
            if too_large {
                delivery.too_large.push(entry.id);
            }
        }
        if let Some(last) = last {
            for slot in self.unplaced.drain(..) {
                hub.place_topic(slot, topic, last);
            }
        }
        delivery
    }

    /// Queues entries read back from a stream on one resuming subscriber,
    /// as many as its buffer takes: a replay waits for the subscriber
    /// rather than cutting it off (see [`Replayed::full`]).
    pub fn replay(hub: &mut Hub, slot: Slot, topic: &str, entries: &[ReadyEntry]) -> Replayed {
        let mut replayed = Replayed::default();
        if !hub.is_open(slot) {
            return replayed;
        }
        let max = hub.max_buffered_bytes(slot);
        for entry in entries {
            if entry.frame.len() > max {
                replayed.too_large.push(entry.id);
            } else {
                match hub.push_entry(slot, topic, entry) {
                    Ok(_) => replayed.frames += 1,
                    Err(PushError::Overflow | PushError::TooLarge) => {
                        replayed.full = true;
                        break;
                    }
                    Err(PushError::Closed) => break,
                }
            }
            replayed.last = Some(entry.id);
        }
        replayed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hub::StreamOptions;
    use crate::testing::whatwg::parse;
    use std::time::Instant;

    fn open(hub: &mut Hub) -> Slot {
        hub.open(StreamOptions::default(), Instant::now())
    }

    /// A stream whose buffer holds `max_buffered_bytes` bytes at most.
    fn open_capped(hub: &mut Hub, max_buffered_bytes: usize) -> Slot {
        let options = StreamOptions {
            max_buffered_bytes,
            ..StreamOptions::default()
        };
        hub.open(options, Instant::now())
    }

    fn events(hub: &mut Hub, slot: Slot) -> Vec<(String, String)> {
        hub.feed_all();
        parse(&hub.take(slot))
            .into_iter()
            .map(|e| (e.last_event_id, e.data))
            .collect()
    }

    fn send(channel: &mut Channel, hub: &mut Hub, id: &str, data: &str) -> Vec<Slot> {
        let frame = Frame::message(data).id(id).unwrap();
        channel.broadcast(hub, &frame, Some(id)).unwrap()
    }

    #[test]
    fn every_subscriber_gets_every_broadcast_from_one_encoding() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(10, usize::MAX);
        let slots: Vec<_> = (0..3).map(|_| open(&mut hub)).collect();
        for &slot in &slots {
            channel.subscribe(&mut hub, slot, "");
        }
        send(&mut channel, &mut hub, "1", "one");
        send(&mut channel, &mut hub, "2", "two");
        for &slot in &slots {
            assert_eq!(
                events(&mut hub, slot),
                vec![("1".into(), "one".into()), ("2".into(), "two".into())]
            );
        }
        assert_eq!(channel.len(), 3);
    }

    #[test]
    fn a_resuming_subscriber_gets_exactly_what_it_missed() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(10, usize::MAX);
        for i in 1..=5 {
            send(&mut channel, &mut hub, &i.to_string(), &format!("e{i}"));
        }
        let slot = open(&mut hub);
        let replay = channel.subscribe(&mut hub, slot, "3");
        assert_eq!(
            replay,
            Replay {
                frames: 2,
                complete: true,
                last_id: Some("5".into()),
                overflow: false
            }
        );
        send(&mut channel, &mut hub, "6", "e6");
        let got: Vec<_> = events(&mut hub, slot).into_iter().map(|e| e.1).collect();
        assert_eq!(got, vec!["e4", "e5", "e6"]);
    }

    #[test]
    fn an_id_gone_from_history_replays_all_held_and_says_so() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(3, usize::MAX);
        for i in 1..=5 {
            send(&mut channel, &mut hub, &i.to_string(), &format!("e{i}"));
        }
        let slot = open(&mut hub);
        let replay = channel.subscribe(&mut hub, slot, "1");
        assert!(!replay.complete);
        assert_eq!(replay.frames, 3);
        let got: Vec<_> = events(&mut hub, slot).into_iter().map(|e| e.1).collect();
        assert_eq!(got, vec!["e3", "e4", "e5"]);
    }

    #[test]
    fn the_history_holds_no_more_bytes_than_it_may() {
        let mut hub = Hub::default();
        // Each frame is "id: N\ndata: 0123456789\n\n" (24 bytes) plus its
        // 1-byte id: 25 bytes kept; 60 bytes hold two.
        let mut channel = Channel::new(10, 60);
        for i in 1..=5 {
            send(&mut channel, &mut hub, &i.to_string(), "0123456789");
        }
        assert_eq!(channel.history.len(), 2);
        assert_eq!(channel.history_held(), 50);
        let slot = open(&mut hub);
        let replay = channel.subscribe(&mut hub, slot, "4");
        assert!(replay.complete);
        assert_eq!(replay.frames, 1);
        // A frame larger than the bound empties the history: whoever
        // resumes after it is told its resume is incomplete.
        send(&mut channel, &mut hub, "6", &"x".repeat(100));
        assert_eq!(channel.history_held(), 0);
        let late = open(&mut hub);
        assert!(!channel.subscribe(&mut hub, late, "5").complete);
    }

    #[test]
    fn frames_without_ids_are_live_only() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(10, usize::MAX);
        send(&mut channel, &mut hub, "1", "kept");
        channel
            .broadcast(&mut hub, &Frame::message("live only"), None)
            .unwrap();
        let slot = open(&mut hub);
        channel.subscribe(&mut hub, slot, "0-unknown");
        let got: Vec<_> = events(&mut hub, slot).into_iter().map(|e| e.1).collect();
        assert_eq!(got, vec!["kept"]);
    }

    #[test]
    fn unsubscribed_streams_get_nothing_more() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(0, usize::MAX);
        let a = open(&mut hub);
        let b = open(&mut hub);
        let c = open(&mut hub);
        for slot in [a, b, c] {
            channel.subscribe(&mut hub, slot, "");
        }
        assert!(channel.unsubscribe(&mut hub, a));
        assert!(!channel.unsubscribe(&mut hub, a));
        send(&mut channel, &mut hub, "1", "x");
        assert!(events(&mut hub, a).is_empty());
        assert_eq!(events(&mut hub, b).len(), 1);
        assert_eq!(events(&mut hub, c).len(), 1);
        assert_eq!(channel.len(), 2);
    }

    #[test]
    fn a_full_subscriber_is_reported_and_does_not_hold_up_the_others() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(0, usize::MAX);
        let slow = open_capped(&mut hub, 30);
        let fast = open(&mut hub);
        channel.subscribe(&mut hub, slow, "");
        channel.subscribe(&mut hub, fast, "");
        hub.pause(slow);
        assert!(send(&mut channel, &mut hub, "1", "0123456789").is_empty());
        assert_eq!(send(&mut channel, &mut hub, "2", "0123456789"), vec![slow]);
        assert_eq!(events(&mut hub, fast).len(), 2);
        // A frame no subscriber's cap could hold is refused for all.
        let big = "x".repeat(40);
        assert_eq!(
            channel.broadcast(&mut hub, &Frame::message(&big), None),
            Err(FrameTooLarge { len: 48, max: 30 })
        );
    }

    #[test]
    fn the_smallest_cap_of_those_subscribed_now_decides_what_is_too_large() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(0, usize::MAX);
        let small = open_capped(&mut hub, 30);
        let also_small = open_capped(&mut hub, 30);
        let middle = open_capped(&mut hub, 60);
        let large = open(&mut hub);
        for slot in [small, also_small, middle, large] {
            channel.subscribe(&mut hub, slot, "");
        }
        let (forty, eighty) = ("x".repeat(40), "x".repeat(80));
        let frame = Frame::message(&forty);
        let refused = Err(FrameTooLarge { len: 48, max: 30 });
        assert_eq!(channel.broadcast(&mut hub, &frame, None), refused);
        // One of the two small ones left: the other still cannot take it.
        channel.unsubscribe(&mut hub, small);
        assert_eq!(channel.broadcast(&mut hub, &frame, None), refused);
        channel.unsubscribe(&mut hub, also_small);
        assert_eq!(channel.broadcast(&mut hub, &frame, None), Ok(vec![]));
        assert_eq!(events(&mut hub, middle).len(), 1);
        assert_eq!(events(&mut hub, large).len(), 1);
        let larger = Frame::message(&eighty);
        assert_eq!(
            channel.broadcast(&mut hub, &larger, None),
            Err(FrameTooLarge { len: 88, max: 60 })
        );
        channel.unsubscribe(&mut hub, middle);
        assert_eq!(channel.broadcast(&mut hub, &larger, None), Ok(vec![]));
        // Subscribing again counts again.
        channel.subscribe(&mut hub, small, "");
        assert_eq!(channel.broadcast(&mut hub, &frame, None), refused);
    }

    fn ready(id: &str, data: &str) -> ReadyEntry {
        crate::core::stream_entry::check(id, &[(b"d".to_vec(), data.as_bytes().to_vec())]).unwrap()
    }

    const TOPIC: &str = "s";

    /// Subscribes `slot` to the stream-backed channel of stream [`TOPIC`].
    fn join(channel: &mut Channel, hub: &mut Hub, slot: Slot, floor: Option<StreamId>) {
        channel
            .subscribe_after(hub, slot, &Arc::from(TOPIC), floor, floor, false)
            .unwrap();
    }

    #[test]
    fn a_client_on_several_streams_gets_ids_that_say_where_it_is_in_each() {
        let mut hub = Hub::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut on_a = Channel::new(0, 0);
        let mut on_b = Channel::new(0, 0);
        let both = open(&mut hub);
        let only_a = open(&mut hub);
        on_a.subscribe_after(&mut hub, both, &a, None, StreamId::parse("1-0"), false)
            .unwrap();
        on_a.subscribe_after(&mut hub, only_a, &a, None, None, false)
            .unwrap();
        // Where live delivery starts on b is not known when it joins.
        on_b.subscribe_after(&mut hub, both, &b, None, None, false)
            .unwrap();
        on_b.deliver(&mut hub, "b", &[], StreamId::parse("7-0"));
        on_a.deliver(&mut hub, "a", &[ready("2-0", "a2")], StreamId::parse("2-0"));
        on_b.deliver(&mut hub, "b", &[ready("8-0", "b8")], StreamId::parse("8-0"));
        let got = events(&mut hub, both);
        assert_eq!(
            got,
            vec![
                ("a=2-0&b=7-0".to_string(), "a2".to_string()),
                ("a=2-0&b=8-0".to_string(), "b8".to_string()),
            ]
        );
        assert_eq!(hub.topics_id(both).as_deref(), Some("a=2-0&b=8-0"));
        // A client on one stream shares the frame as it was encoded.
        assert_eq!(ids(&mut hub, only_a), ["2-0"]);
        assert_eq!(hub.topics_id(only_a), None);
        // Leaving a channel takes its stream out of the id.
        assert!(on_b.unsubscribe(&mut hub, both));
        assert_eq!(hub.topics_id(both).as_deref(), Some("a=2-0"));
    }

    #[test]
    fn a_composite_frame_that_does_not_fit_is_not_queued_and_moves_no_cursor() {
        let mut hub = Hub::default();
        let slot = open_capped(&mut hub, 70);
        let mut on_a = Channel::new(0, 0);
        let mut on_b = Channel::new(0, 0);
        for (channel, topic) in [(&mut on_a, "a"), (&mut on_b, "b")] {
            channel
                .subscribe_after(
                    &mut hub,
                    slot,
                    &Arc::from(topic),
                    None,
                    StreamId::parse("1-0"),
                    false,
                )
                .unwrap();
        }
        hub.pause(slot);
        // "id: a=2-0&b=1-0\n" and "data: 0123456789\n\n": 34 bytes.
        assert!(on_a
            .deliver(&mut hub, "a", &[ready("2-0", "0123456789")], None)
            .overflowed
            .is_empty());
        assert!(on_a
            .deliver(&mut hub, "a", &[ready("3-0", "0123456789")], None)
            .overflowed
            .is_empty());
        assert_eq!(
            on_a.deliver(&mut hub, "a", &[ready("4-0", "0123456789")], None)
                .overflowed,
            vec![slot]
        );
        assert_eq!(hub.topics_id(slot).as_deref(), Some("a=3-0&b=1-0"));
    }

    fn ids(hub: &mut Hub, slot: Slot) -> Vec<String> {
        events(hub, slot).into_iter().map(|e| e.0).collect()
    }

    #[test]
    fn stream_entries_skip_what_a_resumed_subscriber_already_has() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(0, usize::MAX);
        let live = open(&mut hub);
        let resumed = open(&mut hub);
        join(&mut channel, &mut hub, live, None);
        // It replayed up to 1-3 while the live reader was still at 1-1.
        join(&mut channel, &mut hub, resumed, StreamId::parse("1-3"));
        let entries: Vec<_> = (2..=5).map(|i| ready(&format!("1-{i}"), "x")).collect();
        assert_eq!(
            channel.deliver(&mut hub, TOPIC, &entries[..2], None),
            Delivery::default()
        );
        assert_eq!(
            channel.deliver(&mut hub, TOPIC, &entries[2..], None),
            Delivery::default()
        );
        assert_eq!(ids(&mut hub, live), ["1-2", "1-3", "1-4", "1-5"]);
        assert_eq!(ids(&mut hub, resumed), ["1-4", "1-5"]);
        assert!(channel.floors.is_empty(), "a floor passed is forgotten");
    }

    #[test]
    fn an_entry_too_large_for_one_subscriber_reaches_the_others_and_cuts_it_off() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(0, usize::MAX);
        let small = open_capped(&mut hub, 40);
        let big = open(&mut hub);
        join(&mut channel, &mut hub, small, None);
        join(&mut channel, &mut hub, big, None);
        let entries = [ready("1-1", &"x".repeat(100)), ready("1-2", "after")];
        let delivery = channel.deliver(&mut hub, TOPIC, &entries, None);
        assert_eq!(delivery.overflowed, vec![small]);
        assert_eq!(
            delivery.too_large,
            StreamId::parse("1-1").into_iter().collect::<Vec<_>>()
        );
        assert_eq!(ids(&mut hub, big), ["1-1", "1-2"]);
        // Nothing after the entry it missed: no gap in its stream.
        assert!(ids(&mut hub, small).is_empty());
    }

    #[test]
    fn a_replay_leaves_out_what_the_subscriber_can_never_take_and_waits_when_full() {
        let mut hub = Hub::default();
        let slot = open_capped(&mut hub, 60);
        let entries = [
            ready("1-1", "a"),
            ready("1-2", &"x".repeat(100)),
            ready("1-3", "b"),
        ];
        let replayed = Channel::replay(&mut hub, slot, TOPIC, &entries);
        assert_eq!(replayed.frames, 2);
        assert_eq!(replayed.too_large.len(), 1);
        assert!(!replayed.full);
        assert_eq!(replayed.last, StreamId::parse("1-3"));
        assert_eq!(ids(&mut hub, slot), ["1-1", "1-3"]);
        hub.pause(slot);
        let many: Vec<_> = (1..10)
            .map(|i| ready(&format!("2-{i}"), "0123456789"))
            .collect();
        let first = Channel::replay(&mut hub, slot, TOPIC, &many);
        assert!(first.full);
        assert_eq!(first.frames, 2);
        assert_eq!(
            first.last,
            StreamId::parse("2-2"),
            "the rest is read again from here"
        );
        hub.release(slot);
        assert_eq!(
            Channel::replay(&mut hub, slot, TOPIC, &many),
            Replayed::default()
        );
    }
}
