'use strict';

const native = require('../binding.js');
const outbox = require('./outbox.js');
const { EventEndpoint } = require('./endpoint.js');
const { invalid, optionalString, requiredString } = require('./options.js');
const { kSlot, kJoin, kLeave, kAbort, kDrop, kLastId, nextSequence } = require('./internal.js');

const DEFAULT_HISTORY_SIZE = 1000;
const DEFAULT_MAX_LEN = 10_000;
const noop = () => {};

function historySizeOf(options) {
  const size = options.historySize;
  if (size === undefined) return DEFAULT_HISTORY_SIZE;
  if (!Number.isInteger(size) || size < 0 || size > 0xffff_ffff) {
    throw invalid('options.historySize', 'a non-negative integer', size);
  }
  return size;
}

function redisOptionsOf(redis) {
  if (redis === undefined) return null;
  if (redis === null || typeof redis !== 'object') throw invalid('options.redis', 'an object', redis);
  const url = requiredString('options.redis.url', redis.url);
  const stream = requiredString('options.redis.stream', redis.stream);
  if (stream === '') throw invalid('options.redis.stream', 'a non-empty string', stream);
  const maxLen = redis.maxLen ?? DEFAULT_MAX_LEN;
  if (!Number.isInteger(maxLen) || maxLen < 0 || maxLen > 0xffff_ffff) {
    throw invalid('options.redis.maxLen', 'a non-negative integer', maxLen);
  }
  return { url, stream, maxLen };
}

const STREAM_ID = /^\d+-\d+$/;

/** Orders Redis stream ids ("<ms>-<seq>"). */
function compareStreamIds(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}

function endpointArgument(endpoint) {
  if (!(endpoint instanceof EventEndpoint)) throw invalid('endpoint', 'an EventEndpoint', endpoint);
  return endpoint;
}

/**
 * Broadcast to many endpoints: each event is validated and encoded once, in
 * Rust, and the same bytes are queued to every subscriber in one call. The
 * last `historySize` events that carry an id are kept, so that a client
 * reconnecting with `Last-Event-ID` is sent exactly what it missed.
 */
class Channel {
  #native;
  /** slot → subscribed endpoint. */
  #subscribers = new Map();
  #lastId = '';
  #lastSequence = 0;
  /** Redis-backed channels: the link once connected, and the endpoints
   * catching up from the stream (endpoint → live entries held meanwhile). */
  #redis = null;
  #link = null;
  #catchingUp = null;

  /**
   * Resolves once the channel can broadcast: at once for a local channel;
   * once connected for a Redis-backed one, and rejects with a clear error
   * if Redis cannot be reached.
   */
  ready;

