//! The memory of clients told to stop reconnecting.
//!
//! `close(true)` ends a stream with a last frame whose id is a fresh random
//! token. The client stores it as its last event id and sends it back as
//! `Last-Event-ID` if it reconnects anyway; that request is answered `204 No
//! Content`, which makes a WHATWG `EventSource` give up for good. A token of
//! our own, rather than the application's last id, stops exactly one client:
//! other clients that saw the same broadcast id keep going, and nobody can
//! forge a stop for someone else.
//!
//! Tokens are kept for a bounded time and in bounded number: a client that
//! comes back later than that is simply served a new stream.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How many tokens are remembered at most; the oldest go first.
pub const DEFAULT_CAPACITY: usize = 65_536;
/// How long a token is honoured.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The event name of the farewell frame. Clients only see it if they listen
/// for this very name; `onmessage` handlers never do.
pub const STOP_EVENT: &str = "native-sse:stop";

#[derive(Debug)]
pub struct StopTokens {
    capacity: usize,
    max_age: Duration,
    issued: HashMap<String, Instant>,
    order: VecDeque<(String, Instant)>,
}

impl Default for StopTokens {
    fn default() -> Self {
        StopTokens::new(DEFAULT_CAPACITY, DEFAULT_MAX_AGE)
    }
}

impl StopTokens {
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        StopTokens {
            capacity: capacity.max(1),
            max_age,
            issued: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Makes and remembers a new token: 128 random bits from the operating
    /// system, as 32 hex digits.
    pub fn issue(&mut self, now: Instant) -> String {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).expect("the operating system's random source failed");
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        self.remember(token.clone(), now);
        token
    }

    /// Remembers a token made elsewhere.
    pub fn remember(&mut self, token: String, now: Instant) {
        self.expire(now);
        while self.order.len() >= self.capacity {
            self.forget_oldest();
        }
        self.issued.insert(token.clone(), now);
        self.order.push_back((token, now));
    }

    /// Whether `id` is a token issued within the last `max_age`.
    pub fn contains(&mut self, id: &str, now: Instant) -> bool {
        self.expire(now);
        self.issued.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.issued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.issued.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((_, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.max_age {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((token, at)) = self.order.pop_front() {
            // The map entry may be newer if the same token was remembered
            // twice; only drop it if it is this one.
            if self.issued.get(&token) == Some(&at) {
                self.issued.remove(&token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_are_recognised_and_unique() {
        let mut tokens = StopTokens::default();
        let now = Instant::now();
        let a = tokens.issue(now);
        let b = tokens.issue(now);
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(tokens.contains(&a, now));
        assert!(tokens.contains(&b, now));
        assert!(!tokens.contains("1", now));
    }

    #[test]
    fn capacity_is_a_bound() {
        let mut tokens = StopTokens::new(3, DEFAULT_MAX_AGE);
        let now = Instant::now();
        let issued: Vec<_> = (0..10).map(|_| tokens.issue(now)).collect();
        assert_eq!(tokens.len(), 3);
        assert!(!tokens.contains(&issued[6], now));
        assert!(tokens.contains(&issued[9], now));
    }

    #[test]
    fn tokens_expire() {
        let mut tokens = StopTokens::new(10, Duration::from_secs(60));
        let start = Instant::now();
        let old = tokens.issue(start);
        let fresh = tokens.issue(start + Duration::from_secs(50));
        assert!(tokens.contains(&old, start + Duration::from_secs(59)));
        assert!(!tokens.contains(&old, start + Duration::from_secs(61)));
        assert!(tokens.contains(&fresh, start + Duration::from_secs(61)));
        assert_eq!(tokens.len(), 1);
    }
}
