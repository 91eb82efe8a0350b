//! One connection, several streams: the `Last-Event-ID` that resumes each.
//!
//! A browser opens at most six HTTP/1.1 connections per origin, so a page
//! that follows several topics wants them on one event stream. Its client
//! sends back one `Last-Event-ID`, the id of the last frame it received;
//! for that id to resume every stream exactly, it has to say where the
//! client is in each of them. So a client that follows more than one
//! Redis-backed channel is sent, with every entry, a *composite* id: the
//! last stream id it was sent of each stream, as a query string.
//!
//! # The form
//!
//! ```text
//! id: notes%3Aada=1796224121770-0&room%3A7=1796224121784-3
//! ```
//!
//! Each pair is a stream's key, percent-encoded, then `=`, then the id of
//! the last entry of that stream this client was sent (or the point it
//! joined at, if none yet). The point a client joins a stream at is known
//! once the stream's follower has started (a few milliseconds after the
//! first subscriber of a process); until then the pair is `key=`, and a
//! client that resumes from it is told that its resume of that stream is
//! incomplete, rather than resumed from a guess. Pairs are in the order of
//! their keys, so two processes write the same id for the same cursors. `new URLSearchParams(id)`
//! reads it back. A plain stream id (`1796224121770-0`) has no `=`, and is
//! what a client following one stream is sent.
//!
//! # Where the cursors are kept
//!
//! In the stream's slot of the hub ([`crate::core::hub`]), so that every
//! channel that delivers to it updates the same cursors, and they go with the
//! slot. An entry's frame is encoded once for every client
//! ([`crate::core::stream_entry`]), its `id:` line first; a client that gets a
//! composite id is queued its own `id:` line followed by the shared rest of
//! that frame, never a copy of the data.
//!
//! # Two streams of one key
//!
//! A cursor is kept under a *topic*: the stream's key and a tag of the
//! deployment it is on ([`topic`]), so that a client on two channels whose
//! streams share a key on two servers or databases keeps two cursors. The
//! id names a stream by its key alone, as above, unless two of a client's
//! streams share it: then each is named `key@tag`. A resume reads the pair
//! of its own key and tag, or else its key alone; an id that names its key
//! only with another tag (a process that names the deployment otherwise)
//! cannot say where the client is, and the resume is told so.
//!
//! This module knows nothing of Redis or JavaScript; `cargo test` covers it.

use std::sync::Arc;

use crate::core::frame::MAX_ID_BYTES;
use crate::core::hex::percent_decode;
use crate::core::stream_entry::StreamId;

/// The longest stream id, in bytes (`<u64>-<u64>`).
const LONGEST_STREAM_ID: usize = 41;

/// What separates a topic's key from its deployment's tag.
const TAG_SEPARATOR: char = '\0';

/// The topic of stream `key` on the deployment tagged `tag`: what a
/// client's cursor in it is kept under.
pub fn topic(key: &str, tag: &str) -> Arc<str> {
    Arc::from(format!("{key}{TAG_SEPARATOR}{tag}"))
}

/// A topic's key and tag (a topic made without one is a key alone).
fn key_and_tag(topic: &str) -> (&str, Option<&str>) {
    match topic.rsplit_once(TAG_SEPARATOR) {
        Some((key, tag)) => (key, Some(tag)),
        None => (topic, None),
    }
}

/// Where a client is in each stream it follows on one connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cursors {
    /// By key, in order; `None` for a stream joined before the point it
    /// joined at was known (written `key=` until then).
    cursors: Vec<(Arc<str>, Option<StreamId>)>,
    /// Ids are composite from now on: the client follows (or followed, on
    /// its last connection) more than one stream.
    composite: bool,
}

/// What a client's `Last-Event-ID` says of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// A composite id naming this stream: resume after this id.
    Named(StreamId),
    /// A composite id naming this stream with no id: the client joined it
    /// before its point was known, and may have missed entries since.
    Unplaced,
    /// A composite id naming this stream's key only with another
    /// deployment's tag: where the client is in it cannot be told.
    Elsewhere,
    /// A composite id that does not name this stream: the client did not
    /// follow it, so it missed nothing of it.
    NotNamed,
    /// A plain stream id, from a connection that followed one stream.
    Plain(StreamId),
    /// No id, or one that is neither (a client's own id, a stop token).
    Unknown,
}

