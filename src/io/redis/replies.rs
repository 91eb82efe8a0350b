//! What Redis's replies mean: the entries of `XRANGE` and `XREVRANGE`
//! replies in either protocol (RESP2 arrays, RESP3 maps), and which
//! errors will not heal by retrying.

use redis::Value;

use crate::core::stream_entry::RawFields;

/// Whether a Redis error will come back however often the command is
/// retried: no permission (an ACL), a key of another type, a command the
/// server does not know or that a cluster node sends elsewhere, failed
/// authentication. Everything else (a lost connection, a timeout, a
/// loading or busy server) may heal, and is retried with backoff.
pub fn lasting(err: &redis::RedisError) -> bool {
    if err.kind() == redis::ErrorKind::AuthenticationFailed {
        return true;
    }
    match err.code() {
        Some("NOPERM" | "WRONGTYPE" | "NOAUTH" | "WRONGPASS" | "MOVED" | "ASK" | "CROSSSLOT") => {
            true
        }
        Some("ERR") => err
            .detail()
            .is_some_and(|detail| detail.starts_with("unknown command")),
        _ => false,
    }
}

/// Whether a cluster node sent the request elsewhere (`MOVED`, `ASK`): the
/// key's slot is on another node, and nothing was done.
pub fn redirected(err: &redis::ServerError) -> bool {
    matches!(
        err.kind(),
        Some(redis::ServerErrorKind::Moved | redis::ServerErrorKind::Ask)
    )
}

/// The same, of an error as the redis crate gives it.
pub fn redirected_error(err: &redis::RedisError) -> bool {
    matches!(
        err.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::Moved | redis::ServerErrorKind::Ask)
    )
}

/// Whether an error means the connection itself is gone or cannot be made
/// (refused, dropped, timed out), as opposed to a command refused on a
/// working one.
pub fn connection_lost(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
}

/// The major version of the server of an `INFO server` reply.
pub fn major_version(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?
        .trim()
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// A stream id in a reply.
pub fn id_of(reply: &Value) -> Option<String> {
    match reply {
        Value::BulkString(id) => Some(String::from_utf8_lossy(id).into_owned()),
        Value::SimpleString(id) => Some(id.clone()),
        _ => None,
    }
}

/// The entries of an XRANGE or XREAD reply, RESP2 or RESP3: `(id, fields)`.
pub fn entries_of(value: Value) -> Vec<(String, RawFields)> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let Value::Array(mut pair) = item else {
                return None;
            };
            if pair.len() != 2 {
                return None;
            }
            let fields = pair.pop()?;
            let id = match pair.pop()? {
                Value::BulkString(id) => String::from_utf8_lossy(&id).into_owned(),
                Value::SimpleString(id) => id,
                _ => return None,
            };
            let fields = match fields {
                Value::Array(flat) => {
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut flat = flat.into_iter();
                    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
                        pairs.push((bytes_of(name), bytes_of(value)));
                    }
                    pairs
                }
                Value::Map(map) => map
                    .into_iter()
                    .map(|(n, v)| (bytes_of(n), bytes_of(v)))
                    .collect(),
                _ => Vec::new(),
            };
            Some((id, fields))
        })
        .collect()
}

fn bytes_of(value: Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.into_bytes(),
        Value::Int(n) => n.to_string().into_bytes(),
        // Anything else is no field a producer could have written as text:
        // it fails the UTF-8 check and the entry is skipped.
        _ => vec![0xff],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_both_protocols_give_entries_in_order() {
        let entry = |id: &str, fields: &[&str]| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(
                    fields
                        .iter()
                        .map(|f| Value::BulkString(f.as_bytes().to_vec()))
                        .collect(),
                ),
            ])
        };
        let entries = Value::Array(vec![
            entry("1-1", &["d", "a"]),
            entry("1-2", &["d", "b", "e", "x"]),
        ]);
        let got = entries_of(entries.clone());
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, "1-2");
        assert_eq!(got[1].1[1], (b"e".to_vec(), b"x".to_vec()));
        assert!(entries_of(Value::Nil).is_empty());
    }
}
