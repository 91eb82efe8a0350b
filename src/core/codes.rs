//! The one registry of error codes: every `err.code` native-sse gives a
//! user, and every warning's `code`, is a [`Code`] here. The bindings
//! export the registry ([`Code::ALL`]) and convert the core's errors into
//! JavaScript errors carrying these codes; JavaScript writes messages only,
//! and reads the codes from the export (`lib/codes.js`). The README lists
//! them for matching.
//!
//! One code cannot come from here: `ERR_SSE_NO_BINARY`, thrown when the
//! addon itself cannot be loaded, is written in `lib/native.js`.

/// An error's (or a warning's) code, as JavaScript sees it in `err.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// An event name holds CR or LF.
    InvalidEvent,
    /// An id holds CR, LF or NUL, or is too long to come back.
    InvalidId,
    /// An event larger than a stream's `maxBufferedBytes`.
    EventTooLarge,
    /// The stream is closed.
    Closed,
    /// The stream was cut off as a slow consumer.
    SlowConsumer,
    /// A stream ended with bytes its client had not taken (a warning).
    EndedBehind,
    /// Node's HTTP internals are not the ones adoption knows: connections
    /// stay on the direct path (a warning).
    NotAdopted,
    /// A channel closed before it was ready.
    ChannelClosed,
    /// Redis settings that cannot be used (URL, TLS material).
    RedisConfig,
    /// Redis could not be reached.
    RedisUnavailable,
    /// A broadcast that is not in the stream: retrying is safe.
    RedisNotAppended,
    /// A broadcast whose reply was lost: it may be in the stream.
    RedisOutcomeUnknown,
    /// The stream cannot be read, and retrying will not heal it.
    RedisUnreadable,
    /// The stream went back behind what was read from it (a warning).
    RedisRewound,
    /// An entry not in the form this library writes (a warning).
    RedisBadEntry,
    /// An entry larger than some client's cap (a warning).
    RedisEntryTooLarge,
    /// An endpoint on so many Redis-backed channels that its composite id
    /// could not come back as `Last-Event-ID`.
    TooManyChannels,
    /// Node-API itself failed, or the addon panicked: a bug of ours.
    Internal,
}

impl Code {
    /// Every code, for the export.
    pub const ALL: [Code; 18] = [
        Code::InvalidEvent,
        Code::InvalidId,
        Code::EventTooLarge,
        Code::Closed,
        Code::SlowConsumer,
        Code::EndedBehind,
        Code::NotAdopted,
        Code::ChannelClosed,
        Code::RedisConfig,
        Code::RedisUnavailable,
        Code::RedisNotAppended,
        Code::RedisOutcomeUnknown,
        Code::RedisUnreadable,
        Code::RedisRewound,
        Code::RedisBadEntry,
        Code::RedisEntryTooLarge,
        Code::TooManyChannels,
        Code::Internal,
    ];

    /// The code as a user matches on it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::InvalidEvent => "ERR_SSE_INVALID_EVENT",
            Code::InvalidId => "ERR_SSE_INVALID_ID",
            Code::EventTooLarge => "ERR_SSE_EVENT_TOO_LARGE",
            Code::Closed => "ERR_SSE_CLOSED",
            Code::SlowConsumer => "ERR_SSE_SLOW_CONSUMER",
            Code::EndedBehind => "ERR_SSE_ENDED_BEHIND",
            Code::NotAdopted => "ERR_SSE_NOT_ADOPTED",
            Code::ChannelClosed => "ERR_SSE_CHANNEL_CLOSED",
            Code::RedisConfig => "ERR_SSE_REDIS_CONFIG",
            Code::RedisUnavailable => "ERR_SSE_REDIS_UNAVAILABLE",
            Code::RedisNotAppended => "ERR_SSE_REDIS_NOT_APPENDED",
            Code::RedisOutcomeUnknown => "ERR_SSE_REDIS_OUTCOME_UNKNOWN",
            Code::RedisUnreadable => "ERR_SSE_REDIS_UNREADABLE",
            Code::RedisRewound => "ERR_SSE_REDIS_REWOUND",
            Code::RedisBadEntry => "ERR_SSE_REDIS_BAD_ENTRY",
            Code::RedisEntryTooLarge => "ERR_SSE_REDIS_ENTRY_TOO_LARGE",
            Code::TooManyChannels => "ERR_SSE_TOO_MANY_CHANNELS",
            Code::Internal => "ERR_SSE_INTERNAL",
        }
    }

    /// The name JavaScript reads it by (`codes.SlowConsumer`).
    pub const fn name(self) -> &'static str {
        match self {
            Code::InvalidEvent => "InvalidEvent",
            Code::InvalidId => "InvalidId",
            Code::EventTooLarge => "EventTooLarge",
            Code::Closed => "Closed",
            Code::SlowConsumer => "SlowConsumer",
            Code::EndedBehind => "EndedBehind",
            Code::NotAdopted => "NotAdopted",
            Code::ChannelClosed => "ChannelClosed",
            Code::RedisConfig => "RedisConfig",
            Code::RedisUnavailable => "RedisUnavailable",
            Code::RedisNotAppended => "RedisNotAppended",
            Code::RedisOutcomeUnknown => "RedisOutcomeUnknown",
            Code::RedisUnreadable => "RedisUnreadable",
            Code::RedisRewound => "RedisRewound",
            Code::RedisBadEntry => "RedisBadEntry",
            Code::RedisEntryTooLarge => "RedisEntryTooLarge",
            Code::TooManyChannels => "TooManyChannels",
            Code::Internal => "Internal",
        }
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_listed_once_under_its_own_name() {
        let codes: HashSet<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let names: HashSet<_> = Code::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(codes.len(), Code::ALL.len());
        assert_eq!(names.len(), Code::ALL.len());
        for code in Code::ALL {
            assert!(code.as_str().starts_with("ERR_SSE_"));
            // The name is the code's words in CamelCase.
            let words: String = code.as_str()["ERR_SSE_".len()..]
                .split('_')
                .map(|w| w[..1].to_string() + &w[1..].to_lowercase())
                .collect();
            assert_eq!(words, code.name());
        }
    }
}
