//! Whether a link reaches its Redis, as its tasks last found it.
//!
//! The publisher and the follower each connect on their own, and only when
//! they have work: the publisher when something is queued, the follower
//! while a stream has live subscribers here (it asks the server whether it
//! is alive every few seconds meanwhile). Each says what its last attempt
//! found, and the latest word stands: a Redis that goes away is seen within
//! a ping of the follower while clients wait on it, or by the next
//! broadcast. A link not tried yet is not connected, with no reason.
//!
//! Every change is handed to a [`HealthSink`] (JavaScript warns once when
//! clients wait on a Redis that cannot be reached); the state itself is
//! read whole with [`Health::now`].

use super::now_ms;
use std::sync::{Mutex, PoisonError};

/// Told of every change between connected and not; it must not block.
pub type HealthSink = Box<dyn Fn(bool) + Send + Sync>;

/// What a link's tasks last found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkHealth {
    pub connected: bool,
    /// Since when it has been as it is (ms since the epoch).
    pub since_ms: u64,
    /// Why it is not connected: the last failure, or `None` before any
    /// attempt.
    pub reason: Option<String>,
}

pub struct Health {
    state: Mutex<LinkHealth>,
    sink: HealthSink,
}

impl Health {
    pub fn new(sink: HealthSink) -> Self {
        Health {
            state: Mutex::new(LinkHealth {
                connected: false,
                since_ms: now_ms(),
                reason: None,
            }),
            sink,
        }
    }

    /// The state now.
    pub fn now(&self) -> LinkHealth {
        self.lock().clone()
    }

    /// A task reached Redis.
    pub fn up(&self) {
        let changed = {
            let mut state = self.lock();
            let changed = !state.connected;
            if changed {
                *state = LinkHealth {
                    connected: true,
                    since_ms: now_ms(),
                    reason: None,
                };
            }
            changed
        };
        if changed {
            (self.sink)(true);
        }
    }

    /// A task could not reach Redis, or lost it, for `reason` (naming the
    /// server without userinfo).
    pub fn down(&self, reason: String) {
        let changed = {
            let mut state = self.lock();
            // Not tried yet counts as a change: it is said once.
            let changed = state.connected || state.reason.is_none();
            if state.connected {
                state.since_ms = now_ms();
            }
            state.connected = false;
            state.reason = Some(reason);
            changed
        };
        if changed {
            (self.sink)(false);
        }
    }

    /// The state is plain data, replaced whole: a panic while it was held
    /// leaves it usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, LinkHealth> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn every_change_is_told_once_and_the_latest_word_stands() {
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        let health = Health::new(Box::new(move |up| sink.lock().unwrap().push(up)));
        assert!(!health.now().connected);
        assert_eq!(health.now().reason, None, "not tried yet");
        health.down("Cannot connect".into());
        health.down("Cannot connect again".into());
        let down = health.now();
        assert!(!down.connected);
        assert_eq!(down.reason.as_deref(), Some("Cannot connect again"));
        health.up();
        health.up();
        assert!(health.now().connected);
        assert_eq!(health.now().reason, None);
        health.down("Lost".into());
        assert_eq!(*told.lock().unwrap(), vec![false, true, false]);
    }

    #[test]
    fn a_first_success_is_a_change() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let health = Health::new(Box::new(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        }));
        health.up();
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert!(health.now().connected);
    }
}