/// The too-long id an added stream would make possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyStreams {
    /// The longest the composite id could become.
    pub longest: usize,
}

impl Cursors {
    /// Whether frames carry the composite id.
    pub fn composite(&self) -> bool {
        self.composite
    }

    /// Makes every later id composite (the client resumed from one).
    pub fn make_composite(&mut self) {
        self.composite = true;
    }

    /// Adds a stream, at `at` (the point after which it is sent entries) if
    /// known; once two are followed, ids are composite. Refused, changing
    /// nothing, if the id could then grow past [`MAX_ID_BYTES`]: the client
    /// could not send it back. Adding a stream twice moves its cursor only
    /// forward.
    pub fn add(&mut self, stream: &Arc<str>, at: Option<StreamId>) -> Result<(), TooManyStreams> {
        match self.find(stream) {
            Ok(i) => {
                let cursor = &mut self.cursors[i].1;
                *cursor = (*cursor).max(at);
                Ok(())
            }
            Err(i) => {
                self.cursors.insert(i, (stream.clone(), at));
                let longest = self.longest();
                if longest > MAX_ID_BYTES {
                    self.cursors.remove(i);
                    return Err(TooManyStreams { longest });
                }
                self.composite |= self.cursors.len() > 1;
                Ok(())
            }
        }
    }

    /// Forgets a stream (the client left its channel).
    pub fn remove(&mut self, stream: &str) {
        if let Ok(i) = self.find(stream) {
            self.cursors.remove(i);
        }
    }

    /// Sets a stream's cursor where it is not known yet.
    pub fn place(&mut self, stream: &str, at: StreamId) {
        if let Ok(i) = self.find(stream) {
            self.cursors[i].1.get_or_insert(at);
        }
    }

    /// Moves a stream's cursor to an entry the client was just queued.
    pub fn advance(&mut self, stream: &str, to: StreamId) {
        if let Ok(i) = self.find(stream) {
            self.cursors[i].1 = Some(to);
        }
    }

    /// The `id:` line of a frame carrying entry `id` of `stream`: the
    /// composite id with that stream's cursor at `id`.
    pub fn id_line(&self, stream: &str, id: StreamId) -> Vec<u8> {
        let mut line = Vec::with_capacity(self.longest() + 5);
        line.extend_from_slice(b"id: ");
        self.write(&mut line, Some((stream, id)));
        line.push(b'\n');
        line
    }

    /// The composite id as it stands.
    pub fn id(&self) -> String {
        let mut out = Vec::with_capacity(self.longest());
        self.write(&mut out, None);
        // Keys are escaped to ASCII, and ids are digits.
        String::from_utf8(out).unwrap_or_default()
    }

    fn write(&self, out: &mut Vec<u8>, with: Option<(&str, StreamId)>) {
        let mut first = true;
        for (at, (topic, cursor)) in self.cursors.iter().enumerate() {
            let cursor = match with {
                Some((stream, id)) if **topic == *stream => Some(id),
                _ => *cursor,
            };
            if !first {
                out.push(b'&');
            }
            first = false;
            let (key, tag) = self.name_of(at);
            escape_into(key, out);
            if let Some(tag) = tag {
                out.push(b'@');
                escape_into(tag, out);
            }
            out.push(b'=');
            if let Some(cursor) = cursor {
                out.extend_from_slice(cursor.to_string().as_bytes());
            }
        }
    }

    /// How the stream at `at` is named in the id: its key, and its tag if
    /// another stream here has the same key.
    fn name_of(&self, at: usize) -> (&str, Option<&str>) {
        let (key, tag) = key_and_tag(&self.cursors[at].0);
        // In topic order, the streams of one key are neighbours (the
        // separator sorts before every byte a key goes on with).
        let same = |other: Option<&(Arc<str>, Option<StreamId>)>| {
            other.is_some_and(|(topic, _)| key_and_tag(topic).0 == key)
        };
        let shared = same(at.checked_sub(1).and_then(|i| self.cursors.get(i)))
            || same(self.cursors.get(at + 1));
        (key, tag.filter(|_| shared))
    }