  constructor(options = undefined) {
    if (options === undefined || options === null) options = {};
    if (typeof options !== 'object') throw invalid('options', 'an object', options);
    const redis = redisOptionsOf(options.redis);
    // A Redis-backed channel resumes clients from the stream, not from a
    // local history.
    this.#native = new native.NativeChannel(redis ? 0 : historySizeOf(options));
    if (redis === null) {
      this.ready = Promise.resolve();
      return;
    }
    this.#redis = redis;
    this.#catchingUp = new Map();
    this.ready = native.connectRedis(redis.url, redis.stream, redis.maxLen).then((link) => {
      this.#link = link;
      link.startReading((entries) => this.#deliver(entries));
    });
    // Reported through `ready` and through each broadcast; never unhandled.
    this.ready.catch(noop);
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
    if (this.#redis !== null) return this.#subscribeFromStream(endpoint);
    const slot = endpoint[kSlot];
    if (slot < 0 || this.#subscribers.get(slot) === endpoint) return { replayed: 0, complete: true };
    const replay = this.#native.subscribe(slot, endpoint.lastEventId);
    this.#subscribers.set(slot, endpoint);
    endpoint[kJoin](this, replay.lastId ?? undefined);
    if (replay.overflow) endpoint[kAbort]('slow consumer');
    else if (replay.frames > 0) outbox.schedule();
    return { replayed: replay.frames, complete: replay.complete };
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
    if (this.#redis !== null) {
      // Asynchronous all through: any failure is a rejection.
      try {
        return this.#publish(data, options);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    requiredString('data', data);
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw invalid('options', 'an object', options);
    }
    const event = optionalString('options.event', options?.event);
    const id = optionalString('options.id', options?.id) || undefined;
    let overflowed;
    try {
      overflowed = this.#native.broadcast(data, event, id);
    } catch (err) {
      if (err?.code !== 'InvalidArg') throw err;
      throw new TypeError(err.message.replace('"eventId"', '"options.id"').replace('"event"', '"options.event"'));
    }
    if (overflowed !== null) {
      for (const slot of overflowed) this.#subscribers.get(slot)?.[kAbort]('slow consumer');
    }
    if (id !== undefined) {
      this.#lastId = id;
      this.#lastSequence = nextSequence();
    }
    if (this.#subscribers.size > 0) outbox.schedule();
  }

  /** Stops a Redis-backed channel's reader and lets its connection go;
   * subscribers stay, but receive nothing more from the stream. */
  close() {
    this.#link?.stopReading();
    this.#link = null;
  }

  #publish(data, options) {
    requiredString('data', data);
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw invalid('options', 'an object', options);
    }
    const event = optionalString('options.event', options?.event);
    if (options?.id !== undefined && options?.id !== null) {
      throw new TypeError('The "options.id" argument cannot be given: the ids of a Redis-backed channel are its stream ids');
    }
    const published = this.ready.then(() => {
      if (this.#link === null) throw new Error('The channel is closed');
      return this.#link.publish(data, event);
    });
    return published.catch((err) => {
      throw err?.code === 'InvalidArg' ? new TypeError(err.message.replace('"event"', '"options.event"')) : err;
    });
  }

  /** Entries read from the stream: to live subscribers at once (encoded
   * once), and held for those still catching up. */
  #deliver(entries) {
    for (const entry of entries) {
      const overflowed = this.#native.broadcast(entry.data, entry.event ?? undefined, entry.id);
      if (overflowed !== null) {
        for (const slot of overflowed) this.#subscribers.get(slot)?.[kAbort]('slow consumer');
      }
      this.#lastId = entry.id;
      this.#lastSequence = nextSequence();
    }
    for (const held of this.#catchingUp.values()) held.push(...entries);
    if (this.#subscribers.size > 0) outbox.schedule();
  }

  /**
   * Sends a resuming endpoint the stream's entries after its lastEventId,
   * then the entries that arrived live meanwhile (without those it already
   * got), then makes it a live subscriber — all in one turn, so that there
   * is no gap and nothing twice.
   */
  async #subscribeFromStream(endpoint) {
    const lastEventId = endpoint.lastEventId;
    if (endpoint.closed || this.#subscribers.get(endpoint[kSlot]) === endpoint || this.#catchingUp.has(endpoint)) {
      return { replayed: 0, complete: true };
    }
    const held = [];
    let range = { entries: [], complete: true };
    if (lastEventId !== '') {
      this.#catchingUp.set(endpoint, held);
      try {
        await this.ready;
        range = await this.#link.rangeAfter(lastEventId);
      } finally {
        this.#catchingUp.delete(endpoint);
      }
    }
    if (endpoint.closed) return { replayed: 0, complete: range.complete };
    let last = STREAM_ID.test(lastEventId) ? lastEventId : '';
    const send = (entry) => {
      endpoint.sendEvent(entry.event ?? 'message', entry.data, entry.id).catch(noop);
      last = entry.id;
    };
    for (const entry of range.entries) send(entry);
    for (const entry of held) {
      if (last === '' || compareStreamIds(entry.id, last) > 0) send(entry);
    }
    const slot = endpoint[kSlot];
    if (slot >= 0) {
      this.#native.subscribe(slot, '');
      this.#subscribers.set(slot, endpoint);
      endpoint[kJoin](this, undefined);
      if (range.entries.length > 0) outbox.schedule();
    }
    return { replayed: range.entries.length, complete: range.complete };
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
