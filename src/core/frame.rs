//! Encoding of Server-Sent Events frames, and the validation that keeps a
//! stream well formed.
//!
//! The event-stream format has no escaping: a line break inside an event name
//! or id would end the field early and let the rest be read as new fields
//! (a forged `data:` or `retry:` line). So names and ids are checked before a
//! single byte is produced, and data is split into one `data:` line per line,
//! on `\r\n`, `\r` and `\n` alike, exactly as the WHATWG parser splits it.
//!
//! This module knows nothing of JavaScript; it is covered by `cargo test`.

use std::fmt;

use bytes::{BufMut, BytesMut};

/// Why a frame was refused. Nothing is written for a refused frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The event name holds `\r` or `\n`.
    EventHasLineBreak,
    /// The id holds `\r` or `\n`.
    IdHasLineBreak,
    /// The id holds U+0000, which the WHATWG parser ignores the whole id for.
    IdHasNul,
    /// The id is longer than [`MAX_ID_BYTES`].
    IdTooLong,
}

/// The longest id an event may carry, in UTF-8 bytes. A client sends the
/// last id back as `Last-Event-ID` when it reconnects, and Node refuses a
/// request whose headers exceed `maxHeaderSize` (16 KiB by default) with
/// `431`, after which a browser stops reconnecting for good: an id of at
/// most 4 KiB leaves 12 KiB for the request line, cookies and the rest.
pub const MAX_ID_BYTES: usize = 4096;

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What was wrong, not which argument: the binding's caller knows the
        // argument's name (see `crate::bindings::error`).
        match self {
            FrameError::EventHasLineBreak => {
                f.write_str("the event name holds a line break (CR or LF)")
            }
            FrameError::IdHasLineBreak => f.write_str("the id holds a line break (CR or LF)"),
            FrameError::IdHasNul => f.write_str("the id holds a NUL character"),
            FrameError::IdTooLong => write!(
                f,
                "the id is longer than {MAX_ID_BYTES} bytes (UTF-8): too long to come back as Last-Event-ID"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks an event name. Any string without a line break is a valid name.
pub fn validate_event(event: &str) -> Result<(), FrameError> {
    if memchr::memchr2(b'\r', b'\n', event.as_bytes()).is_some() {
        return Err(FrameError::EventHasLineBreak);
    }
    Ok(())
}

/// Checks an event id: no line break, no NUL (a client would drop it), and
/// no longer than [`MAX_ID_BYTES`] (it could not come back).
pub fn validate_id(id: &str) -> Result<(), FrameError> {
    let bytes = id.as_bytes();
    if bytes.len() > MAX_ID_BYTES {
        return Err(FrameError::IdTooLong);
    }
    if memchr::memchr2(b'\r', b'\n', bytes).is_some() {
        return Err(FrameError::IdHasLineBreak);
    }
    if memchr::memchr(0, bytes).is_some() {
        return Err(FrameError::IdHasNul);
    }
    Ok(())
}

/// One event, validated. Build it with [`Frame::message`], then
/// [`Frame::event`] and [`Frame::id`], which refuse what would corrupt the
/// stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    data: &'a str,
    event: Option<&'a str>,
    id: Option<&'a str>,
}

impl<'a> Frame<'a> {
    /// A plain `message` event carrying `data`. Data may hold any text; line
    /// breaks become separate `data:` lines and come back joined by `\n`.
    pub fn message(data: &'a str) -> Self {
        Frame {
            data,
            event: None,
            id: None,
        }
    }

    /// A frame from its parts as the API takes them: no `event` (or
    /// `"message"`) is a plain message, and no `id` (or `""`) sends none.
    pub fn new(
        data: &'a str,
        event: Option<&'a str>,
        id: Option<&'a str>,
    ) -> Result<Self, FrameError> {
        let mut frame = Frame::message(data);
        if let Some(event) = event {
            frame = frame.event(event)?;
        }
        match id {
            Some(id) if !id.is_empty() => frame.id(id),
            _ => Ok(frame),
        }
    }

    /// Names the event. `"message"` and `""` are what a client assumes when
    /// there is no `event:` line, so no line is written for them.
    pub fn event(mut self, event: &'a str) -> Result<Self, FrameError> {
        validate_event(event)?;
        self.event = (!event.is_empty() && event != "message").then_some(event);
        Ok(self)
    }

    /// Gives the event an id, which the client echoes as `Last-Event-ID`
    /// when it reconnects.
    pub fn id(mut self, id: &'a str) -> Result<Self, FrameError> {
        validate_id(id)?;
        self.id = Some(id);
        Ok(self)
    }

    /// The number of bytes [`Frame::encode_into`] writes, so that a buffer
    /// can grow once per frame rather than once per line.
    pub fn encoded_len(&self) -> usize {
        let mut len = 1; // the blank line that ends the frame
        if let Some(id) = self.id {
            len += "id: \n".len() + id.len();
        }
        if let Some(event) = self.event {
            len += "event: \n".len() + event.len();
        }
        for line in Lines::new(self.data) {
            len += data_line_len(line);
        }
        len
    }

    /// Appends the frame's bytes to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        if let Some(id) = self.id {
            put_field(out, b"id: ", id.as_bytes());
        }
        if let Some(event) = self.event {
            put_field(out, b"event: ", event.as_bytes());
        }
        for line in Lines::new(self.data) {
            put_data_line(out, line);
        }
        out.put_u8(b'\n');
    }

    /// The frame's bytes on their own.
    pub fn to_bytes(self) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