    /// The longest the composite id can be with these streams.
    fn longest(&self) -> usize {
        let pairs: usize = (0..self.cursors.len())
            .map(|at| {
                let (key, tag) = self.name_of(at);
                // `@` and the tag, where it is written.
                let tag_len = tag.map_or(0, |tag| pair_len(tag, 0));
                pair_len(key, LONGEST_STREAM_ID) + tag_len
            })
            .sum();
        pairs + self.cursors.len().saturating_sub(1)
    }

    fn find(&self, stream: &str) -> Result<usize, usize> {
        self.cursors
            .binary_search_by(|(key, _)| (**key).cmp(stream))
    }
}

/// What `last_event_id` says of `topic` (see [`topic`]; a key alone is a
/// topic with no tag).
pub fn resume_of(last_event_id: &str, topic: &str) -> Resume {
    if let Some(id) = StreamId::parse(last_event_id) {
        return Resume::Plain(id);
    }
    let Some(pairs) = parse(last_event_id) else {
        return Resume::Unknown;
    };
    let (key, tag) = key_and_tag(topic);
    let ours = pairs
        .iter()
        .find(|pair| pair.key == key && tag.is_some() && pair.tag.as_deref() == tag)
        .or_else(|| {
            pairs
                .iter()
                .find(|pair| pair.key == key && pair.tag.is_none())
        });
    match ours {
        Some(Pair {
            cursor: Some(id), ..
        }) => Resume::Named(*id),
        Some(Pair { cursor: None, .. }) => Resume::Unplaced,
        None if pairs.iter().any(|pair| pair.key == key) => Resume::Elsewhere,
        None => Resume::NotNamed,
    }
}

/// A pair of a composite id, read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Pair {
    pub key: String,
    /// The deployment's tag, where two streams of the client share a key.
    pub tag: Option<String>,
    /// `None` for `key=`: not placed yet.
    pub cursor: Option<StreamId>,
}

/// Reads a composite id back; `None` unless every pair is a key (and a
/// tag) and a stream id, or a key and nothing (`key=`: not placed yet).
pub fn parse(id: &str) -> Option<Vec<Pair>> {
    if !id.contains('=') {
        return None;
    }
    id.split('&')
        .map(|pair| {
            let (name, cursor) = pair.split_once('=')?;
            let cursor = match cursor {
                "" => None,
                cursor => Some(StreamId::parse(cursor)?),
            };
            // A key's own `@` is escaped: a bare one starts the tag.
            let (key, tag) = match name.split_once('@') {
                Some((key, tag)) => (key, Some(percent_decode(tag, true)?)),
                None => (name, None),
            };
            Some(Pair {
                key: percent_decode(key, true)?,
                tag,
                cursor,
            })
        })
        .collect()
}

/// Bytes kept as they are in a key; every other byte is `%XX`.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/')
}

fn pair_len(key: &str, id_len: usize) -> usize {
    let key_len: usize = key.bytes().map(|b| if is_plain(b) { 1 } else { 3 }).sum();
    key_len + 1 + id_len
}

