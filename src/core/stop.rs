//! Tokens of clients told to stop reconnecting.
//!
//! `close(true)` ends a stream with a last frame whose id is a fresh token.
//! The client stores it as its last event id and sends it back as
//! `Last-Event-ID` if it reconnects anyway; that request is answered `204 No
//! Content`, which makes a WHATWG `EventSource` give up for good. A token of
//! our own, rather than the application's last id, stops exactly one client:
//! other clients that saw the same broadcast id keep going.
//!
//! Tokens are stateless, so that any process of a deployment can verify a
//! token another process issued, and so that nothing is remembered per
//! stopped client: a token is 128 random bits, its expiry, and an HMAC-SHA256
//! of both under a key, as 80 hex digits. Nobody without the key can forge
//! one. The key is, in order of preference: one set by the application, one
//! shared through Redis by the processes of a Redis-backed Channel, or one
//! made at random for this process. Tokens under any key this process knows
//! are honoured, so a token issued before a shared key arrived still stops
//! its client here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::core::hex;

/// How long a token is honoured unless the application says otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The event name of the farewell frame. Clients only see it if they listen
/// for this very name; `onmessage` handlers never do.
pub const STOP_EVENT: &str = "native-sse:stop";

/// The shortest key the application may set.
pub const MIN_KEY_LEN: usize = 32;

/// Keys shared through Redis that are kept at most (one per Redis server in
/// use, in practice).
const MAX_SHARED_KEYS: usize = 8;

const RANDOM_LEN: usize = 16;
const EXPIRY_LEN: usize = 8;
const MAC_LEN: usize = 16;
const TOKEN_BYTES: usize = RANDOM_LEN + EXPIRY_LEN + MAC_LEN;
/// Domain separation: a MAC made for anything else never verifies here.
const CONTEXT: &[u8] = b"native-sse stop token v1";

/// Fills `out` from the operating system's random source; false if that
/// failed (then `out` must not be used). For tasks, where a panic would go
/// unseen.
pub fn fill_random(out: &mut [u8]) -> bool {
    getrandom::fill(out).is_ok()
}

/// Fills `out` from the operating system's random source. Called from
/// JavaScript only, where a panic becomes `ERR_SSE_INTERNAL`.
pub fn random_bytes(out: &mut [u8]) {
    assert!(
        fill_random(out),
        "the operating system's random source failed"
    );
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}

fn mac(key: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(CONTEXT);
    mac.update(body);
    mac
}

/// The keys this process signs and verifies stop tokens with.
#[derive(Debug)]
pub struct StopKeys {
    local: Vec<u8>,
    shared: Vec<Vec<u8>>,
    explicit: Option<Vec<u8>>,
    max_age: Duration,
}

