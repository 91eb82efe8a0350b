'use strict';

const native = require('../native.js');
const outbox = require('../outbox.js');
const { EventEndpoint } = require('../endpoint.js');
const { optionalString, optionsObject } = require('../options.js');
const { checkId, invalid } = require('../errors.js');
const { CloseReason } = require('../close-reasons.js');
const { kSlot, kJoin, kLeave, kAbort, kDrop, kLastId, kDispatchOwn, nextSequence } = require('../internal.js');
const {
  incompleteEventOf,
  historySizeOf,
  historyBytesOf,
  redisOptionsOf,
  broadcastArgumentsOf,
  broadcastError,
  redisIdGiven,
  tooManyChannels,
} = require('./options.js');
const { RedisStream } = require('./redis.js');
const { LazyEventTarget } = require('../listeners.js');
const sendAll = require('../send-all.js');

const noop = () => {};
const CHANNEL_OPTIONS = ['historySize', 'historyBytes', 'incompleteEvent', 'redis'];

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
 * process that names it (its Redis half is ./redis.js): broadcasts are
 * appended in call order, every process delivers what it reads to its own
 * subscribers, and a resuming client is replayed the stream, a page at a
 * time.
 *
 * An `empty` event says that the last endpoint left (so that a channel per
 * user or room can be dropped): it fires once the channel, having had
 * subscribers, has none, and no client is being resumed into it.
 */
/** Stand in for what an idle Redis-backed channel has not made yet: its
 * subscribers' map (never written), and the NativeChannel that checks its
 * broadcasts (it has no subscribers). With the EventTarget made with the
 * first listener (LazyEventTarget), an idle channel costs a few hundred
 * bytes. */
const NO_SUBSCRIBERS = new Map();
let unsubscribedNative = null;
/** What `ready` is for every local channel. */
const LOCAL_READY = Promise.resolve();

class Channel extends LazyEventTarget {
  /** Its NativeChannel; for a Redis-backed channel, made with its first
   * subscriber (see #join). */
  #native = null;
  /** slot → subscribed endpoint. */
  #subscribers = NO_SUBSCRIBERS;
  #lastId = '';
  #lastSequence = 0;
  /** The event that tells a resuming client its resume was incomplete. */
  #incompleteEvent = null;
  /** The Redis half, for a Redis-backed channel; otherwise null. */
  #redis = null;
  /** An `empty` event is queued. */
  #emptying = false;

  constructor(options = undefined) {
    super();
    options = optionsObject('options', options, CHANNEL_OPTIONS, 'Channel');
    const redis = redisOptionsOf(options.redis);
    this.#incompleteEvent = incompleteEventOf(options.incompleteEvent);
    if (redis === null) {
      this.#native = new native.NativeChannel(historySizeOf(options), historyBytesOf(options));
      return;
    }
    // A Redis-backed channel resumes clients from the stream, not from a
    // local history; its NativeChannel is made when it is first needed.
    this.#redis = new RedisStream(this, Channel.#coreOf, redis);
  }

  /**
   * Resolves once the channel can broadcast: at once for a local channel;
   * once connected for a Redis-backed one, and rejects with a clear error
   * if Redis cannot be reached at first (the channel keeps trying).
   */
  get ready() {
    return this.#redis === null ? LOCAL_READY : this.#redis.ready;
  }