fn escape_into(key: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in key.bytes() {
        if is_plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> StreamId {
        StreamId::parse(text).unwrap()
    }

    fn key(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn one_stream_is_plain_two_are_composite_in_key_order() {
        let mut cursors = Cursors::default();
        cursors.add(&key("room:7"), Some(id("5-0"))).unwrap();
        assert!(!cursors.composite());
        cursors.add(&key("notes ada&co"), None).unwrap();
        assert!(cursors.composite());
        // A stream whose point is not known yet has no id.
        assert_eq!(cursors.id(), "notes%20ada%26co=&room:7=5-0");
        assert_eq!(resume_of(&cursors.id(), "notes ada&co"), Resume::Unplaced);
        cursors.place("notes ada&co", id("4-2"));
        assert_eq!(cursors.id(), "notes%20ada%26co=4-2&room:7=5-0");
        assert_eq!(
            cursors.id_line("room:7", id("6-1")),
            b"id: notes%20ada%26co=4-2&room:7=6-1\n"
        );
        cursors.advance("room:7", id("6-1"));
        cursors.remove("notes ada&co");
        assert_eq!(cursors.id(), "room:7=6-1");
        assert!(cursors.composite(), "once composite, always");
    }

    #[test]
    fn a_composite_id_reads_back_for_each_stream() {
        let mut cursors = Cursors::default();
        for (name, at) in [("a=b", "1-1"), ("ü+%", "2-2"), ("plain", "3-3")] {
            cursors.add(&key(name), Some(id(at))).unwrap();
        }
        let composite = cursors.id();
        assert_eq!(resume_of(&composite, "a=b"), Resume::Named(id("1-1")));
        assert_eq!(resume_of(&composite, "ü+%"), Resume::Named(id("2-2")));
        assert_eq!(resume_of(&composite, "plain"), Resume::Named(id("3-3")));
        assert_eq!(resume_of(&composite, "other"), Resume::NotNamed);
        assert_eq!(resume_of("7-0", "plain"), Resume::Plain(id("7-0")));
        for foreign in ["", "42", "a=b=c", "a=1-1&b", "%zz=1-1", "a=1-x"] {
            assert_eq!(resume_of(foreign, "a"), Resume::Unknown, "{foreign:?}");
        }
        // URLSearchParams reads `+` as a space; so does this.
        assert_eq!(resume_of("a+b=1-0", "a b"), Resume::Named(id("1-0")));
    }

    #[test]
    fn two_streams_of_one_key_on_two_deployments_keep_two_cursors() {
        let mut cursors = Cursors::default();
        let (a, b) = (topic("news", "aaaa0001"), topic("news", "bbbb0002"));
        cursors.add(&a, Some(id("5-0"))).unwrap();
        // Alone, a stream is named by its key: ids read as before.
        cursors.add(&key("room"), Some(id("1-0"))).unwrap();
        assert_eq!(cursors.id(), "news=5-0&room=1-0");
        assert_eq!(resume_of(&cursors.id(), &a), Resume::Named(id("5-0")));
        cursors.add(&b, Some(id("9-0"))).unwrap();
        cursors.advance(&b, id("9-1"));
        let both = cursors.id();
        assert_eq!(both, "news@aaaa0001=5-0&news@bbbb0002=9-1&room=1-0");
        assert_eq!(resume_of(&both, &a), Resume::Named(id("5-0")));
        assert_eq!(resume_of(&both, &b), Resume::Named(id("9-1")));
        assert_eq!(resume_of(&both, "room"), Resume::Named(id("1-0")));
        // The key on a deployment named otherwise: it cannot be told which.
        assert_eq!(
            resume_of(&both, &topic("news", "cccc0003")),
            Resume::Elsewhere
        );
        assert_eq!(
            resume_of(&both, &topic("other", "aaaa0001")),
            Resume::NotNamed
        );
        // A key with its own `@` stays one key.
        assert_eq!(resume_of("a%40b=1-0", "a@b"), Resume::Named(id("1-0")));
        cursors.remove(&b);
        assert_eq!(cursors.id(), "news=5-0&room=1-0");
    }

    #[test]
    fn a_stream_that_could_make_the_id_too_long_is_refused() {
        let mut cursors = Cursors::default();
        let name = "k".repeat(100);
        let mut added = 0;
        loop {
            let stream = key(&format!("{name}{added:04}"));
            match cursors.add(
                &stream,
                Some(StreamId {
                    ms: u64::MAX,
                    seq: u64::MAX,
                }),
            ) {
                Ok(()) => added += 1,
                Err(TooManyStreams { longest }) => {
                    assert!(longest > MAX_ID_BYTES);
                    break;
                }
            }
        }
        // Each pair is at most 104 + 1 + 41 bytes, and a pair after the first
        // one more for its `&`.
        assert_eq!(added, (MAX_ID_BYTES + 1) / (104 + 1 + 41 + 1));
        assert!(cursors.id().len() <= MAX_ID_BYTES);
        assert!(crate::core::frame::validate_id(&cursors.id()).is_ok());
    }
}
