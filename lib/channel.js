'use strict';

const native = require('./native.js');
const outbox = require('./outbox.js');
const { EventEndpoint } = require('./endpoint.js');
const { optionalString, requiredString } = require('./options.js');
const { checkId, largest, handled, invalid, invalidValue, withCode, fromNative, publishError } = require('./errors.js');
const reports = require('./reports.js');
const { kSlot, kJoin, kLeave, kAbort, kDrop, kLastId, kWhenWritable, kRoom, nextSequence } = require('./internal.js');

const BROADCAST_NAMES = { data: 'data', event: 'options.event', id: 'options.id' };
const REDIS_PROTOCOLS = new Set(['redis:', 'rediss:', 'redis+unix:', 'unix:']);
const noop = () => {};

function incompleteEventOf(name) {
  if (name === undefined || name === null) return null;
  requiredString('options.incompleteEvent', name);
  if (name === '' || /[\r\n]/.test(name)) {
    throw invalidValue('options.incompleteEvent', 'must be a non-empty event name without CR or LF');
  }
  return name;
}

function historySizeOf(options) {
  const size = options.historySize;
  if (size === undefined) return native.DEFAULT_HISTORY_SIZE;
  if (!Number.isInteger(size) || size < 0 || size > 0xffff_ffff) {
    throw invalid('options.historySize', 'a non-negative integer', size);
  }
  return size;
}

function historyBytesOf(options) {
  const bytes = options.historyBytes;
  if (bytes === undefined) return native.DEFAULT_HISTORY_BYTES;
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw invalid('options.historyBytes', 'a non-negative integer', bytes);
  }
  return bytes;
}

/** PEM material, as a string or bytes, holding a block of `label` (a
 * certificate, or a private key of any kind); passed on as a Buffer. */
function pemOf(name, value, label) {
  if (value === undefined || value === null) return undefined;
  let pem;
  if (typeof value === 'string') pem = Buffer.from(value, 'utf8');
  else if (value instanceof Uint8Array) pem = Buffer.from(value);
  else throw invalid(name, 'a PEM string or Buffer', value);
  const text = pem.toString('latin1');
  if (!text.includes('-----BEGIN ') || !text.includes(`${label}-----`)) {
    throw invalidValue(name, `must hold a PEM block of a ${label.toLowerCase()}`);
  }
  return pem;
}

function tlsOptionsOf(tls, url) {
  if (tls === undefined || tls === null) return undefined;
  if (typeof tls !== 'object') throw invalid('options.redis.tls', 'an object', tls);
  if (!url.startsWith('rediss:')) {
    throw invalidValue('options.redis.tls', 'needs a rediss:// URL in "options.redis.url"');
  }
  const result = {
    ca: pemOf('options.redis.tls.ca', tls.ca, 'CERTIFICATE'),
    cert: pemOf('options.redis.tls.cert', tls.cert, 'CERTIFICATE'),
    key: pemOf('options.redis.tls.key', tls.key, 'PRIVATE KEY'),
  };
  if ((result.cert === undefined) !== (result.key === undefined)) {
    throw invalidValue('options.redis.tls', 'must give "cert" and "key" together, or neither');
  }
  return result;
}

function redisOptionsOf(redis) {
  if (redis === undefined) return null;
  if (redis === null || typeof redis !== 'object') throw invalid('options.redis', 'an object', redis);
  const url = requiredString('options.redis.url', redis.url);
  let protocol;
  try {
    protocol = new URL(url).protocol;
  } catch {
    protocol = '';
  }
  if (!REDIS_PROTOCOLS.has(protocol)) {
    // The URL itself is not echoed: it may hold a password.
    throw invalidValue('options.redis.url', 'must be a redis:// or rediss:// URL');
  }
  const stream = requiredString('options.redis.stream', redis.stream);
  if (stream === '') throw invalid('options.redis.stream', 'a non-empty string', stream);
  const maxLen = redis.maxLen ?? native.DEFAULT_STREAM_MAX_LEN;
  if (!Number.isInteger(maxLen) || maxLen < 0 || maxLen > 0xffff_ffff) {
    throw invalid('options.redis.maxLen', 'a non-negative integer', maxLen);
  }
  return { url, stream, maxLen, tls: tlsOptionsOf(redis.tls, url) };
}

const STREAM_ID = /^\d+-\d+$/;

