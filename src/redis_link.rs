//! A channel's link to a Redis Stream, so that one channel spans processes
//! and hosts. Three connections, each with one job, so that none waits
//! behind another's work:
//!
//! - **The publisher**: one task takes broadcasts from a queue, in call
//!   order, and sends each run of them as one pipeline of `XADD`s on its own
//!   connection. Redis runs a connection's commands in order, so stream
//!   order is call order, in every process. Each broadcast learns its fate
//!   truthfully: appended (with its id), not appended (Redis refused it, or
//!   could not be reached: retrying is safe), or unknown (the pipeline was
//!   sent and the reply lost: retrying may duplicate).
//! - **The reader**: a task follows the stream with `XREAD BLOCK` from the
//!   last id it saw, reconnecting with backoff; each batch is checked and
//!   encoded here, off the JavaScript thread ([`crate::stream_entry`]), and
//!   handed over through a weak thread-safe function. It finds a stream that
//!   went back (its newest id behind the reader's) and goes on from its end,
//!   saying so; an error that retrying will not heal (no permission, a key
//!   of another type) is handed over too, once per run of failures.
//! - **Pages**: a resuming client's backlog is read with `XRANGE … COUNT`,
//!   one page at a time, as the client takes them, each read from the entry
//!   the last one ended with, which proves nothing between was removed.
//!
//! Everything said about the server names it without the userinfo of its
//! URL: passwords never reach a message.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Function, PromiseRaw};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::{error, internal, Code, Result};
use crate::stop_binding::stop_keys;
use crate::stream_entry::{Page, RawFields, StreamId};

/// How long one XREAD waits for new entries before asking again.
const BLOCK_MS: u64 = 2_000;
/// Entries the reader takes at most per XREAD.
const READ_COUNT: usize = 1_000;
/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a pipeline of XADDs or a page read may wait for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Broadcasts sent in one pipeline at most, and their bytes.
const PIPELINE_MAX: usize = 1_000;
const PIPELINE_BYTES: usize = 1 << 20;
/// Bytes of broadcasts waiting for the publisher at most; past it,
/// `broadcast` is refused at once (not appended).
#[napi]
pub const MAX_PENDING_PUBLISH_BYTES: u32 = 64 << 20;
/// Entries a stream is trimmed to (about), unless the channel says otherwise.
#[napi]
pub const DEFAULT_STREAM_MAX_LEN: u32 = 10_000;
/// How long a resuming client waits for the stream reader to start before
/// its stream is ended (it comes back later), in ms.
#[napi]
pub const RESUME_WAIT_MS: u32 = 10_000;
/// The key through which processes on one Redis share the stop-token key.
const STOP_KEY_NAME: &str = "native-sse:stop-key";

/// The codes of a broadcast's fate, as JavaScript's `err.code`.
const NOT_APPENDED: &str = "ERR_SSE_REDIS_NOT_APPENDED";
const OUTCOME_UNKNOWN: &str = "ERR_SSE_REDIS_OUTCOME_UNKNOWN";

/// TLS material for `rediss://`, in PEM, as Node's `tls.connect` takes it.
#[napi(object)]
pub struct RedisTls {
    pub ca: Option<Buffer>,
    pub cert: Option<Buffer>,
    pub key: Option<Buffer>,
}

/// A broadcast that was not appended, or whose fate is unknown.
#[napi(object)]
pub struct PublishFailure {
    /// Its place in the batch's `ids`.
    pub index: u32,
    /// One of the two codes above.
    pub code: String,
    pub reason: String,
}

/// The fate of a run of broadcasts, in the order they were queued: one
/// call back into JavaScript per pipeline, not one per broadcast.
#[napi(object)]
pub struct PublishBatch {
    /// Each broadcast's stream id; `""` where it failed.
    pub ids: Vec<String>,
    pub failures: Option<Vec<PublishFailure>>,
}

