//! Where the publisher and the reader meet: what the reader has read, what
//! the publisher appended before the reader started or behind what it had
//! read, and the outages the reader has seen. Shared behind a mutex that is
//! held for a few assignments only.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::stream_entry::StreamId;

/// What the publisher tells the reader before the reader has started. The
/// reader starts at the stream's end when it first connects; had it started
/// after this process's first broadcasts were appended, its own subscribers
/// would miss them, so it starts before the first of them instead, and
/// waits for the reply of a pipeline in flight to learn that id.
#[derive(Default)]
pub struct StartLine {
    pub reader_started: bool,
    /// A pipeline was sent before the reader started and has no reply yet.
    pub in_flight: bool,
    pub first_published: Option<StreamId>,
    /// The last id the reader has read.
    pub read_to: Option<StreamId>,
    /// The first id this process appended that was not past what the
    /// reader had read before the XADD went out: the stream went back.
    pub rewound_at: Option<StreamId>,
    /// How many times the reader lost its connection, or could not make
    /// one. The publisher learns from it that its own connection, idle
    /// meanwhile, is most likely dead too: it opens a new one before it
    /// sends on it, rather than find out by losing a pipeline's reply.
    pub outages: u64,
}

impl StartLine {
    /// Notes the ids a pipeline appended, given what the reader had read
    /// before it went out. Redis gives each new entry an id past the
    /// stream's last: one that is not past `read_before` means the stream
    /// went back (a new Redis, a restore, a clock behind).
    pub fn appended(&mut self, read_before: Option<StreamId>, first: StreamId) {
        if !self.reader_started && self.first_published.is_none() {
            self.first_published = Some(first);
        }
        if read_before.is_some_and(|read| first <= read) && self.rewound_at.is_none() {
            self.rewound_at = Some(first);
        }
    }

    /// A pipeline goes out: returns what the reader had read before it
    /// (for [`StartLine::appended`]).
    pub fn sending(&mut self) -> Option<StreamId> {
        self.in_flight = !self.reader_started;
        self.read_to
    }

    /// The pipeline's reply came, or will never come.
    pub fn answered(&mut self) {
        self.in_flight = false;
    }

    /// Where the reader starts, given the stream's end as it read it; `None`
    /// while a pipeline is in flight (ask again shortly).
    pub fn reader_start(&mut self, end: StreamId) -> Option<StreamId> {
        if self.in_flight {
            return None;
        }
        self.reader_started = true;
        Some(match self.first_published {
            Some(first) => end.min(first.before()),
            None => end,
        })
    }
}

pub type SharedStart = Arc<Mutex<StartLine>>;

pub fn lock(start: &SharedStart) -> MutexGuard<'_, StartLine> {
    start
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_starts_before_this_process_first_broadcast() {
        let end = StreamId { ms: 10, seq: 0 };
        assert_eq!(StartLine::default().reader_start(end), Some(end));
        let mut published = StartLine {
            first_published: Some(StreamId { ms: 7, seq: 3 }),
            ..StartLine::default()
        };
        assert_eq!(
            published.reader_start(end),
            Some(StreamId { ms: 7, seq: 2 })
        );
        assert!(published.reader_started);
        let mut later = StartLine {
            first_published: Some(StreamId { ms: 12, seq: 0 }),
            ..StartLine::default()
        };
        assert_eq!(later.reader_start(end), Some(end));
        let mut waiting = StartLine {
            in_flight: true,
            ..StartLine::default()
        };
        assert_eq!(waiting.reader_start(end), None);
        assert!(!waiting.reader_started);
    }

    #[test]
    fn an_append_not_past_what_was_read_means_the_stream_went_back() {
        let read = StreamId { ms: 50, seq: 0 };
        let mut line = StartLine {
            reader_started: true,
            ..StartLine::default()
        };
        line.appended(Some(read), StreamId { ms: 51, seq: 0 });
        assert_eq!(line.rewound_at, None);
        line.appended(None, StreamId { ms: 1, seq: 0 });
        assert_eq!(line.rewound_at, None, "nothing read yet: no guide");
        line.appended(Some(read), StreamId { ms: 50, seq: 0 });
        assert_eq!(line.rewound_at, Some(StreamId { ms: 50, seq: 0 }));
        // The first such id is kept: the reader goes on from before it.
        line.appended(Some(read), StreamId { ms: 20, seq: 0 });
        assert_eq!(line.rewound_at, Some(StreamId { ms: 50, seq: 0 }));
    }
}
