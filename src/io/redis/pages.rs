//! Pages of the stream for resuming clients: `XRANGE … COUNT`, one page at a
//! time as the client takes them, on a connection of their own so that a
//! large resume never delays the publisher or the live reader.

use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::Mutex;

use super::replies::entries_of;
use super::{Connector, REPLY_TIMEOUT};
use crate::core::stream_entry::{Page, StreamId};

/// The connection for pages, opened on first use and again after a failure.
#[derive(Default)]
pub struct Pages {
    connection: Mutex<Option<MultiplexedConnection>>,
}

impl Pages {
    /// One page after `after`, and whether it follows on from `after`: the
    /// page is read from `after` itself, which must still be there. Streams
    /// lose entries only from the front (trimming) or all at once (`DEL`),
    /// so while `after` is there nothing after it has gone.
    pub async fn read_after(
        &self,
        connector: &Connector,
        stream: &str,
        after: StreamId,
        count: u32,
    ) -> redis::RedisResult<(Page, bool)> {
        let mut guard = self.connection.lock().await;
        let connection = match guard.as_mut() {
            Some(connection) => connection,
            None => guard.insert(connector.connect(REPLY_TIMEOUT).await?),
        };
        let reply: Value = match redis::cmd("XRANGE")
            .arg(stream)
            .arg(after.to_string())
            .arg("+")
            .arg("COUNT")
            .arg(u64::from(count.max(1)) + 1)
            .query_async(connection)
            .await
        {
            Ok(reply) => reply,
            Err(err) => {
                *guard = None;
                return Err(err);
            }
        };
        drop(guard);
        let mut entries = entries_of(reply).into_iter().peekable();
        let continuous = entries
            .next_if(|(id, _)| StreamId::parse(id) == Some(after))
            .is_some();
        let mut page = Page::default();
        for (id, fields) in entries {
            page.add(&id, &fields);
        }
        Ok((page, continuous))
    }
}