impl PublishBatch {
    fn new(len: usize) -> Self {
        PublishBatch {
            ids: Vec::with_capacity(len),
            failures: None,
        }
    }

    fn appended(&mut self, id: String) {
        self.ids.push(id);
    }

    fn failed(&mut self, code: &str, reason: String) {
        self.failures
            .get_or_insert_with(Vec::new)
            .push(PublishFailure {
                index: self.ids.len() as u32,
                code: code.to_string(),
                reason,
            });
        self.ids.push(String::new());
    }
}

/// Entries read from the stream, checked and encoded; see [`Page`]. Handed
/// to JavaScript whole, and from there to the channel, without crossing
/// entry by entry.
#[napi]
pub struct StreamPage {
    pub(crate) page: Page,
    /// Why the stream could not be read (then the page is empty).
    failure: Option<String>,
    /// The failure will not heal by retrying: no permission, a key of
    /// another type, a command the server does not know.
    lasting: bool,
    /// The id read after is not in the stream any more: entries were
    /// trimmed or deleted between it and this page.
    trimmed: bool,
    /// The live reader found the stream behind the last id it had read (a
    /// new or restored Redis, a clock behind): that id. It goes on from
    /// `last`.
    rewound_from: Option<StreamId>,
}

impl StreamPage {
    fn of(page: Page) -> Self {
        StreamPage {
            page,
            failure: None,
            lasting: false,
            trimmed: false,
            rewound_from: None,
        }
    }

    /// An empty page naming where reading goes on.
    fn at(last: StreamId) -> Self {
        StreamPage::of(Page {
            last: Some(last),
            ..Page::default()
        })
    }

    fn failed(reason: String, lasting: bool) -> Self {
        StreamPage {
            failure: Some(reason),
            lasting,
            ..StreamPage::of(Page::default())
        }
    }
}

#[napi]
impl StreamPage {
    /// The id reading goes on after, or `null` if none was read.
    #[napi(getter)]
    pub fn last(&self) -> Option<String> {
        self.page.last.map(|id| id.to_string())
    }

    /// The id of the last entry that can be delivered, or `null`.
    #[napi(getter)]
    pub fn last_entry(&self) -> Option<String> {
        self.page.entries.last().map(|entry| entry.id.to_string())
    }

    /// How many entries were read, good or skipped.
    #[napi(getter)]
    pub fn read(&self) -> u32 {
        self.page.read as u32
    }

    /// The bytes of the entries that can be delivered, as frames.
    #[napi(getter)]
    pub fn bytes(&self) -> f64 {
        self.page
            .entries
            .iter()
            .map(|e| e.frame.len())
            .sum::<usize>() as f64
    }

    #[napi(getter)]
    pub fn trimmed(&self) -> bool {
        self.trimmed
    }

    /// Why the stream could not be read, or `null`.
    #[napi(getter)]
    pub fn failure(&self) -> Option<String> {
        self.failure.clone()
    }

    /// Whether the failure will not heal by retrying.
    #[napi(getter)]
    pub fn lasting(&self) -> bool {
        self.lasting
    }

    /// The id the stream went back from, or `null`.
    #[napi(getter)]
    pub fn rewound_from(&self) -> Option<String> {
        self.rewound_from.map(|id| id.to_string())
    }

    /// The entries skipped, `[id, reason, id, reason, …]`.
    #[napi]
    pub fn skipped(&self) -> Vec<String> {
        self.page
            .skipped
            .iter()
            .flat_map(|(id, reason)| [id.clone(), reason.to_string()])
            .collect()
    }
}

type PageCallback = ThreadsafeFunction<StreamPage, (), StreamPage, Status, false, true>;
type OutcomeCallback = ThreadsafeFunction<PublishBatch, (), PublishBatch, Status, false, true>;

enum Request {
    Publish {
        data: String,
        event: Option<String>,
    },
    /// Resolves once the publisher is connected, or with why it is not.
    Ready(oneshot::Sender<std::result::Result<(), String>>),
}

