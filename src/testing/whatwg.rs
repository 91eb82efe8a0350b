//! A reference decoder written from the WHATWG HTML "event stream
//! interpretation" algorithm, used by tests only: whatever the encoder
//! writes must decode, through it, into exactly the events that were sent.

/// An event as a client's `EventSource` dispatches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub data: String,
    pub last_event_id: String,
}

/// Decodes a whole stream. A trailing event without its blank line is
/// discarded, as the algorithm says.
pub fn parse(stream: &[u8]) -> Vec<Event> {
    let mut parser = Parser::default();
    parser.feed(stream);
    parser.events
}

/// The parser's state across lines.
#[derive(Debug, Default)]
pub struct Parser {
    pub events: Vec<Event>,
    pub retry: Option<u64>,
    data: String,
    kind: String,
    last_event_id: String,
}

impl Parser {
    pub fn feed(&mut self, stream: &[u8]) {
        let text = String::from_utf8_lossy(stream);
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
        let mut rest = text;
        // Only lines that end in a break are complete.
        while let Some(at) = rest.find(['\r', '\n']) {
            let line = &rest[..at];
            let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
            rest = &rest[at + skip..];
            self.line(line);
        }
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.find(':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match field {
            "event" => self.kind = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id with NUL is ignored whole.
            "id" if !value.contains('\0') => self.last_event_id = value.to_string(),
            // A retry that is not all digits is ignored.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        if self.data.is_empty() {
            self.kind.clear();
            return;
        }
        self.data.pop(); // the last LF
        let kind = if self.kind.is_empty() {
            "message".to_string()
        } else {
            std::mem::take(&mut self.kind)
        };
        self.events.push(Event {
            kind,
            data: std::mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        });
        self.kind.clear();
    }
}