/// Appends a comment: lines a client skips, used to open a stream at once and
/// to keep idle connections alive through proxies. Line breaks in `text`
/// start new comment lines, so a comment can never turn into a field.
pub fn encode_comment(text: &str, out: &mut BytesMut) {
    for line in Lines::new(text) {
        out.reserve(line.len() + 3);
        out.put_u8(b':');
        if !line.is_empty() {
            out.put_u8(b' ');
            out.put_slice(line.as_bytes());
        }
        out.put_u8(b'\n');
    }
}

/// Appends a `retry:` line. On its own, followed by a blank line, it sets the
/// client's reconnection time without dispatching an event.
pub fn encode_retry(ms: u32, out: &mut BytesMut) {
    put_field(out, b"retry: ", ms.to_string().as_bytes());
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(value);
    out.put_u8(b'\n');
}

/// `data: line`, or a bare `data` for an empty line: both decode to an empty
/// line, and the bare form is a byte shorter.
fn put_data_line(out: &mut BytesMut, line: &str) {
    if line.is_empty() {
        out.put_slice(b"data\n");
    } else {
        put_field(out, b"data: ", line.as_bytes());
    }
}

fn data_line_len(line: &str) -> usize {
    if line.is_empty() {
        "data\n".len()
    } else {
        "data: \n".len() + line.len()
    }
}