impl Request {
    fn size(&self) -> usize {
        match self {
            Request::Publish { data, event, .. } => {
                data.len() + event.as_ref().map_or(0, String::len)
            }
            Request::Ready(_) => 0,
        }
    }
}

/// The URL without its userinfo, query or fragment: how the server is named
/// in every message.
fn server_name(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

/// Opens connections to one server.
#[derive(Clone)]
struct Connector {
    client: redis::Client,
}

/// What the publisher tells the reader before the reader has started. The
/// reader starts at the stream's end when it first connects; had it started
/// after this process's first broadcasts were appended, its own subscribers
/// would miss them, so it starts before the first of them instead, and
/// waits for the reply of a pipeline in flight to learn that id.
#[derive(Default)]
struct StartLine {
    reader_started: bool,
    /// A pipeline was sent before the reader started and has no reply yet.
    in_flight: bool,
    first_published: Option<StreamId>,
    /// The last id the reader has read.
    read_to: Option<StreamId>,
    /// The first id this process appended that was not past what the
    /// reader had read before the XADD went out: the stream went back.
    rewound_at: Option<StreamId>,
}

impl StartLine {
    /// Notes the ids a pipeline appended, given what the reader had read
    /// before it went out. Redis gives each new entry an id past the
    /// stream's last: one that is not past `read_before` means the stream
    /// went back (a new Redis, a restore, a clock behind).
    fn appended(&mut self, read_before: Option<StreamId>, first: StreamId) {
        if !self.reader_started && self.first_published.is_none() {
            self.first_published = Some(first);
        }
        if read_before.is_some_and(|read| first <= read) && self.rewound_at.is_none() {
            self.rewound_at = Some(first);
        }
    }
}

impl StartLine {
    /// Where the reader starts, given the stream's end as it read it; `None`
    /// while a pipeline is in flight (ask again shortly).
    fn reader_start(&mut self, end: StreamId) -> Option<StreamId> {
        if self.in_flight {
            return None;
        }
        self.reader_started = true;
        Some(match self.first_published {
            Some(first) => end.min(first.before()),
            None => end,
        })
    }
}

type SharedStart = Arc<std::sync::Mutex<StartLine>>;

fn lock(start: &SharedStart) -> std::sync::MutexGuard<'_, StartLine> {
    start
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Connector {
    async fn connect(&self, reply_timeout: Duration) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(reply_timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

#[napi]
pub struct RedisLink {
    connector: Connector,
    stream: String,
    server: String,
    /// The publisher's queue; `None` once closed.
    requests: Option<mpsc::UnboundedSender<Request>>,
    pending: Arc<AtomicUsize>,
    start: SharedStart,
    reader: Option<tokio::task::AbortHandle>,
    /// The connection for pages, opened on first use and again after a
    /// failure.
    pages: Arc<tokio::sync::Mutex<Option<MultiplexedConnection>>>,
}

#[napi]
impl RedisLink {
    /// Makes the link and starts its publisher; nothing is connected yet
    /// (see [`RedisLink::ready`]). Fails (`InvalidArg`) only for a URL or TLS
    /// material that cannot be used.
    /// `on_outcomes` is called with every pipeline's [`PublishBatch`],
    /// through a weak thread-safe function: JavaScript keeps the process
    /// alive while broadcasts are pending.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        url: String,
        stream: String,
        max_len: u32,
        tls: Option<RedisTls>,
        on_outcomes: Function<PublishBatch, ()>,
    ) -> Result<Self> {
        // rustls needs a process-wide crypto provider; another addon may have
        // installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = server_name(&url);
        let client = match tls {
            None => redis::Client::open(url.as_str()),
            Some(tls) => {
                let client_tls = match (tls.cert, tls.key) {
                    (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                        client_cert: cert.to_vec(),
                        client_key: key.to_vec(),
                    }),
                    _ => None,
                };
                redis::Client::build_with_tls(
                    url.as_str(),
                    redis::TlsCertificates {
                        client_tls,
                        root_cert: tls.ca.map(|ca| ca.to_vec()),
                    },
                )
            }
        }
        .map_err(|err| error(Code::RedisConfig, format!("{} ({server})", err.category())))?;
        let connector = Connector { client };
        let outcomes: OutcomeCallback = on_outcomes
            .build_threadsafe_function::<PublishBatch>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()
            .map_err(internal)?;
        let (requests, queue) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let start = SharedStart::default();
        napi::bindgen_prelude::spawn(publish_loop(
            Publisher {
                connector: connector.clone(),
                stream: stream.clone(),
                max_len,
                server: server.clone(),
                start: start.clone(),
                outcomes,
            },
            queue,
            pending.clone(),
        ));
        Ok(RedisLink {
            connector,
            stream,
            server,
            requests: Some(requests),
            pending,
            start,
            reader: None,
            pages: Arc::default(),
        })
    }

    /// The server, named without userinfo.
    #[napi(getter)]
    pub fn server(&self) -> String {
        self.server.clone()
    }

    /// Resolves to `null` once the publisher is connected, or to why it
    /// could not connect.
    #[napi(catch_unwind)]
    pub fn ready<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let (reply, outcome) = oneshot::channel();
        let closed = self.send(Request::Ready(reply)).is_err();
        env.spawn_future(async move {
            if closed {
                return Ok(Some("The channel is closed".to_string()));
            }
            Ok(match outcome.await {
                Ok(Ok(())) => None,
                Ok(Err(reason)) => Some(reason),
                Err(_) => Some("The channel is closed".to_string()),
            })
        })
    }

    /// Queues an event for the stream, behind every earlier one; its fate
    /// comes back in a [`PublishBatch`], in queue order. Returns why it was
    /// refused at once (not appended), or `None` once queued. The caller has
    /// checked the event.
    pub(crate) fn enqueue(&self, data: String, event: Option<String>) -> Option<String> {
        let request = Request::Publish { data, event };
        let size = request.size();
        if self.pending.load(Ordering::Relaxed) + size > MAX_PENDING_PUBLISH_BYTES as usize {
            return Some(format!(
                "More than {} MiB of broadcasts are waiting for Redis",
                MAX_PENDING_PUBLISH_BYTES >> 20
            ));
        }
        self.pending.fetch_add(size, Ordering::Relaxed);
        match self.send(request) {
            Ok(()) => None,
            Err(()) => {
                self.pending.fetch_sub(size, Ordering::Relaxed);
                Some("The channel is closed".to_string())
            }
        }
    }

    /// Reads up to `count` entries after `after` (a stream id), checking
    /// whether the stream was trimmed past it. When Redis cannot be read,
    /// the page is empty and says why in `failure`.
    #[napi]
    pub async fn read_page(&self, after: String, count: u32) -> napi::Result<StreamPage> {
        // JavaScript reads after stream ids only; anything else reads nothing.
        let Some(after) = StreamId::parse(&after) else {
            return Ok(StreamPage::of(Page::default()));
        };
        Ok(match self.read_after(after, count).await {
            Ok((read, continuous)) => StreamPage {
                trimmed: !continuous,
                ..StreamPage::of(read)
            },
            Err(err) => StreamPage::failed(
                format!("Cannot read (XRANGE) from Redis at {}: {err}", self.server),
                lasting(&err),
            ),
        })
    }

    /// Starts following the stream from its current end. `on_page` first
    /// gets an empty page whose `last` is that end, then every batch.
    #[napi(catch_unwind)]
    pub fn start_reading(&mut self, on_page: Function<StreamPage, ()>) -> Result<()> {
        let callback: PageCallback = on_page
            .build_threadsafe_function::<StreamPage>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()
            .map_err(internal)?;
        let task = napi::bindgen_prelude::spawn(follow(Reader {
            connector: self.connector.clone(),
            stream: self.stream.clone(),
            server: self.server.clone(),
            start: self.start.clone(),
            callback,
        }));
        if let Some(previous) = self.reader.replace(task.abort_handle()) {
            previous.abort();
        }
        Ok(())
    }

    /// Stops the reader and the publisher (once what is queued has gone).
    #[napi(catch_unwind)]
    pub fn close(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        self.requests = None;
    }

    fn send(&self, request: Request) -> std::result::Result<(), ()> {
        match &self.requests {
            Some(requests) => requests.send(request).map_err(|_| ()),
            None => Err(()),
        }
    }
}

