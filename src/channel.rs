//! Broadcast to many streams, with a history to resume from.
//!
//! A broadcast is validated and encoded once, and the same [`Bytes`] are
//! queued to every subscriber: no per-subscriber encoding, no copy until the
//! bytes leave. Subscribers that fall behind are handled by their own
//! buffer's rules (see [`crate::buffer`]); a broadcast never waits for them.
//!
//! The history keeps the last `history_size` frames that carry an id, so a
//! client that reconnects with `Last-Event-ID` gets exactly what it missed.
//! Frames without an id are delivered live only: there is nothing a client
//! could name to resume after them.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::frame::Frame;
use crate::hub::{Hub, PushError, Slot};

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

#[derive(Debug, Default)]
pub struct Channel {
    /// Subscribers, in no order, with each one's index for O(1) removal.
    subscribers: Vec<Slot>,
    index: HashMap<Slot, usize>,
    history: VecDeque<Entry>,
    history_size: usize,
}

impl Channel {
    pub fn new(history_size: usize) -> Self {
        Channel {
            history_size,
            ..Channel::default()
        }
    }

    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    pub fn contains(&self, slot: Slot) -> bool {
        self.index.contains_key(&slot)
    }

    /// Adds a stream and queues on it the history after `last_event_id`
    /// (nothing for an empty id: a new client). Subscribing twice replays
    /// nothing more.
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
        self.index.insert(slot, self.subscribers.len());
        self.subscribers.push(slot);
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
        for entry in self.history.range(start..) {
            match hub.push_shared(slot, &entry.frame) {
                Ok(_) => {
                    replay.frames += 1;
                    replay.last_id = Some(entry.id.clone());
                }
                Err(PushError::Full | PushError::FrameTooLarge) => {
                    replay.overflow = true;
                    break;
                }
                Err(PushError::Closed) => break,
            }
        }
        replay
    }

    /// Removes a stream; returns whether it was subscribed.
    pub fn unsubscribe(&mut self, slot: Slot) -> bool {
        let Some(at) = self.index.remove(&slot) else {
            return false;
        };
        self.subscribers.swap_remove(at);
        if let Some(&moved) = self.subscribers.get(at) {
            self.index.insert(moved, at);
        }
        true
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
        let len = frame.encoded_len();
        if let Some(&slot) = self
            .subscribers
            .iter()
            .find(|&&s| hub.max_buffered(s) < len)
        {
            return Err(FrameTooLarge {
                len,
                max: hub.max_buffered(slot),
            });
        }
        let bytes = frame.to_bytes().freeze();
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            if self.history_size > 0 {
                if self.history.len() == self.history_size {
                    self.history.pop_front();
                }
                self.history.push_back(Entry {
                    id: id.to_string(),
                    frame: bytes.clone(),
                });
            }
        }
        let mut overflowed = Vec::new();
        for &slot in &self.subscribers {
            if let Err(PushError::Full) = hub.push_shared(slot, &bytes) {
                overflowed.push(slot);
            }
        }
        Ok(overflowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::StreamOptions;
    use crate::whatwg::parse;
    use std::time::Instant;

    fn open(hub: &mut Hub) -> Slot {
        hub.open(StreamOptions::default(), Instant::now())
    }

    fn events(hub: &mut Hub, slot: Slot) -> Vec<(String, String)> {
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
        let mut channel = Channel::new(10);
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
        let mut channel = Channel::new(10);
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
        let mut channel = Channel::new(3);
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
    fn frames_without_ids_are_live_only() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(10);
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
        let mut channel = Channel::new(0);
        let a = open(&mut hub);
        let b = open(&mut hub);
        let c = open(&mut hub);
        for slot in [a, b, c] {
            channel.subscribe(&mut hub, slot, "");
        }
        assert!(channel.unsubscribe(a));
        assert!(!channel.unsubscribe(a));
        send(&mut channel, &mut hub, "1", "x");
        assert!(events(&mut hub, a).is_empty());
        assert_eq!(events(&mut hub, b).len(), 1);
        assert_eq!(events(&mut hub, c).len(), 1);
        assert_eq!(channel.len(), 2);
    }

    #[test]
    fn a_full_subscriber_is_reported_and_does_not_hold_up_the_others() {
        let mut hub = Hub::default();
        let mut channel = Channel::new(0);
        let slow = hub.open(
            StreamOptions {
                max_buffered: 30,
                keep_alive: None,
            },
            Instant::now(),
        );
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
}
