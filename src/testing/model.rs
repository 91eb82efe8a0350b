//! Randomised model tests of the core: arbitrary names, ids and data, and
//! arbitrary interleavings of sends, broadcasts, pauses, flushes, closes and
//! keep-alives over several streams. Whatever happens, each stream's bytes
//! must parse (WHATWG algorithm) into exactly the events that were accepted,
//! in order; refused input must write nothing; and no buffer may pass its cap.
//!
//! `cargo test` runs a short pass; `npm run fuzz` runs many more cases
//! (`PROPTEST_CASES`).

use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::core::channel::Channel;
use crate::core::frame::Frame;
use crate::core::hub::{Hub, PushError, Slot, StreamOptions};
use crate::testing::whatwg::{Event, Parser};

#[derive(Debug, Clone)]
enum Op {
    Send {
        stream: usize,
        event: Option<String>,
        id: Option<String>,
        data: String,
    },
    Broadcast {
        event: Option<String>,
        id: Option<String>,
        data: String,
    },
    Subscribe {
        stream: usize,
    },
    Unsubscribe {
        stream: usize,
    },
    Pause {
        stream: usize,
    },
    Resume {
        stream: usize,
    },
    Flush,
    Close {
        stream: usize,
    },
    KeepAlive {
        ms: u64,
    },
}

/// Text that is often hostile: line breaks of every kind, NUL, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z \r\n\u{0}é😀:]{0,12}",
        1 => any::<String>(),
    ]
}

fn op(streams: usize) -> impl Strategy<Value = Op> {
    let s = 0..streams;
    prop_oneof![
        6 => (s.clone(), proptest::option::of(text()), proptest::option::of(text()), text())
            .prop_map(|(stream, event, id, data)| Op::Send { stream, event, id, data }),
        3 => (proptest::option::of(text()), proptest::option::of(text()), text())
            .prop_map(|(event, id, data)| Op::Broadcast { event, id, data }),
        1 => s.clone().prop_map(|stream| Op::Subscribe { stream }),
        1 => s.clone().prop_map(|stream| Op::Unsubscribe { stream }),
        2 => s.clone().prop_map(|stream| Op::Pause { stream }),
        2 => s.clone().prop_map(|stream| Op::Resume { stream }),
        3 => Just(Op::Flush),
        1 => s.prop_map(|stream| Op::Close { stream }),
        1 => (0u64..400).prop_map(|ms| Op::KeepAlive { ms }),
    ]
}

struct ModelStream {
    slot: Slot,
    open: bool,
    subscribed: bool,
    max: usize,
    parser: Parser,
    expected: Vec<Event>,
    last_id: String,
}

impl ModelStream {
    fn accept(&mut self, event: Option<&str>, id: Option<&str>, data: &str) {
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            self.last_id = id.to_string();
        }
        self.expected.push(Event {
            kind: match event {
                None | Some("") => "message".to_string(),
                Some(name) => name.to_string(),
            },
            data: data.replace("\r\n", "\n").replace('\r', "\n"),
            last_event_id: self.last_id.clone(),
        });
    }
}

/// The frame the endpoint would build, or None when it refuses the input.
fn build<'a>(event: Option<&'a str>, id: Option<&'a str>, data: &'a str) -> Option<Frame<'a>> {
    let mut frame = Frame::message(data);
    if let Some(event) = event {
        frame = frame.event(event).ok()?;
    }
    if let Some(id) = id.filter(|id| !id.is_empty()) {
        frame = frame.id(id).ok()?;
    }
    Some(frame)
}

