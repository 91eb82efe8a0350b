//! Redis Cluster: which master holds a stream, and the map of the slots.
//!
//! A cluster splits its keys over 16,384 hash slots, each held by one
//! master. The link to a cluster is a link per master (each what a link to
//! one server is: a publisher, a follower and pages, on connections to that
//! master), and a stream's requests go to the master of its slot. So a
//! stream's broadcasts are still one queue, in call order, and a master that
//! fails stops only the channels of its slots.
//!
//! A cluster URL ([`super::deployment`]) lists nodes to ask for the map
//! (`CLUSTER SLOTS`); the first that answers gives it. A
//! stream's slot is that of its key, or of the part of it between the first
//! `{` and the next `}` (a hash tag), as Redis computes it.
//!
//! Plain Rust and tokio; the slot function and the reading of the map are
//! covered by `cargo test`.

use redis::Value;

use super::connector::Connector;
use super::deployment::{Cluster, Deployment};
use super::REPLY_TIMEOUT;

/// Hash slots in a cluster.
pub const SLOTS: u16 = 16384;

/// The slot of a key, as Redis computes it (CRC16-XMODEM of the key, or of
/// its hash tag, modulo 16,384).
pub fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A range of slots and the master that holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    /// `host:port` of the master.
    pub master: String,
}

/// Asks the listed nodes, in turn, for the map of the slots.
pub async fn discover(cluster: &Cluster) -> Result<Vec<SlotRange>, String> {
    let mut last = String::new();
    for node in &cluster.nodes {
        let asked = async {
            let server = Deployment::Server(cluster.node_url(node));
            let connector = Connector::new(&server, None).map_err(|err| err.to_string())?;
            let mut connection = connector
                .connect(REPLY_TIMEOUT)
                .await
                .map_err(|err| err.to_string())?;
            let reply: Value = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut connection)
                .await
                .map_err(|err| err.to_string())?;
            ranges_of(&reply, node)
        };
        match asked.await {
            Ok(ranges) => return Ok(ranges),
            Err(err) => last = format!("{node}: {err}"),
        }
    }
    Err(format!("no node of the cluster gave its slots ({last})"))
}

/// The ranges of a `CLUSTER SLOTS` reply; a master named with an empty
/// host is the node asked (`asked`'s host).
fn ranges_of(reply: &Value, asked: &str) -> Result<Vec<SlotRange>, String> {
    let int = |v: &Value| match v {
        Value::Int(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let Value::Array(items) = reply else {
        return Err(format!("CLUSTER SLOTS answered {reply:?}"));
    };
    let asked_host = asked.rsplit_once(':').map_or(asked, |(host, _)| host);
    let mut ranges = Vec::new();
    for item in items {
        let Value::Array(parts) = item else {
            return Err(format!("CLUSTER SLOTS gave {item:?}"));
        };
        let (Some(start), Some(end), Some(Value::Array(master))) = (
            parts.first().and_then(int),
            parts.get(1).and_then(int),
            parts.get(2),
        ) else {
            return Err(format!("CLUSTER SLOTS gave {item:?}"));
        };
        let host = master.first().and_then(text).unwrap_or_default();
        let port = master.get(1).and_then(int);
        let (Some(port), true) = (port, start <= end && end < SLOTS) else {
            return Err(format!("CLUSTER SLOTS gave {item:?}"));
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_string()
        } else {
            host
        };
        ranges.push(SlotRange {
            start,
            end,
            master: format!("{host}:{port}"),
        });
    }
    if ranges.is_empty() {
        return Err("the cluster has no slots assigned".into());
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_own() {
        // Values from Redis's CLUSTER KEYSLOT.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
        assert_eq!(slot_of(b"123456789"), 12739);
        // A hash tag: only the part between the first braces counts.
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
    }

    #[test]
    fn the_map_of_the_slots_is_read_from_cluster_slots() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("", 7001)]),
        ]);
        assert_eq!(
            ranges_of(&reply, "10.0.0.9:7001").unwrap(),
            vec![
                SlotRange {
                    start: 0,
                    end: 5460,
                    master: "127.0.0.1:7000".into()
                },
                SlotRange {
                    start: 5461,
                    end: 16383,
                    master: "10.0.0.9:7001".into()
                },
            ]
        );
        assert!(ranges_of(&Value::Array(vec![]), "h:1").is_err());
    }
}
