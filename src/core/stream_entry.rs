//! Entries of a Redis Stream as events: their ids, their fields, and the
//! check that every entry passes before it can reach a client.
//!
//! Anyone who can write to the stream (another service, a person with
//! `redis-cli`) writes entries, so an entry read back is untrusted input. It
//! becomes a frame only if it has exactly the fields this library writes:
//! `d` (the data, required), `e` (the event name, optional), both UTF-8,
//! the name without a line break, and `p` (the producer's tag, optional,
//! which is never sent: see [`PRODUCER_FIELD`]). Anything else is skipped with its reason,
//! never guessed at: a frame built from a name with CR/LF in it would let the
//! entry inject fields of its own into every client's stream.
//!
//! The frame is encoded here, once, on whatever thread read the entry (the
//! reader runs on the async runtime), and carries the stream id as its event id.
//!
//! This module knows nothing of Redis clients or JavaScript; it is covered by
//! `cargo test`.

use std::fmt;

use bytes::Bytes;

use crate::core::frame::Frame;

/// The field that holds an entry's data.
pub const DATA_FIELD: &str = "d";
/// The field that holds an entry's event name, when it is not "message".
pub const EVENT_FIELD: &str = "e";
/// The field that holds the tag of the process and broadcast that wrote
/// the entry: how a publisher that lost a reply finds out whether its entry
/// was appended. It is never part of the event.
pub const PRODUCER_FIELD: &str = "p";

/// A stream id, `<milliseconds>-<sequence>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// Parses a full stream id; anything else (a client's own ids, a stop
    /// token, `"5"`) is `None`.
    pub fn parse(text: &str) -> Option<StreamId> {
        let (ms, seq) = text.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl StreamId {
    /// The greatest id before this one: reading after it starts at this one.
    pub fn before(self) -> StreamId {
        match (self.ms, self.seq) {
            (ms, seq) if seq > 0 => StreamId { ms, seq: seq - 1 },
            (ms, _) if ms > 0 => StreamId {
                ms: ms - 1,
                seq: u64::MAX,
            },
            _ => self,
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Why an entry read from the stream cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadEntry {
    /// The entry's own id is not a stream id (only a broken server does this).
    Id,
    /// No `d` field.
    NoData,
    /// A field this library never writes.
    UnknownField(String),
    /// A field's name or value is not UTF-8.
    NotUtf8(String),
    /// The event name holds CR or LF.
    EventHasLineBreak,
    /// A field given twice.
    Repeated(String),
}

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadEntry::Id => f.write_str("its id is not a stream id"),
            BadEntry::NoData => write!(f, "it has no \"{DATA_FIELD}\" (data) field"),
            BadEntry::UnknownField(name) => write!(f, "it has an unknown field {name:?}"),
            BadEntry::NotUtf8(name) => write!(f, "its field {name:?} is not UTF-8 text"),
            BadEntry::EventHasLineBreak => write!(
                f,
                "its \"{EVENT_FIELD}\" (event name) field holds a line break (CR or LF)"
            ),
            BadEntry::Repeated(name) => write!(f, "its field {name:?} is given twice"),
        }
    }
}

/// An entry checked and encoded: ready to be queued on any stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyEntry {
    pub id: StreamId,
    pub frame: Bytes,
}

impl ReadyEntry {
    /// The frame after its `id:` line (which comes first): what a client
    /// that is sent an id of its own shares with the others.
    pub fn body(&self) -> Bytes {
        let id_line = self
            .frame
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        self.frame.slice(id_line..)
    }
}

/// One field of an entry as read: its name and value, as raw bytes.
pub type RawField = (Vec<u8>, Vec<u8>);
/// The fields of an entry, in the order Redis gave them.
pub type RawFields = Vec<RawField>;

/// Checks an entry and encodes it as a frame whose id is the stream id.
/// `Err` carries the entry's id as text (for the report) and the reason.
pub fn check(id: &str, fields: &[RawField]) -> Result<ReadyEntry, (String, BadEntry)> {
    let bad = |reason| (id.to_string(), reason);
    let stream_id = StreamId::parse(id).ok_or_else(|| bad(BadEntry::Id))?;
    let mut data = None;
    let mut event = None;
    let mut producer = None;
    for (name, value) in fields {
        let name = std::str::from_utf8(name).map_err(|_| {
            bad(BadEntry::NotUtf8(
                String::from_utf8_lossy(name).into_owned(),
            ))
        })?;
        let slot = match name {
            DATA_FIELD => &mut data,
            EVENT_FIELD => &mut event,
            PRODUCER_FIELD => &mut producer,
            other => return Err(bad(BadEntry::UnknownField(other.to_string()))),
        };
        if slot.is_some() {
            return Err(bad(BadEntry::Repeated(name.to_string())));
        }
        let value =
            std::str::from_utf8(value).map_err(|_| bad(BadEntry::NotUtf8(name.to_string())))?;
        *slot = Some(value);
    }
    let data = data.ok_or_else(|| bad(BadEntry::NoData))?;
    let mut frame = Frame::message(data);
    if let Some(event) = event {
        // An event name is refused for a line break only. This runs on the
        // reader's task, where a panic would stop reading silently: any
        // refusal skips the entry instead.
        frame = frame
            .event(event)
            .map_err(|_| bad(BadEntry::EventHasLineBreak))?;
    }
    // A stream id is digits and one dash, which an event id may always be;
    // were it refused, the entry would be skipped, not the reader stopped.
    let frame = frame.id(id).map_err(|_| bad(BadEntry::Id))?;
    Ok(ReadyEntry {
        id: stream_id,
        frame: frame.to_bytes().freeze(),
    })
}