impl Default for StopKeys {
    fn default() -> Self {
        let mut local = vec![0u8; 32];
        random_bytes(&mut local);
        StopKeys {
            local,
            shared: Vec::new(),
            explicit: None,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

impl StopKeys {
    /// Sets the key of the application: it signs every token from now on.
    /// The caller checks it is at least [`MIN_KEY_LEN`] bytes.
    pub fn set_key(&mut self, key: &[u8]) {
        self.explicit = Some(key.to_vec());
    }

    /// Adds a key shared by the processes of a deployment (through Redis),
    /// or brings it forward if known. The latest one read signs, unless the
    /// application set its own: after a Redis that lost its data comes back
    /// with a new key, every process signs with that one.
    pub fn add_shared(&mut self, key: &[u8]) {
        self.shared.retain(|k| k != key);
        self.shared.insert(0, key.to_vec());
        self.shared.truncate(MAX_SHARED_KEYS);
    }

    pub fn set_max_age(&mut self, max_age: Duration) {
        self.max_age = max_age;
    }

    fn signing_key(&self) -> &[u8] {
        self.explicit
            .as_deref()
            .or(self.shared.first().map(Vec::as_slice))
            .unwrap_or(&self.local)
    }

    /// A new token, honoured until `now + max_age`.
    pub fn issue(&self, now: SystemTime) -> String {
        let mut token = [0u8; TOKEN_BYTES];
        random_bytes(&mut token[..RANDOM_LEN]);
        let expiry = millis(now).saturating_add(self.max_age.as_millis() as u64);
        token[RANDOM_LEN..RANDOM_LEN + EXPIRY_LEN].copy_from_slice(&expiry.to_be_bytes());
        let (body, tag) = token.split_at_mut(RANDOM_LEN + EXPIRY_LEN);
        tag.copy_from_slice(&mac(self.signing_key(), body).finalize().into_bytes()[..MAC_LEN]);
        hex::encode(&token)
    }

    /// Whether `id` is a token made under one of this process's keys that
    /// has not expired.
    pub fn verify(&self, id: &str, now: SystemTime) -> bool {
        let mut token = [0u8; TOKEN_BYTES];
        if hex::decode(id, &mut token).is_none() {
            return false;
        }
        let (body, tag) = token.split_at(RANDOM_LEN + EXPIRY_LEN);
        let expiry = u64::from_be_bytes(body[RANDOM_LEN..].try_into().expect("8 bytes"));
        if expiry <= millis(now) {
            return false;
        }
        let keys = self
            .explicit
            .iter()
            .chain(&self.shared)
            .chain(std::iter::once(&self.local));
        // Constant-time comparison of the tag, under each key.
        keys.into_iter()
            .any(|key| mac(key, body).verify_truncated_left(tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_are_unique() {
        let keys = StopKeys::default();
        let now = SystemTime::now();
        let a = keys.issue(now);
        let b = keys.issue(now);
        assert_ne!(a, b);
        assert_eq!(a.len(), 80);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(keys.verify(&a, now));
        assert!(keys.verify(&b, now));
        for bad in ["", "1", "1700000000000-0", &a[..79], &a.to_uppercase()] {
            assert!(!keys.verify(bad, now), "{bad:?}");
        }
    }

    #[test]
    fn a_changed_token_does_not_verify() {
        let keys = StopKeys::default();
        let now = SystemTime::now();
        let token = keys.issue(now);
        for at in [0, 31, 33, 47, 48, 79] {
            let mut forged = token.clone().into_bytes();
            forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
            assert!(
                !keys.verify(std::str::from_utf8(&forged).unwrap(), now),
                "{at}"
            );
        }
    }

    #[test]
    fn tokens_expire() {
        let mut keys = StopKeys::default();
        keys.set_max_age(Duration::from_secs(60));
        let start = SystemTime::now();
        let token = keys.issue(start);
        assert!(keys.verify(&token, start + Duration::from_secs(59)));
        assert!(!keys.verify(&token, start + Duration::from_secs(61)));
    }

    #[test]
    fn processes_sharing_a_key_verify_each_others_tokens() {
        let now = SystemTime::now();
        let shared = [7u8; 32];
        let mut a = StopKeys::default();
        let mut b = StopKeys::default();
        let before = a.issue(now);
        assert!(!b.verify(&before, now), "different random keys");
        a.add_shared(&shared);
        b.add_shared(&shared);
        let token = a.issue(now);
        assert!(b.verify(&token, now));
        // A token made before the shared key arrived still stops its client
        // on the process that issued it.
        assert!(a.verify(&before, now));
        // The application's own key signs from then on; the shared one
        // still verifies.
        b.set_key(&[9u8; 32]);
        let own = b.issue(now);
        assert!(!a.verify(&own, now));
        assert!(b.verify(&token, now));
        a.set_key(&[9u8; 32]);
        assert!(a.verify(&own, now));
    }

    #[test]
    fn shared_keys_are_bounded() {
        let mut keys = StopKeys::default();
        for i in 0..100u8 {
            keys.add_shared(&[i; 32]);
        }
        assert_eq!(keys.shared.len(), MAX_SHARED_KEYS);
    }
}