/// The lines of a text split as the WHATWG event-stream parser splits them:
/// on `\r\n`, lone `\r` and lone `\n`. An empty text is one empty line, and a
/// trailing break yields a trailing empty line, so that joining the lines
/// with `\n` gives back the text with its breaks normalised.
struct Lines<'a> {
    rest: Option<&'a str>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines { rest: Some(text) }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let text = self.rest?;
        let bytes = text.as_bytes();
        match memchr::memchr2(b'\r', b'\n', bytes) {
            None => {
                self.rest = None;
                Some(text)
            }
            Some(at) => {
                let skip = if bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                // Both break characters are ASCII, so these are char boundaries.
                self.rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::whatwg::{parse, Event};
    use proptest::prelude::*;

    fn encode(frame: Frame) -> String {
        let bytes = frame.to_bytes();
        assert_eq!(bytes.len(), frame.encoded_len(), "encoded_len is exact");
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn plain_message() {
        assert_eq!(encode(Frame::message("hello")), "data: hello\n\n");
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(encode(Frame::message("")), "data\n\n");
    }

    #[test]
    fn every_kind_of_line_break_splits_data() {
        assert_eq!(
            encode(Frame::message("a\r\nb\rc\nd")),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(encode(Frame::message("a\n")), "data: a\ndata\n\n");
        assert_eq!(encode(Frame::message("\r\n\r\n")), "data\ndata\ndata\n\n");
        // "\n\r" is two breaks, not one.
        assert_eq!(
            encode(Frame::message("a\n\rb")),
            "data: a\ndata\ndata: b\n\n"
        );
    }

    #[test]
    fn fields_come_in_order() {
        let frame = Frame::message("x").event("tick").unwrap().id("7").unwrap();
        assert_eq!(encode(frame), "id: 7\nevent: tick\ndata: x\n\n");
    }

    #[test]
    fn message_and_empty_event_names_write_no_event_line() {
        assert_eq!(
            encode(Frame::message("x").event("message").unwrap()),
            "data: x\n\n"
        );
        assert_eq!(
            encode(Frame::message("x").event("").unwrap()),
            "data: x\n\n"
        );
    }

    #[test]
    fn leading_space_in_data_survives() {
        // The parser strips one space after the colon; ours is that space.
        assert_eq!(encode(Frame::message("  x")), "data:   x\n\n");
    }

    #[test]
    fn refuses_line_breaks_in_names_and_ids_and_nul_in_ids() {
        assert_eq!(
            Frame::message("x").event("a\nb"),
            Err(FrameError::EventHasLineBreak)
        );
        assert_eq!(
            Frame::message("x").event("a\rb"),
            Err(FrameError::EventHasLineBreak)
        );
        assert_eq!(
            Frame::message("x").id("1\n"),
            Err(FrameError::IdHasLineBreak)
        );
        assert_eq!(
            Frame::message("x").id("\r1"),
            Err(FrameError::IdHasLineBreak)
        );
        assert_eq!(Frame::message("x").id("1\0"), Err(FrameError::IdHasNul));
        let longest = "7".repeat(MAX_ID_BYTES);
        assert!(Frame::message("x").id(&longest).is_ok());
        assert_eq!(
            Frame::message("x").id(&format!("{longest}7")),
            Err(FrameError::IdTooLong)
        );
        assert!(FrameError::IdTooLong
            .to_string()
            .contains(&MAX_ID_BYTES.to_string()));
        // NUL is fine in a name and in data.
        assert!(Frame::message("a\0b").event("n\0m").is_ok());
    }

    #[test]
    fn frames_are_built_from_the_parts_an_api_takes() {
        let plain = Frame::new("x", None, None).unwrap();
        assert_eq!(plain, Frame::message("x"));
        assert_eq!(Frame::new("x", Some("message"), Some("")).unwrap(), plain);
        let full = Frame::new("x", Some("tick"), Some("7")).unwrap();
        assert_eq!(encode(full), "id: 7\nevent: tick\ndata: x\n\n");
        assert_eq!(
            Frame::new("x", Some("a\nb"), None),
            Err(FrameError::EventHasLineBreak)
        );
        assert_eq!(Frame::new("x", None, Some("\0")), Err(FrameError::IdHasNul));
        assert!(FrameError::IdHasLineBreak
            .to_string()
            .contains("line break"));
    }

    #[test]
    fn comments_cannot_become_fields() {
        let mut out = BytesMut::new();
        encode_comment("ok\ndata: forged", &mut out);
        assert_eq!(&out[..], b": ok\n: data: forged\n");
        assert!(parse(&out).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn data_round_trips_through_the_whatwg_parser(data in any::<String>()) {
            let bytes = Frame::message(&data).to_bytes();
            let events = parse(&bytes);
            prop_assert_eq!(events, vec![Event {
                kind: "message".into(),
                data: data.replace("\r\n", "\n").replace('\r', "\n"),
                last_event_id: String::new(),
            }]);
        }

        #[test]
        fn line_break_heavy_data_round_trips(data in "[a\r\n ]{0,40}") {
            let bytes = Frame::message(&data).to_bytes();
            let events = parse(&bytes);
            prop_assert_eq!(events.len(), 1);
            prop_assert_eq!(&events[0].data, &data.replace("\r\n", "\n").replace('\r', "\n"));
        }

        #[test]
        fn names_and_ids_round_trip_or_are_refused(
            event in any::<String>(),
            id in any::<String>(),
            data in any::<String>(),
        ) {
            let frame = Frame::message(&data).event(&event).and_then(|f| f.id(&id));
            let name_ok = !event.contains(['\r', '\n']);
            let id_ok = !id.contains(['\r', '\n', '\0']);
            prop_assert_eq!(frame.is_ok(), name_ok && id_ok);
            if let Ok(frame) = frame {
                let events = parse(&frame.to_bytes());
                let kind = if event.is_empty() { "message" } else { event.as_str() };
                prop_assert_eq!(events, vec![Event {
                    kind: kind.into(),
                    data: data.replace("\r\n", "\n").replace('\r', "\n"),
                    last_event_id: id.clone(),
                }]);
            }
        }

        #[test]
        fn many_frames_decode_in_order(datas in proptest::collection::vec(any::<String>(), 0..20)) {
            let mut out = BytesMut::new();
            encode_comment("ok", &mut out);
            for (i, data) in datas.iter().enumerate() {
                Frame::message(data).id(&i.to_string()).unwrap().encode_into(&mut out);
            }
            let events = parse(&out);
            prop_assert_eq!(events.len(), datas.len());
            for (i, (event, data)) in events.iter().zip(&datas).enumerate() {
                prop_assert_eq!(&event.data, &data.replace("\r\n", "\n").replace('\r', "\n"));
                prop_assert_eq!(&event.last_event_id, &i.to_string());
            }
        }
    }
}