fn run(ops: Vec<Op>, caps: Vec<usize>) {
    let start = Instant::now();
    let mut now = start;
    let mut hub = Hub::default();
    let mut channel = Channel::new(0, usize::MAX);
    let mut streams: Vec<ModelStream> = caps
        .iter()
        .map(|&max| {
            let options = StreamOptions {
                owner: 0,
                max_buffered_bytes: max,
                keep_alive: Some(Duration::from_millis(100)),
            };
            let slot = hub.open(options, now);
            hub.push_opening(slot, None).unwrap();
            ModelStream {
                slot,
                open: true,
                subscribed: false,
                max,
                parser: Parser::default(),
                expected: Vec::new(),
                last_id: String::new(),
            }
        })
        .collect();

    let deliver = |hub: &mut Hub, streams: &mut Vec<ModelStream>, now: Instant| {
        let batch = hub.flush(0, now);
        for part in batch.layout.chunks(3) {
            let stream = streams
                .iter_mut()
                .find(|s| s.open && s.slot == part[0])
                .expect("flushed slot is open");
            stream
                .parser
                .feed(&batch.bytes[part[1] as usize..part[2] as usize]);
        }
    };
    let close = |hub: &mut Hub, channel: &mut Channel, stream: &mut ModelStream| {
        if stream.subscribed {
            channel.unsubscribe(hub, stream.slot);
        }
        stream.parser.feed(&hub.take(stream.slot));
        hub.release(stream.slot);
        stream.open = false;
    };

    for op in ops {
        match op {
            Op::Send {
                stream,
                event,
                id,
                data,
            } => {
                let s = &mut streams[stream];
                if !s.open {
                    continue;
                }
                let before = hub.buffered(s.slot);
                match build(event.as_deref(), id.as_deref(), &data) {
                    None => {
                        assert_eq!(hub.buffered(s.slot), before, "refused input writes nothing")
                    }
                    Some(frame) => match hub.push_frame(s.slot, &frame) {
                        Ok(_) => s.accept(event.as_deref(), id.as_deref(), &data),
                        Err(PushError::Overflow | PushError::TooLarge) => {
                            assert_eq!(
                                hub.buffered(s.slot),
                                before,
                                "a refused frame leaves nothing"
                            );
                            // The endpoint cuts a slow consumer off.
                            close(&mut hub, &mut channel, s);
                        }
                        Err(PushError::Closed) => unreachable!("the stream is open"),
                    },
                }
            }
            Op::Broadcast { event, id, data } => {
                let Some(frame) = build(event.as_deref(), id.as_deref(), &data) else {
                    continue;
                };
                let Ok(overflowed) = channel.broadcast(&mut hub, &frame, id.as_deref()) else {
                    continue; // refused whole: nothing queued anywhere
                };
                for s in streams.iter_mut().filter(|s| s.open && s.subscribed) {
                    if overflowed.contains(&s.slot) {
                        close(&mut hub, &mut channel, s);
                    } else {
                        s.accept(event.as_deref(), id.as_deref(), &data);
                    }
                }
            }
            Op::Subscribe { stream } => {
                let s = &mut streams[stream];
                if s.open && !s.subscribed {
                    channel.subscribe(&mut hub, s.slot, "");
                    s.subscribed = true;
                }
            }
            Op::Unsubscribe { stream } => {
                let s = &mut streams[stream];
                if s.subscribed {
                    channel.unsubscribe(&mut hub, s.slot);
                    s.subscribed = false;
                }
            }
            Op::Pause { stream } => hub.pause(streams[stream].slot),
            Op::Resume { stream } => {
                hub.resume(streams[stream].slot);
            }
            Op::Flush => deliver(&mut hub, &mut streams, now),
            Op::Close { stream } => {
                if streams[stream].open {
                    close(&mut hub, &mut channel, &mut streams[stream]);
                }
            }
            Op::KeepAlive { ms } => {
                now += Duration::from_millis(ms);
                hub.queue_keep_alives(0, now);
            }
        }
        for s in streams.iter().filter(|s| s.open) {
            assert!(hub.buffered(s.slot) <= s.max, "a buffer passed its cap");
        }
    }

    for s in streams.iter_mut().filter(|s| s.open) {
        hub.resume(s.slot);
    }
    deliver(&mut hub, &mut streams, now);
    for s in &streams {
        assert_eq!(
            s.parser.events, s.expected,
            "stream {} decodes to what was accepted",
            s.slot
        );
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn streams_decode_to_exactly_the_accepted_events(
        caps in proptest::collection::vec(prop_oneof![Just(64usize), Just(512), Just(1 << 20)], 1..5),
        ops in proptest::collection::vec(op(4), 0..120),
    ) {
        let streams = caps.len();
        let ops = ops.into_iter().filter(|op| match op {
            Op::Send { stream, .. } | Op::Subscribe { stream } | Op::Unsubscribe { stream }
            | Op::Pause { stream } | Op::Resume { stream } | Op::Close { stream } => *stream < streams,
            _ => true,
        }).collect();
        run(ops, caps);
    }
}