/** Orders Redis stream ids ("<ms>-<seq>"); exact beyond 2^53. */
function compareStreamIds(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

/** Entries to read in a resume's next page: as many as the client can take
 * (`room` bytes) at `entryBytes` each, the first page a few only. */
function pageSize(room, entryBytes) {
  if (entryBytes === 0) return native.RESUME_FIRST_PAGE_SIZE;
  return Math.max(1, Math.min(native.RESUME_PAGE_SIZE, Math.floor(room / entryBytes)));
}

function closedBeforeReady() {
  return withCode(new Error('The channel was closed before it was ready'), 'ERR_SSE_CHANNEL_CLOSED');
}

function endpointArgument(endpoint) {
  if (!(endpoint instanceof EventEndpoint)) throw invalid('endpoint', 'an EventEndpoint', endpoint);
  return endpoint;
}

/**
 * Broadcast to many endpoints: each event is validated and encoded once, in
 * Rust, and the same bytes are queued to every subscriber in one call. The
 * last `historySize` events that carry an id (and no more than
 * `historyBytes` of them) are kept, so that a client reconnecting with
 * `Last-Event-ID` is sent exactly what it missed.
 *
 * With `options.redis`, the channel is a Redis Stream shared by every
 * process that names it (see src/redis_link.rs): broadcasts are appended in
 * call order, every process delivers what it reads to its own subscribers,
 * and a resuming client is replayed the stream, a page at a time.
 */
class Channel {
  #native;
  /** slot → subscribed endpoint. */
  #subscribers = new Map();
  #lastId = '';
  #lastSequence = 0;
  /** The event that tells a resuming client its resume was incomplete. */
  #incompleteEvent = null;
  /** Redis-backed channels: the link (null once closed), how the stream is
   * named in reports, the id the live reader has read up to (null until it
   * starts), and the endpoints still being replayed the stream. */
  #link = null;
  #where = '';
  #position = null;
  #positionKnown = null;
  #resuming = null;
  /** Settles the reader's part of `ready`: once it knows where it starts,
   * or when it cannot read the stream at all; null once settled. */
  #readerReady = null;
  /** The live reader cannot read the stream now (and it was reported). */
  #unreadable = false;
  /** Settlers of the broadcasts sent to Redis and not yet answered, in
   * queue order, as [resolve, reject, resolve, reject, …] from #head on;
   * and the handle that keeps the process alive meanwhile. */
  #pending = [];
  #head = 0;
  #keepAlive = null;

  /**
   * Resolves once the channel can broadcast: at once for a local channel;
   * once connected for a Redis-backed one, and rejects with a clear error
   * if Redis cannot be reached at first (the channel keeps trying).
   */
  ready;

  constructor(options = undefined) {
    if (options === undefined || options === null) options = {};
    if (typeof options !== 'object') throw invalid('options', 'an object', options);
    const redis = redisOptionsOf(options.redis);
    this.#incompleteEvent = incompleteEventOf(options.incompleteEvent);
    // A Redis-backed channel resumes clients from the stream, not from a
    // local history.
    this.#native = redis ? new native.NativeChannel(0, 0) : new native.NativeChannel(historySizeOf(options), historyBytesOf(options));
    if (redis === null) {
      this.ready = Promise.resolve();
      return;
    }
    let link;
    try {
      link = new native.RedisLink(redis.url, redis.stream, redis.maxLen, redis.tls, (batch) => this.#guard(() => this.#settle(batch)));
    } catch (err) {
      if (err?.code !== 'ERR_SSE_REDIS_CONFIG') throw err;
      throw withCode(invalidValue('options.redis', `cannot be used: ${err.message}`), err.code);
    }
    this.#link = link;
    this.#where = `Redis stream ${JSON.stringify(redis.stream)} at ${link.server}`;
    this.#resuming = new Set();
    const readerReady = new Promise((resolve, reject) => (this.#readerReady = { resolve, reject }));
    this.#positionKnown = handled(readerReady);
    link.startReading((page) => this.#guard(() => this.#onPage(page)));
    // Ready once broadcasts can be appended and the reader knows where it
    // starts, so that a client subscribed then misses nothing appended
    // after; rejected when Redis cannot be reached or the stream read.
    const publisherReady = link.ready().then((reason) => {
      if (this.#link === null) throw closedBeforeReady();
      if (reason != null) throw withCode(new Error(reason), 'ERR_SSE_REDIS_UNAVAILABLE');
    });
    this.ready = handled(Promise.all([publisherReady, readerReady]).then(noop));
    // The reader's pages come through a weak thread-safe function: a timer
    // keeps the process alive until `ready` settles.
    const starting = setInterval(noop, 1 << 30);
    this.ready.finally(() => clearInterval(starting)).catch(noop);
  }

  /** Number of subscribed endpoints. */
  get size() {
    return this.#subscribers.size;
  }

  /**
   * Subscribes an endpoint, first sending it, in order, the events of the
   * history after its `lastEventId`. Returns how many were replayed and
   * whether that is known to be all it missed: `complete` is false when its
   * id is no longer (or never was) in the history, in which case everything
   * held was replayed. A closed endpoint, or one already subscribed, is left
   * as it is.
   */
  subscribe(endpoint) {
    endpointArgument(endpoint);
    if (this.#resuming !== null) return this.#subscribeFromStream(endpoint);
    const slot = endpoint[kSlot];
    if (slot < 0 || this.#subscribers.get(slot) === endpoint) return { replayed: 0, complete: true };
    const lastEventId = endpoint.lastEventId;
    const replay = this.#native.subscribe(slot, lastEventId);
    this.#subscribers.set(slot, endpoint);
    endpoint[kJoin](this, replay.lastId ?? undefined);
    if (replay.overflow) endpoint[kAbort]('slow consumer');
    else if (replay.frames > 0) outbox.schedule();
    const result = { replayed: replay.frames, complete: replay.complete };
    this.#tellIncomplete(endpoint, lastEventId, result);
    return result;
  }

  /** Stops sending to an endpoint. Endpoints also leave when they close. */
  unsubscribe(endpoint) {
    endpointArgument(endpoint);
    if (this.#subscribers.get(endpoint[kSlot]) !== endpoint) return;
    endpoint[kLeave](this);
    this[kDrop](endpoint);
  }

  /**
   * Sends an event to every subscriber. `options.event` names it (default
   * "message"); `options.id` gives it an id, which also keeps it in the
   * history for resuming clients. Subscribers that are a whole
   * `maxBufferedBytes` behind are cut off as slow consumers; the others are
   * never held up by them.
   */
  broadcast(data, options = undefined) {
    if (this.#resuming !== null) {
      // Asynchronous all through: any failure is a rejection.
      try {
        return this.#publish(data, options);
      } catch (err) {
        return handled(Promise.reject(err));
      }
    }
    requiredString('data', data);
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw invalid('options', 'an object', options);
    }
    const event = optionalString('options.event', options?.event);
    const id = checkId('options.id', optionalString('options.id', options?.id) || undefined);
    let overflowed;
    try {
      overflowed = this.#native.broadcast(data, event, id);
    } catch (err) {
      throw fromNative(err, { ...BROADCAST_NAMES, data: largest([['data', data], ['options.event', event], ['options.id', id]]) });
    }
    if (overflowed !== null) this.#cutOff(overflowed);
    if (id !== undefined) {
      this.#lastId = id;
      this.#lastSequence = nextSequence();
    }
    if (this.#subscribers.size > 0) outbox.schedule();
  }

  /** Stops a Redis-backed channel: its reader stops, broadcasts not yet
   * sent to Redis still go, later ones are refused (not appended), and a
   * later subscribe() ends the endpoint's stream at once (the client comes
   * back, to this process or another). Subscribers stay open, but receive
   * nothing more from the stream. */
  close() {
    this.#link?.close();
    this.#link = null;
    this.#readerReady?.reject(closedBeforeReady());
    this.#readerReady = null;
    this.#setUnreadable(false);
  }

  #setUnreadable(unreadable) {
    if (unreadable === this.#unreadable) return;
    this.#unreadable = unreadable;
    reports.counts.unreadableStreams += unreadable ? 1 : -1;
  }

  #publish(data, options) {
    requiredString('data', data);
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw invalid('options', 'an object', options);
    }
    const event = optionalString('options.event', options?.event);
    if (options?.id !== undefined && options?.id !== null) {
      throw invalidValue('options.id', 'cannot be given: the ids of a Redis-backed channel are its stream ids');
    }
    if (this.#link === null) {
      throw withCode(new Error('The channel is closed: the broadcast was not appended'), 'ERR_SSE_REDIS_NOT_APPENDED');
    }
    // Checked, then queued now, in call order, behind every earlier one.
    let refusal;
    try {
      refusal = this.#native.publish(this.#link, data, event);
    } catch (err) {
      throw fromNative(err, { ...BROADCAST_NAMES, data: largest([['data', data], ['options.event', event]]) });
    }
    if (refusal != null) throw withCode(new Error(`${refusal}: the broadcast was not appended`), 'ERR_SSE_REDIS_NOT_APPENDED');
    const outcome = new Promise((resolve, reject) => this.#pending.push(resolve, reject));
    // A weak thread-safe function brings the outcomes: this keeps the
    // process alive until they are in.
    this.#keepAlive ??= setInterval(noop, 1 << 30);
    return handled(outcome);
  }

  /** The fates of a pipeline of broadcasts, in queue order. Called from a
   * thread-safe function (see #guard). */
  #settle({ ids, failures }) {
    const pending = this.#pending;
    let failure = 0;
    for (let i = 0; i < ids.length; i++) {
      const at = this.#head;
      const resolve = pending[at];
      const reject = pending[at + 1];
      pending[at] = pending[at + 1] = undefined;
      this.#head = at + 2;
      if (ids[i] !== '') {
        resolve?.(ids[i]);
      } else {
        while (failures[failure].index < i) failure++;
        reject?.(publishError(failures[failure]));
      }
    }
    if (this.#head === pending.length) {
      pending.length = 0;
      this.#head = 0;
      clearInterval(this.#keepAlive);
      this.#keepAlive = null;
    } else if (this.#head > 8192 && this.#head * 2 > pending.length) {
      pending.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Runs the work of a thread-safe callback from Rust: nothing may escape
   * it to uncaughtException; a fault of ours is reported instead. */
  #guard(work) {
    try {
      work();
    } catch (err) {
      process.emitWarning(`Internal error on ${this.#where}: ${err?.message ?? err}`, {
        type: 'NativeSseWarning',
        code: 'ERR_SSE_INTERNAL',
        detail: err?.stack,
      });
    }
  }

  #cutOff(slots) {
    for (const slot of slots) this.#subscribers.get(slot)?.[kAbort]('slow consumer');
  }

  #reportSkipped(page) {
    if (page.read === 0) return;
    const skipped = page.skipped();
    for (let i = 0; i < skipped.length; i += 2) reports.skippedEntry(this.#where, skipped[i], skipped[i + 1]);
  }

  /** A batch read live from the stream (the first one empty, naming where
   * the reader starts): to the live subscribers, each entry encoded once. */
  #onPage(page) {
    if (this.#link === null) return;
    if (page.failure != null) {
      // The reader cannot read the stream, and retrying will not heal it:
      // said once, until it reads again.
      if (!this.#unreadable) reports.unreadableStream(this.#where, page.failure);
      this.#setUnreadable(true);
      this.#readerReady?.reject(withCode(new Error(page.failure), 'ERR_SSE_REDIS_UNREADABLE'));
      this.#readerReady = null;
      return;
    }
    this.#setUnreadable(false);
    if (page.rewoundFrom != null) {
      // The stream went back: ids delivered live are no guide any more.
      reports.rewoundStream(this.#where, page.rewoundFrom, page.last);
      this.#native.forgetFloors();
    }
    this.#reportSkipped(page);
    const lastEntry = page.lastEntry; // before deliver() takes the entries
    if (page.read > 0 && this.#subscribers.size > 0) {
      const delivery = this.#native.deliver(page);
      if (delivery.overflowed != null) this.#cutOff(delivery.overflowed);
      if (delivery.tooLarge != null) for (const id of delivery.tooLarge) reports.oversizedEntry(this.#where, id);
      outbox.schedule();
    }
    if (lastEntry != null) {
      this.#lastId = lastEntry;
      this.#lastSequence = nextSequence();
    }
    if (page.last != null) {
      this.#position = page.last;
      this.#readerReady?.resolve();
      this.#readerReady = null;
    }
  }

  /**
   * Sends a resuming endpoint the stream's entries after its lastEventId, a
   * page at a time as it takes them, until it has caught up with what the
   * live reader delivered; then makes it a live subscriber that skips what
   * it already has. Never rejects for a Redis fault: the stream is ended
   * instead, and the client comes back later.
   */
  async #subscribeFromStream(endpoint) {
    const result = { replayed: 0, complete: true };
    if (endpoint.closed || this.#subscribers.get(endpoint[kSlot]) === endpoint || this.#resuming.has(endpoint)) {
      return result;
    }
    if (this.#link === null) {
      endpoint.close();
      result.complete = false;
      return result;
    }
    const lastEventId = endpoint.lastEventId;
    if (lastEventId === '' || !STREAM_ID.test(lastEventId)) {
      // A first connection, or an id that is not of this stream: live only.
      result.complete = lastEventId === '';
      this.#join(endpoint, null, undefined);
      this.#tellIncomplete(endpoint, lastEventId, result);
      return result;
    }
    this.#resuming.add(endpoint);
    try {
      await this.#caughtUp(endpoint, lastEventId, result);
      this.#tellIncomplete(endpoint, lastEventId, result);
    } catch (err) {
      // Redis could not be read: end this stream; the client resumes later.
      result.complete = false;
      endpoint[kAbort](`cannot resume from Redis: ${err?.message ?? err}`);
    } finally {
      this.#resuming.delete(endpoint);
    }
    return result;
  }

  /** Resolves once the live reader has said where it starts. */
  async #readerStarted() {
    if (this.#position !== null) return;
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the stream reader has not started')), native.RESUME_WAIT_MS);
    });
    try {
      await Promise.race([this.#positionKnown, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #caughtUp(endpoint, lastEventId, result) {
    let cursor = lastEventId;
    let replayedTo;
    // The mean size of an entry's frame so far: pages hold about what the
    // client can take, so that each entry is read from Redis about once.
    let entryBytes = 0;
    for (;;) {
      const link = this.#link;
      if (endpoint.closed) return;
      if (link === null) throw new Error('the channel is closed');
      const count = pageSize(endpoint[kRoom](), entryBytes);
      const page = await link.readPage(cursor, count);
      if (endpoint.closed) return;
      if (page.failure != null) throw new Error(page.failure);
      if (page.trimmed) {
        // The entry this page follows is gone: entries between it and the
        // page may have gone with it (trimmed, deleted, a new Redis).
        result.complete = false;
        if (page.read === 0) {
          // Nothing after it either: the stream was emptied or went back.
          // The client goes on live, told of the gap.
          cursor = null;
          break;
        }
      }
      if (page.read > 0) entryBytes = Math.max(entryBytes, page.bytes / page.read);
      this.#reportSkipped(page);
      const replay = this.#native.replay(endpoint[kSlot], page);
      result.replayed += replay.frames;
      if (replay.frames > 0) {
        outbox.schedule();
        replayedTo = replay.last;
      }
      if (replay.tooLarge != null) {
        result.complete = false;
        for (const id of replay.tooLarge) reports.oversizedEntry(this.#where, id);
      }
      // Where the endpoint is served up to: what the replay dealt with, or
      // the whole page (skipped entries count as dealt with).
      const servedTo = replay.full ? replay.last : page.last;
      if (servedTo != null) cursor = servedTo;
      const atEnd = !replay.full && page.read < count;
      if (atEnd) {
        await this.#readerStarted();
        if (endpoint.closed) return;
        if (page.read === 0 || compareStreamIds(cursor, this.#position) >= 0) break;
      }
      // The client takes what it was given before the next page is read.
      await endpoint[kWhenWritable]();
    }
    if (cursor !== null && compareStreamIds(cursor, this.#position) < 0) {
      // What lay between was delivered live before this endpoint joined and
      // is gone from the stream (Redis lost its data).
      result.complete = false;
    }
    this.#join(endpoint, cursor, replayedTo);
  }

  /** With `incompleteEvent`: tells a client that resumed, and could not be
   * sent all it missed, so that it reloads its state. */
  #tellIncomplete(endpoint, lastEventId, result) {
    if (this.#incompleteEvent === null || result.complete || lastEventId === '' || endpoint.closed) return;
    endpoint.sendEvent(this.#incompleteEvent, JSON.stringify({ lastEventId, replayed: result.replayed })).catch(noop);
  }

  #join(endpoint, floor, replayedId) {
    const slot = endpoint[kSlot];
    if (slot < 0) return;
    this.#native.subscribeAfter(slot, floor);
    this.#subscribers.set(slot, endpoint);
    endpoint[kJoin](this, replayedId ?? undefined);
  }

  [kDrop](endpoint) {
    const slot = endpoint[kSlot];
    this.#native.unsubscribe(slot);
    this.#subscribers.delete(slot);
  }

  [kLastId]() {
    return [this.#lastId, this.#lastSequence];
  }

  get [Symbol.toStringTag]() {
    return 'Channel';
  }
}

module.exports = { Channel };