  /** Makes what the Redis half of `channel` shares with it: one function
   * for every channel (a closure each would cost an idle channel 100
   * bytes). */
  static #coreOf(channel) {
    return channel.#core();
  }

  /** What the Redis half shares with this channel (see ./redis.js). */
  #core() {
    const channel = this;
    return {
      get native() {
        if (channel.#native !== null) return channel.#native;
        unsubscribedNative ??= new native.NativeChannel(0, 0);
        return unsubscribedNative;
      },
      size: () => this.#subscribers.size,
      has: (endpoint) => this.#subscribers.get(endpoint[kSlot]) === endpoint,
      join: (endpoint, at) => this.#join(endpoint, at),
      cutOff: (slots) => this.#cutOff(slots),
      sent: (id) => this.#sent(id),
      tellIncomplete: (endpoint, lastEventId, result) => this.#tellIncomplete(endpoint, lastEventId, result),
      // Live clients, after the stream lost track of what they were sent:
      // `lastEventId` is the last id this process delivered.
      tellLiveIncomplete: (lastEventId) => {
        for (const endpoint of this.#subscribers.values()) {
          this.#tellIncomplete(endpoint, lastEventId, { replayed: 0, complete: false });
        }
      },
      left: () => this.#left(),
    };
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
    if (this.#redis !== null) return this.#redis.subscribe(endpoint);
    const slot = endpoint[kSlot];
    if (slot < 0 || this.#subscribers.get(slot) === endpoint) return { replayed: 0, complete: true };
    const lastEventId = endpoint.lastEventId;
    const replay = this.#native.subscribe(slot, lastEventId);
    this.#subscribersToWrite().set(slot, endpoint);
    endpoint[kJoin](this, replay.lastId ?? undefined);
    if (replay.overflow) endpoint[kAbort](CloseReason.SlowConsumer);
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
  broadcast(value, options = undefined) {
    if (this.#redis !== null) return this.#redis.broadcast(value, options);
    const { data, event, id: given } = broadcastArgumentsOf(value, options);
    const id = checkId('options.id', optionalString('options.id', given) || undefined);
    let overflowed;
    try {
      overflowed = this.#native.broadcast(data, event, id);
    } catch (err) {
      throw broadcastError(err, data, event, id);
    }
    if (overflowed !== null) this.#cutOff(overflowed);
    if (id !== undefined) this.#sent(id);
    if (this.#subscribers.size > 0) outbox.schedule();
  }

  /**
   * Broadcasts everything `source` yields (an async iterable, an iterable,
   * a Node `Readable` or a web `ReadableStream`), one event an item: a
   * Redis-backed channel awaits each broadcast, a local one lets the event
   * loop turn (and flush) between them. When `options.signal` aborts (an
   * endpoint's `signal`, say), the source is stopped (its iterator's
   * `return()`) and the promise resolves with `complete: false`.
   */
  broadcastAll(source, options = undefined) {
    let checked;
    try {
      checked = sendAll.optionsOf(options, 'broadcastAll()');
      if (this.#redis !== null && checked.id !== undefined) throw redisIdGiven();
    } catch (err) {
      return Promise.reject(err);
    }
    const signals = checked.signal === undefined ? [] : [checked.signal];
    const send =
      this.#redis !== null
        ? (data, event, id) => this.#redis.broadcast(data, { event, id })
        : (data, event, id) => {
            this.broadcast(data, { event, id });
            return new Promise(setImmediate);
          };
    return sendAll.sendAll(source, checked, signals, send, () => false);
  }

  /**
   * Deletes the channel's history at once: a local channel forgets the
   * events it kept; a Redis-backed channel's stream is deleted from Redis
   * (after every broadcast made before, in call order; a key that is not a
   * stream is left alone and the promise rejects). A client that resumes
   * from an id before it is told its resume is incomplete. Live clients in
   * every process go on with what is broadcast next; entries broadcast
   * before that a process had not read yet are gone, and its live clients
   * are told (the `incompleteEvent`). Resolves with whether there was a
   * history to delete.
   */
  deleteHistory() {
    if (this.#redis !== null) return this.#redis.deleteHistory();
    return Promise.resolve(this.#native.clearHistory() > 0);
  }

  /** Stops a Redis-backed channel: its reader stops, broadcasts not yet
   * sent to Redis still go, later ones are refused (not appended), and a
   * later subscribe() ends the endpoint's stream at once (the client comes
   * back, to this process or another). Subscribers stay open, but receive
   * nothing more from the stream. */
  close() {
    this.#redis?.close();
  }

  #cutOff(slots) {
    for (const slot of slots) this.#subscribers.get(slot)?.[kAbort](CloseReason.SlowConsumer);
  }

  /** Notes the id of the last event sent to the subscribers. */
  #sent(id) {
    this.#lastId = id;
    this.#lastSequence = nextSequence();
  }

  /** With `incompleteEvent`: tells a client that resumed, and could not be
   * sent all it missed, so that it reloads its state. */
  #tellIncomplete(endpoint, lastEventId, result) {
    if (this.#incompleteEvent === null || result.complete || lastEventId === '' || endpoint.closed) return;
    endpoint.sendEvent(this.#incompleteEvent, JSON.stringify({ lastEventId, replayed: result.replayed })).catch(noop);
  }

  /** Makes `endpoint` a live subscriber of the Redis stream; see
   * ChannelCore#join in ./redis.js. Throws if its composite id would grow
   * too long. */
  #join(endpoint, { floor, at, replayedId, composite }) {
    const slot = endpoint[kSlot];
    if (slot < 0) return;
    this.#native ??= new native.NativeChannel(0, 0);
    try {
      this.#native.subscribeAfter(slot, this.#redis.topic, floor, at, composite);
    } catch (err) {
      throw tooManyChannels(err);
    }
    this.#subscribersToWrite().set(slot, endpoint);
    endpoint[kJoin](this, replayedId ?? undefined, true);
  }

  #subscribersToWrite() {
    if (this.#subscribers === NO_SUBSCRIBERS) this.#subscribers = new Map();
    return this.#subscribers;
  }

  [kDrop](endpoint) {
    const slot = endpoint[kSlot];
    this.#native?.unsubscribe(slot);
    this.#subscribers.delete(slot);
    this.#left();
  }

  /** An endpoint left (or a resume ended): the `empty` event, once no
   * endpoint is left. Dispatched after the current task's microtasks, and
   * only if still empty then: an endpoint closing is not interrupted by
   * listeners, and a subscribe() meanwhile cancels it. */
  #left() {
    if (this.#emptying || !this.#isEmpty()) return;
    this.#emptying = true;
    queueMicrotask(() => {
      this.#emptying = false;
      if (!this.#isEmpty()) return;
      this.#redis?.idle();
      this[kDispatchOwn]('empty');
    });
  }

  #isEmpty() {
    return this.#subscribers.size === 0 && (this.#redis === null || this.#redis.resuming === 0);
  }

  [kLastId]() {
    return [this.#lastId, this.#lastSequence, this.#redis !== null];
  }

  get [Symbol.toStringTag]() {
    return 'Channel';
  }
}

module.exports = { Channel };
