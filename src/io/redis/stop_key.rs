//! The stop-token key, shared through Redis: every process on one Redis
//! honours the tokens of the others (see [`crate::core::stop`]).

use redis::aio::MultiplexedConnection;
use redis::Value;

use crate::core::{hex, stop};

/// The key through which processes on one Redis share the stop-token key.
const STOP_KEY_NAME: &str = "native-sse:stop-key";

/// Shares the stop-token key through Redis: the first process to get
/// here sets it, every process adds it. A Redis that refuses (an ACL)
/// leaves tokens verifiable by their own process only.
pub async fn share(connection: &mut MultiplexedConnection, on_shared_key: fn(&[u8])) {
    let mut mine = [0u8; 32];
    if !stop::fill_random(&mut mine) {
        // No key to offer: tokens stay verifiable by this process only,
        // as when Redis refuses.
        return;
    }
    let mine = hex::encode(&mine);
    let shared: redis::RedisResult<(Value, Option<Vec<u8>>)> = redis::pipe()
        .cmd("SET")
        .arg(STOP_KEY_NAME)
        .arg(&mine)
        .arg("NX")
        .cmd("GET")
        .arg(STOP_KEY_NAME)
        .query_async(connection)
        .await;
    if let Ok((_, Some(key))) = shared {
        if key.len() >= stop::MIN_KEY_LEN {
            on_shared_key(&key);
        }
    }
}
