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

use std::time::Duration;

use super::replies::{entries_of, id_of};
use super::{Connector, REPLY_TIMEOUT};
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

/// Which server a connection went to.
#[derive(Debug, Clone)]
pub struct ServerAt {
    /// How it is reached (its address, with the deployment's credentials).
    pub info: redis::ConnectionInfo,
    pub address: String,
    pub run_id: Option<String>,
}

impl ServerAt {
    pub fn new(info: redis::ConnectionInfo, run_id: Option<String>) -> Self {
        let address = info.addr().to_string();
        ServerAt {
            info,
            address,
            run_id,
        }
    }
}

/// Whether what an old connection still held can no longer run, as far as a
/// fresh connection can tell: `Some(client id)` to kill it by id there, or
/// `None` when no kill is needed (`Gone`) or none can be trusted (`Elsewhere`).
#[derive(Debug, PartialEq, Eq)]
pub enum OldFate {
    /// Same server process: kill the old connection by its id.
    Kill(i64),
    /// The same address answers with another process (a restart): the old
    /// process, and every connection it had, is gone.
    Gone,
    /// Another server (a failover moved the master): the old one is asked
    /// itself (see [`old_server_gone`]); no id is killed on the fresh one
    /// (an id of the old server names another connection, or none, there).
    Elsewhere,
    /// The server would not say which process it is: what is not found
    /// stays unknown.
    Unsure,
}

/// What can be known of an old connection's fate from a fresh one.
pub fn old_fate(old: Option<(i64, &ServerAt)>, fresh: &ServerAt) -> OldFate {
    let Some((client_id, old)) = old else {
        return OldFate::Unsure;
    };
    if old.address != fresh.address {
        return OldFate::Elsewhere;
    }
    match (&old.run_id, &fresh.run_id) {
        (Some(a), Some(b)) if a == b => OldFate::Kill(client_id),
        (Some(_), Some(_)) => OldFate::Gone,
        _ => OldFate::Unsure,
    }
}

/// Kills a connection by its client id; true once it is surely gone (killed
/// now, or gone already).
pub async fn kill(connection: &mut MultiplexedConnection, client_id: i64) -> bool {
    let killed: redis::RedisResult<Value> = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(client_id)
        .query_async(connection)
        .await;
    match killed {
        Ok(_) => true,
        // "No such client": it is gone already.
        Err(err) => err.code() == Some("ERR") && err.to_string().contains("No such client"),
    }
}

/// Which server process a connection is on (`INFO server`'s `run_id`).
pub async fn run_id(connection: &mut MultiplexedConnection) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await
        .ok()?;
    run_id_of(&info)
}

/// How long the master a failover left behind is given to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// After a failover, whether the old server can no longer run what an old
/// connection of `client_id` held: nothing listens where it was (its
/// process is gone), or another process does (it was restarted). A server
/// that answers as the same process is alive: its connection is killed
/// there, so that nothing it still holds runs later, but what it may
/// already have run on its own timeline cannot be known from here (a
/// follower of it may have delivered it), so the answer is no. One that
/// does not answer in time (paused, cut off) may run it when it comes back.
pub async fn old_server_gone(old: &ServerAt, client_id: i64) -> bool {
    let probe = async {
        match Connector::connect_to(&old.info, REPLY_TIMEOUT).await {
            Err(err) => err.is_connection_refusal(),
            Ok(mut connection) => match (run_id(&mut connection).await, &old.run_id) {
                (Some(now), Some(then)) if now != *then => true,
                (Some(_), Some(_)) => {
                    kill(&mut connection, client_id).await;
                    false
                }
                _ => false,
            },
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .unwrap_or(false)
}

/// The `run_id` of an `INFO server` reply: which server process it is.
pub fn run_id_of(info: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(address: &str, run_id: Option<&str>) -> ServerAt {
        let info: redis::ConnectionInfo = format!("redis://{address}").parse().unwrap();
        ServerAt::new(info, run_id.map(str::to_string))
    }

    #[test]
    fn a_connection_is_killed_by_id_only_on_its_own_server_process() {
        let old = at("10.0.0.1:6379", Some("aaa"));
        assert_eq!(old_fate(Some((7, &old)), &old), OldFate::Kill(7));
        // Restarted at the same address: its connections died with it.
        assert_eq!(
            old_fate(Some((7, &old)), &at("10.0.0.1:6379", Some("bbb"))),
            OldFate::Gone
        );
        // A failover moved the master: id 7 means nothing there, and the
        // old master may still run what it holds.
        assert_eq!(
            old_fate(Some((7, &old)), &at("10.0.0.2:6379", Some("aaa"))),
            OldFate::Elsewhere
        );
        assert_eq!(
            old_fate(Some((7, &old)), &at("10.0.0.1:6379", None)),
            OldFate::Unsure
        );
        assert_eq!(old_fate(None, &old), OldFate::Unsure);
    }

    #[test]
    fn the_run_id_is_read_from_info_server() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:5f3c0a\r\ntcp_port:6379\r\n";
        assert_eq!(run_id_of(info).as_deref(), Some("5f3c0a"));
        assert_eq!(run_id_of("# Server\r\n"), None);
    }
}
