//! The Lua scripts the link runs: each broadcast's append and notice, and a
//! stream's deletion, each one step on the server, so that nothing is ever
//! half done. The field names are the ones [`crate::core::stream_entry`]
//! checks.

use crate::core::stream_entry::{DATA_FIELD, EVENT_FIELD, PRODUCER_FIELD};

/// How a notice of new entries goes out: a classic `PUBLISH`, or, on a
/// Redis Cluster of Redis 7 or later, a sharded `SPUBLISH`, which the
/// cluster's bus carries only to the shard's own nodes instead of to every
/// node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Publish,
    Sharded,
}

impl Notice {
    /// The command that sends it.
    pub fn command(self) -> &'static str {
        match self {
            Notice::Publish => "PUBLISH",
            Notice::Sharded => "SPUBLISH",
        }
    }
}

/// Stands for "no event name" in the script's arguments: a name cannot hold
/// a line break.
pub const NO_EVENT: &str = "\n";

/// The script each run of broadcasts to one stream runs: `KEYS[1]` the
/// stream; `ARGV[1]` the trimming length (`0`: never); `ARGV[2]` how long
/// the stream lives after this run's last append, in ms (`0`: for ever; see
/// [`super::Retention`]), then for each broadcast its producer tag, its data and
/// its event name ([`NO_EVENT`] for none). Each append is a `pcall`, so
/// that one refused (out of memory, a wrong type) is answered as refused
/// while those before it stay appended and are answered with their ids: the
/// reply is one id or error per broadcast. If any was appended, the
/// stream's expiry is set again (`PEXPIRE`, a `pcall` too), in the same
/// script, so that no append is ever left without it. One notice of the
/// last id follows (`PUBLISH`, or `SPUBLISH`: see [`Notice`]) (also a `pcall`: the entries are appended whatever
/// becomes of the notice; a follower that misses it reads them with the
/// next one, or when it reconnects). The field names are the ones
/// [`crate::core::stream_entry`] checks.
pub fn append_script(notice: Notice) -> String {
    let publish = notice.command();
    format!(
        r"
local trim = ARGV[1] ~= '0'
local replies = {{}}
local last
for i = 3, #ARGV - 2, 3 do
  local xadd = {{'XADD', KEYS[1]}}
  if trim then
    xadd[#xadd + 1] = 'MAXLEN'
    xadd[#xadd + 1] = '~'
    xadd[#xadd + 1] = ARGV[1]
  end
  xadd[#xadd + 1] = '*'
  xadd[#xadd + 1] = '{DATA_FIELD}'
  xadd[#xadd + 1] = ARGV[i + 1]
  if ARGV[i + 2] ~= '\n' then
    xadd[#xadd + 1] = '{EVENT_FIELD}'
    xadd[#xadd + 1] = ARGV[i + 2]
  end
  xadd[#xadd + 1] = '{PRODUCER_FIELD}'
  xadd[#xadd + 1] = ARGV[i]
  local reply = redis.pcall(unpack(xadd))
  replies[#replies + 1] = reply
  if type(reply) == 'string' then last = reply end
end
if last and ARGV[2] ~= '0' then redis.pcall('PEXPIRE', KEYS[1], ARGV[2]) end
if last then redis.pcall('{publish}', KEYS[1], last) end
return replies
"
    )
}

/// The script that deletes a stream (`KEYS[1]`): it answers how many keys
/// it deleted (`0`: there was none), and refuses a key of another type, so
/// that a channel named after someone else's key never deletes it. Once
/// deleted, it publishes [`DELETED_NOTICE`] and the newest id the stream
/// had on the stream's notice channel.
pub fn delete_script(notice: Notice) -> String {
    let publish = notice.command();
    format!(
        r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return 0 end
if kind ~= 'stream' then
  return redis.error_reply('WRONGTYPE the key holds a ' .. kind .. ', not a stream: it was not deleted')
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = '0-0'
if newest[1] then last = newest[1][1] end
redis.call('DEL', KEYS[1])
redis.pcall('{publish}', KEYS[1], '{DELETED_NOTICE}' .. last)
return 1
"
    )
}

/// What a notice that a stream was deleted starts with; the newest id it
/// had follows.
pub const DELETED_NOTICE: &str = "deleted ";