/// What the reader or a page read hands over: entries ready to queue, and
/// those skipped with their reasons, in stream order.
#[derive(Debug, Default)]
pub struct Page {
    pub entries: Vec<ReadyEntry>,
    pub skipped: Vec<(String, BadEntry)>,
    /// The id of the last entry read, good or bad: where reading goes on.
    pub last: Option<StreamId>,
    /// How many entries were read, good or bad.
    pub read: usize,
}

impl Page {
    /// Checks and adds one entry read from the stream.
    pub fn add(&mut self, id: &str, fields: &[RawField]) {
        self.read += 1;
        if let Some(parsed) = StreamId::parse(id) {
            self.last = Some(self.last.map_or(parsed, |last| last.max(parsed)));
        }
        match check(id, fields) {
            Ok(entry) => self.entries.push(entry),
            Err(skipped) => self.skipped.push(skipped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::whatwg::parse;

    fn fields(pairs: &[(&[u8], &[u8])]) -> RawFields {
        pairs
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn ids_parse_and_order_as_redis_orders_them() {
        let a = StreamId::parse("1700000000000-2").unwrap();
        let b = StreamId::parse("1700000000000-10").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "1700000000000-2");
        for bad in [
            "",
            "5",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "+1-2",
            " 1-2",
            "99999999999999999999-1",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            b.before(),
            StreamId {
                ms: 1700000000000,
                seq: 9
            }
        );
        assert_eq!(
            StreamId { ms: 5, seq: 0 }.before(),
            StreamId {
                ms: 4,
                seq: u64::MAX
            }
        );
        assert!(StreamId { ms: 5, seq: 0 }.before() < StreamId { ms: 5, seq: 0 });
    }

    #[test]
    fn a_good_entry_becomes_a_frame_with_the_stream_id() {
        let entry = check("5-1", &fields(&[(b"e", b"news"), (b"d", b"a\nb")])).unwrap();
        assert_eq!(entry.id, StreamId { ms: 5, seq: 1 });
        let events = parse(&entry.frame);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "news");
        assert_eq!(events[0].data, "a\nb");
        assert_eq!(events[0].last_event_id, "5-1");
        let plain = check("5-2", &fields(&[(b"d", b"")])).unwrap();
        assert_eq!(parse(&plain.frame)[0].kind, "message");
        // The producer tag is accepted and never sent.
        let tagged = check("5-3", &fields(&[(b"d", b"x"), (b"p", b"0a1b-7")])).unwrap();
        assert_eq!(
            tagged.frame,
            check("5-3", &fields(&[(b"d", b"x")])).unwrap().frame
        );
        assert_eq!(
            check("5-4", &fields(&[(b"d", b"x"), (b"p", b"a"), (b"p", b"b")]))
                .unwrap_err()
                .1,
            BadEntry::Repeated("p".to_string())
        );
    }

    #[test]
    fn bad_entries_are_refused_with_their_reason() {
        let cases: Vec<(RawFields, BadEntry)> = vec![
            (fields(&[(b"e", b"x")]), BadEntry::NoData),
            (fields(&[]), BadEntry::NoData),
            (
                fields(&[(b"d", b"x"), (b"e", b"a\r\ndata: forged")]),
                BadEntry::EventHasLineBreak,
            ),
            (
                fields(&[(b"d", b"x"), (b"extra", b"1")]),
                BadEntry::UnknownField("extra".into()),
            ),
            (
                fields(&[(b"d", b"\xff\xfe")]),
                BadEntry::NotUtf8("d".into()),
            ),
            (
                fields(&[(b"d", b"x"), (b"e", b"\xc3")]),
                BadEntry::NotUtf8("e".into()),
            ),
            (
                fields(&[(b"\xff", b"x")]),
                BadEntry::NotUtf8("\u{fffd}".into()),
            ),
            (
                fields(&[(b"d", b"x"), (b"d", b"y")]),
                BadEntry::Repeated("d".into()),
            ),
        ];
        for (entry, reason) in cases {
            assert_eq!(check("1-1", &entry), Err(("1-1".into(), reason)));
        }
        assert_eq!(
            check("nope", &fields(&[(b"d", b"x")])),
            Err(("nope".into(), BadEntry::Id))
        );
    }

    #[test]
    fn a_page_keeps_order_and_moves_past_bad_entries() {
        let mut page = Page::default();
        page.add("1-1", &fields(&[(b"d", b"one")]));
        page.add("1-2", &fields(&[(b"x", b"?")]));
        page.add("1-3", &fields(&[(b"d", b"three")]));
        page.add("1-4", &fields(&[(b"e", b"\n")]));
        assert_eq!(page.read, 4);
        assert_eq!(page.last, StreamId::parse("1-4"));
        let ids: Vec<_> = page.entries.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids, ["1-1", "1-3"]);
        let skipped: Vec<_> = page.skipped.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(skipped, ["1-2", "1-4"]);
    }
}
