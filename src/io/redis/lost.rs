//! Looking for broadcasts whose reply was lost: each carries a producer tag
//! (the `p` field, unique per process and broadcast), and a broadcast is
//! found among its stream's newest entries, or proven missing from a window
//! read whole. The publisher asks the server it sent the pipeline to
//! ([`super::publisher`]); a cluster link asks the master that took over the
//! stream's slot after a failover ([`super::cluster_link`]).

use std::collections::HashMap;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::Value;

use super::replies::{entries_of, id_of};
use crate::core::stream_entry::{StreamId, PRODUCER_FIELD};

/// Entries read per page, and pages at most, when a lost broadcast is
/// looked for.
const SEARCH_PAGE: usize = 1_000;
const SEARCH_PAGES: usize = 100;

/// A broadcast in a pipeline: its stream and producer tag, kept to look for
/// it if the reply is lost.
pub struct Sent {
    pub stream: Arc<str>,
    pub tag: String,
}

/// What the search learnt of a broadcast whose reply was lost.
#[derive(Clone)]
pub enum Found {
    /// Appended, with this id.
    At(String),
    /// Not in a window that was read whole (as the publisher's search
    /// answers it: and nothing queued on the old connection can run later).
    Missing,
    /// Not found, and it may yet be there: the window may have been
    /// trimmed, or the old connection may still run it.
    Unsure,
}

/// Looks for each broadcast's tag among its stream's entries from the
/// newest back to `lower_ms`.
pub async fn find_tags(
    connection: &mut MultiplexedConnection,
    sent: &[Sent],
    lower_ms: u64,
) -> redis::RedisResult<Vec<Found>> {
    let mut streams: HashMap<&str, HashMap<&str, Found>> = HashMap::new();
    for broadcast in sent {
        streams
            .entry(&broadcast.stream)
            .or_default()
            .insert(&broadcast.tag, Found::Missing);
    }
    for (stream, tags) in &mut streams {
        let mut before = "+".to_string();
        let mut complete = false;
        for _ in 0..SEARCH_PAGES {
            let reply: Value = redis::cmd("XREVRANGE")
                .arg(*stream)
                .arg(&before)
                .arg("-")
                .arg("COUNT")
                .arg(SEARCH_PAGE)
                .query_async(connection)
                .await?;
            let entries = entries_of(reply);
            let count = entries.len();
            let mut past_window = false;
            for (id, fields) in entries {
                let Some(parsed) = StreamId::parse(&id) else {
                    continue;
                };
                if parsed.ms < lower_ms {
                    past_window = true;
                }
                for (name, value) in &fields {
                    if name != PRODUCER_FIELD.as_bytes() {
                        continue;
                    }
                    if let Ok(tag) = std::str::from_utf8(value) {
                        if let Some(found) = tags.get_mut(tag) {
                            *found = Found::At(id.clone());
                        }
                    }
                }
                before = format!("({id}");
            }
            if !tags.values().any(|found| matches!(found, Found::Missing)) {
                // Every tag of this stream found: nothing left to prove.
                complete = true;
                break;
            }
            if past_window {
                complete = true;
                break;
            }
            if count < SEARCH_PAGE {
                // The stream's first entry is inside the window: what
                // is missing was never there, or was trimmed since.
                let trimmed = trimming(connection, stream).await?;
                complete = !trimmed;
                break;
            }
        }
        if !complete {
            for found in tags.values_mut() {
                if let Found::Missing = found {
                    *found = Found::Unsure;
                }
            }
        }
    }
    Ok(sent
        .iter()
        .map(|broadcast| {
            streams
                .get(&*broadcast.stream)
                .and_then(|tags| tags.get(&*broadcast.tag))
                .cloned()
                .unwrap_or(Found::Unsure)
        })
        .collect())
}

/// Whether a stream has been trimmed from the front: it holds an entry
/// count of `MAXLEN`'s order, and entries were removed from it
/// (`XINFO STREAM`'s `max-deleted-entry-id` is not `0-0`).
async fn trimming(
    connection: &mut MultiplexedConnection,
    stream: &str,
) -> redis::RedisResult<bool> {
    let info: redis::RedisResult<Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(connection)
        .await;
    let Ok(info) = info else {
        // No such stream (deleted, or a new Redis): nothing was trimmed
        // from it; what is missing is not there.
        return Ok(false);
    };
    let pairs: Vec<(String, Value)> = match info {
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|pair| match pair {
                [Value::BulkString(name), value] => {
                    Some((String::from_utf8_lossy(name).into_owned(), value.clone()))
                }
                [Value::SimpleString(name), value] => Some((name.clone(), value.clone())),
                _ => None,
            })
            .collect(),
        Value::Map(map) => map
            .into_iter()
            .filter_map(|(name, value)| match name {
                Value::BulkString(name) => {
                    Some((String::from_utf8_lossy(&name).into_owned(), value))
                }
                Value::SimpleString(name) => Some((name, value)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let deleted = pairs
        .iter()
        .find(|(name, _)| name == "max-deleted-entry-id")
        .and_then(|(_, value)| id_of(value));
    // Redis before 7 does not say: presume it may have been trimmed.
    Ok(deleted.is_none_or(|id| id != "0-0"))
}