impl RedisLink {
    /// One page after `after`, and whether it follows on from `after`: the
    /// page is read from `after` itself, which must still be there. Streams
    /// lose entries only from the front (trimming) or all at once (`DEL`),
    /// so while `after` is there nothing after it has gone.
    async fn read_after(&self, after: StreamId, count: u32) -> redis::RedisResult<(Page, bool)> {
        let mut guard = self.pages.lock().await;
        if guard.is_none() {
            *guard = Some(self.connector.connect(REPLY_TIMEOUT).await?);
        }
        let connection = guard.as_mut().expect("connected above");
        let reply: Value = match redis::cmd("XRANGE")
            .arg(&self.stream)
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

/// Whether a Redis error will come back however often the command is
/// retried: no permission (an ACL), a key of another type, a command the
/// server does not know or that a cluster node sends elsewhere, failed
/// authentication. Everything else (a lost connection, a timeout, a
/// loading or busy server) may heal, and is retried with backoff.
fn lasting(err: &redis::RedisError) -> bool {
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

impl Drop for RedisLink {
    fn drop(&mut self) {
        self.close();
    }
}

/// The entries of an XRANGE or XREAD reply, RESP2 or RESP3: `(id, fields)`.
fn entries_of(value: Value) -> Vec<(String, RawFields)> {
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

/// The entries of an XREAD reply (one stream asked for).
fn xread_entries(value: Value) -> Vec<(String, RawFields)> {
    match value {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .flat_map(entries_of)
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries)| entries_of(entries))
            .collect(),
        _ => Vec::new(),
    }
}

/// Shares the stop-token key through Redis: the first process to get here
/// sets it, every process adds it. A Redis that refuses (an ACL) leaves
/// tokens verifiable by their own process only.
async fn share_stop_key(connection: &mut MultiplexedConnection) {
    let mut mine = [0u8; 32];
    crate::stop::random_bytes(&mut mine);
    let mine = crate::stop::hex(&mine);
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
        if key.len() >= crate::stop::MIN_KEY_LEN {
            stop_keys().add_shared(&key);
        }
    }
}

/// What the publisher works with.
struct Publisher {
    connector: Connector,
    stream: String,
    max_len: u32,
    server: String,
    start: SharedStart,
    outcomes: OutcomeCallback,
}

/// The publisher: one task, one connection, broadcasts in call order.
async fn publish_loop(
    publisher: Publisher,
    mut queue: mpsc::UnboundedReceiver<Request>,
    pending: Arc<AtomicUsize>,
) {
    let Publisher {
        connector,
        stream,
        max_len,
        server,
        start,
        outcomes,
    } = publisher;
    let mut connection: Option<MultiplexedConnection> = None;
    // After a failed connect, requests are refused at once until this
    // instant, rather than each trying again.
    let mut down: Option<(Instant, String)> = None;
    let mut backoff = BACKOFF_START;
    while let Some(first) = queue.recv().await {
        let mut bytes = first.size();
        let mut batch = vec![first];
        while batch.len() < PIPELINE_MAX && bytes < PIPELINE_BYTES {
            match queue.try_recv() {
                Ok(request) => {
                    bytes += request.size();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        pending.fetch_sub(bytes, Ordering::Relaxed);
        if connection.is_none() {
            let refused = match &down {
                Some((until, reason)) if Instant::now() < *until => Some(reason.clone()),
                _ => match connector.connect(REPLY_TIMEOUT).await {
                    Ok(mut fresh) => {
                        share_stop_key(&mut fresh).await;
                        connection = Some(fresh);
                        down = None;
                        backoff = BACKOFF_START;
                        None
                    }
                    Err(err) => {
                        let reason = format!("Cannot connect to Redis at {server}: {err}");
                        down = Some((Instant::now() + backoff, reason.clone()));
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        Some(reason)
                    }
                },
            };
            if let Some(reason) = refused {
                let mut fates = PublishBatch::new(batch.len());
                fail_all(batch, NOT_APPENDED, &reason, &mut fates);
                report(&outcomes, fates);
                continue;
            }
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for request in &batch {
            match request {
                Request::Publish { data, event, .. } => {
                    let command = pipe.cmd("XADD").arg(&stream);
                    if max_len > 0 {
                        command.arg("MAXLEN").arg("~").arg(max_len);
                    }
                    command
                        .arg("*")
                        .arg(crate::stream_entry::DATA_FIELD)
                        .arg(data);
                    if let Some(event) = event {
                        command.arg(crate::stream_entry::EVENT_FIELD).arg(event);
                    }
                }
                Request::Ready(_) => {
                    pipe.cmd("PING");
                }
            }
        }
        let read_before = {
            let mut start = lock(&start);
            start.in_flight = !start.reader_started;
            start.read_to
        };
        let sent = pipe
            .query_async::<Vec<Value>>(connection.as_mut().expect("connected above"))
            .await;
        lock(&start).in_flight = false;
        let replies = match sent {
            Ok(replies) if replies.len() == batch.len() => Ok(replies),
            Ok(_) => Err("Redis answered a pipeline with the wrong number of replies".to_string()),
            Err(err) => Err(err.to_string()),
        };
        let mut fates = PublishBatch::new(batch.len());
        match replies {
            Ok(replies) => {
                let first = replies.iter().find_map(|reply| match reply {
                    Value::BulkString(id) => std::str::from_utf8(id).ok().and_then(StreamId::parse),
                    _ => None,
                });
                if let Some(first) = first {
                    lock(&start).appended(read_before, first);
                }
                for (request, reply) in batch.into_iter().zip(replies) {
                    match request {
                        Request::Publish { .. } => match reply {
                            Value::BulkString(id) => {
                                fates.appended(String::from_utf8_lossy(&id).into_owned())
                            }
                            Value::SimpleString(id) => fates.appended(id),
                            // Redis refused this command (out of memory, a
                            // wrong type, an ACL): it was not appended.
                            Value::ServerError(err) => fates.failed(
                                NOT_APPENDED,
                                format!("Redis at {server} refused it: {err}"),
                            ),
                            other => fates.failed(
                                OUTCOME_UNKNOWN,
                                format!("Redis at {server} answered XADD with {other:?}"),
                            ),
                        },
                        Request::Ready(to) => {
                            let _ = to.send(Ok(()));
                        }
                    }
                }
            }
            Err(reason) => {
                // The pipeline went out (in part, at least) and no reply came
                // back: Redis may have appended any of it.
                connection = None;
                let reason = format!("Lost the reply of Redis at {server}: {reason}");
                fail_all(batch, OUTCOME_UNKNOWN, &reason, &mut fates);
            }
        }
        report(&outcomes, fates);
    }
}

/// Every request of a run fails alike: its broadcasts with `code`, its
/// readiness checks with the reason.
fn fail_all(batch: Vec<Request>, code: &str, reason: &str, fates: &mut PublishBatch) {
    for request in batch {
        match request {
            Request::Publish { .. } => fates.failed(code, reason.to_string()),
            Request::Ready(reply) => {
                let _ = reply.send(Err(reason.to_string()));
            }
        }
    }
}

/// Hands the fates of a pipeline's broadcasts to JavaScript (if it had any).
fn report(outcomes: &OutcomeCallback, fates: PublishBatch) {
    if !fates.ids.is_empty() {
        outcomes.call(fates, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// What the reader works with.
struct Reader {
    connector: Connector,
    stream: String,
    server: String,
    start: SharedStart,
    callback: PageCallback,
}

/// The newest id of a stream (`0-0` when it is empty or missing).
async fn newest_id(
    connection: &mut MultiplexedConnection,
    stream: &str,
) -> redis::RedisResult<StreamId> {
    let newest: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(connection)
        .await?;
    Ok(entries_of(newest)
        .first()
        .and_then(|(id, _)| StreamId::parse(id))
        .unwrap_or_default())
}

impl Reader {
    /// Hands a page to JavaScript; false once JavaScript is gone.
    fn hand(&self, page: StreamPage) -> bool {
        self.callback
            .call(page, ThreadsafeFunctionCallMode::NonBlocking)
            != Status::Closing
    }

    /// Says why the stream cannot be read, if retrying will not help, once
    /// per run of failures (`failing` says whether it was said).
    fn failed(&self, failing: &mut bool, command: &str, err: &redis::RedisError) {
        if !lasting(err) || *failing {
            return;
        }
        *failing = true;
        let reason = format!(
            "Cannot read the stream (\"{command}\") from Redis at {}: {err}",
            self.server
        );
        self.hand(StreamPage::failed(reason, true));
    }

    /// Notes that the reader has read up to `id`: its own `last`, and the
    /// publisher's guide to a stream that went back.
    fn read_to(&self, last: &mut Option<StreamId>, id: StreamId) {
        *last = Some(id);
        lock(&self.start).read_to = Some(id);
    }

    /// Where reading goes on after the stream went back: the stream's end,
    /// or earlier, before the first entry this process appended after it
    /// went back, so that nothing appended since is missed.
    fn rewind(&self, last: StreamId, newest: StreamId) -> Option<StreamId> {
        let hint = lock(&self.start).rewound_at.take();
        let back = match hint {
            Some(first) => Some(first.before().min(newest)),
            None => (newest < last).then_some(newest),
        }?;
        let mut page = StreamPage::at(back);
        page.rewound_from = Some(last);
        self.hand(page);
        Some(back)
    }
}

/// The reader: XREAD in a loop from the last id seen, reconnecting with
/// backoff whenever Redis fails. After every reconnect, and whenever a
/// read finds nothing new, it compares the stream's newest id with its
/// own: a stream that went back is followed on from its end (see
/// [`Reader::rewind`]), never waited on until its ids pass the old ones.
async fn follow(reader: Reader) {
    let mut last: Option<StreamId> = None;
    let mut backoff = BACKOFF_START;
    // A lasting failure was reported and nothing has been read since.
    let mut failing = false;
    let mut retry = false;
    loop {
        if retry {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        retry = true;
        let mut connection = match reader
            .connector
            .connect(Duration::from_millis(BLOCK_MS) + REPLY_TIMEOUT)
            .await
        {
            Ok(connection) => connection,
            Err(err) => {
                reader.failed(&mut failing, "AUTH", &err);
                continue;
            }
        };
        // Where the stream ends now, named by id, so that a restart of
        // Redis before the first entry loses nothing.
        let newest = match newest_id(&mut connection, &reader.stream).await {
            Ok(newest) => newest,
            Err(err) => {
                reader.failed(&mut failing, "XREVRANGE", &err);
                continue;
            }
        };
        let mut from = match last {
            None => {
                let at = loop {
                    if let Some(at) = lock(&reader.start).reader_start(newest) {
                        break at;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                };
                if !reader.hand(StreamPage::at(at)) {
                    return;
                }
                at
            }
            Some(seen) => match reader.rewind(seen, newest) {
                Some(back) => back,
                None => {
                    // Readable again: said with an empty page.
                    if failing && !reader.hand(StreamPage::at(seen)) {
                        return;
                    }
                    seen
                }
            },
        };
        failing = false;
        reader.read_to(&mut last, from);
        backoff = BACKOFF_START;
        loop {
            let reply: redis::RedisResult<Value> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&reader.stream)
                .arg(from.to_string())
                .query_async(&mut connection)
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(err) => {
                    reader.failed(&mut failing, "XREAD", &err);
                    break; // reconnect
                }
            };
            let mut page = Page::default();
            for (id, fields) in xread_entries(reply) {
                page.add(&id, &fields);
            }
            let read = page.read;
            if read > 0 {
                // Entries whose ids do not parse: a broken server. Back off
                // rather than spin on them.
                let Some(read_to) = page.last else {
                    break;
                };
                from = read_to;
                reader.read_to(&mut last, from);
                if !reader.hand(StreamPage::of(page)) {
                    return;
                }
            }
            // Nothing new, or this process appended behind what was read:
            // has the stream gone back?
            let hinted = lock(&reader.start).rewound_at.is_some();
            if read == 0 || hinted {
                let newest = match newest_id(&mut connection, &reader.stream).await {
                    Ok(newest) => newest,
                    Err(err) => {
                        reader.failed(&mut failing, "XREVRANGE", &err);
                        break;
                    }
                };
                if let Some(back) = reader.rewind(from, newest) {
                    from = back;
                    reader.read_to(&mut last, from);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_starts_before_this_process_first_broadcast() {
        let end = StreamId { ms: 10, seq: 0 };
        assert_eq!(StartLine::default().reader_start(end), Some(end));
        let mut published = StartLine {
            first_published: Some(StreamId { ms: 7, seq: 3 }),
            ..StartLine::default()
        };
        assert_eq!(
            published.reader_start(end),
            Some(StreamId { ms: 7, seq: 2 })
        );
        assert!(published.reader_started);
        let mut later = StartLine {
            first_published: Some(StreamId { ms: 12, seq: 0 }),
            ..StartLine::default()
        };
        assert_eq!(later.reader_start(end), Some(end));
        let mut waiting = StartLine {
            in_flight: true,
            ..StartLine::default()
        };
        assert_eq!(waiting.reader_start(end), None);
        assert!(!waiting.reader_started);
    }

    #[test]
    fn an_append_not_past_what_was_read_means_the_stream_went_back() {
        let read = StreamId { ms: 50, seq: 0 };
        let mut line = StartLine {
            reader_started: true,
            ..StartLine::default()
        };
        line.appended(Some(read), StreamId { ms: 51, seq: 0 });
        assert_eq!(line.rewound_at, None);
        line.appended(None, StreamId { ms: 1, seq: 0 });
        assert_eq!(line.rewound_at, None, "nothing read yet: no guide");
        line.appended(Some(read), StreamId { ms: 50, seq: 0 });
        assert_eq!(line.rewound_at, Some(StreamId { ms: 50, seq: 0 }));
        // The first such id is kept: the reader goes on from before it.
        line.appended(Some(read), StreamId { ms: 20, seq: 0 });
        assert_eq!(line.rewound_at, Some(StreamId { ms: 50, seq: 0 }));
    }

    #[test]
    fn servers_are_named_without_secrets() {
        assert_eq!(
            server_name("redis://user:s3cret-pass@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            server_name("rediss://:pw@cache.example:6380/?protocol=resp3#x"),
            "rediss://cache.example:6380/"
        );
        assert!(!server_name("not a url with pw").contains("pw"));
    }

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
        let resp2 = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"s".to_vec()),
            entries.clone(),
        ])]);
        let resp3 = Value::Map(vec![(Value::BulkString(b"s".to_vec()), entries)]);
        assert_eq!(xread_entries(resp2), got);
        assert_eq!(xread_entries(resp3), got);
        assert!(xread_entries(Value::Nil).is_empty());
    }
}
