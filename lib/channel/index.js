'use strict';

const { EventEndpoint } = require('../endpoint.js');
const { optionsObject } = require('../options.js');
const { invalid } = require('../errors.js');
const { kSlot, kJoin, kLeave, kAbort, kDrop, kLastId, kDispatchOwn, nextSequence } = require('../internal.js');
const { CloseReason } = require('../close-reasons.js');
const { incompleteEventOf, historySizeOf, historyBytesOf, redisOptionsOf } = require('./options.js');
const { LocalHistory } = require('./local.js');
const { RedisStream } = require('./redis.js');
const { LazyEventTarget } = require('../listeners.js');
const sendAll = require('../send-all.js');

const noop = () => {};
/** Stands in for an idle channel's subscribers' map until one is made. */
const NO_SUBSCRIBERS = new Map();
const CHANNEL_OPTIONS = ['historySize', 'historyBytes', 'incompleteEvent', 'redis'];

function endpointArgument(endpoint) {
  if (!(endpoint instanceof EventEndpoint)) throw invalid('endpoint', 'an EventEndpoint', endpoint);
  return endpoint;
}

/**
 * What a Channel's backend is: the in-process one (LocalHistory,
 * ./local.js) or a Redis stream (RedisStream, ./redis.js), chosen once when
 * the channel is made. The Channel keeps its subscribers and what it tells
 * them; the backend keeps the history and moves the events.
 *
 * @typedef {object} Backend
 * @property {Promise<void>} ready see Channel#ready
 * @property {number} resuming endpoints being resumed in the background
 *   (the channel is not empty while there are)
 * @property {boolean} shared its ids are shared with other processes
 * @property {(endpoint: object) => object} subscribe see Channel#subscribe
 * @property {(value: unknown, options: object) => unknown} broadcast see Channel#broadcast
 * @property {(data: string, event: string, id: string) => Promise<unknown>} broadcastOne
 *   one item of broadcastAll()
 * @property {(checked: object) => void} checkAll throws for broadcastAll()
 *   options it refuses
 * @property {() => Promise<boolean>} deleteHistory see Channel#deleteHistory
 * @property {(slot: number) => void} drop an endpoint left
 * @property {() => void} idle no endpoint is left
 * @property {() => void} close see Channel#close
 */

/**
 * What a backend shares with its Channel, made when it first needs it (one
 * function for every channel: a closure each would cost an idle channel
 * 100 bytes).
 *
 * @typedef {object} ChannelCore
 * @property {() => number} size its number of subscribers
 * @property {(endpoint: object) => boolean} has whether an endpoint is one
 * @property {(endpoint: object, lastId: string | undefined, shared: boolean) => void} add
 *   makes an endpoint a subscriber (its lastEventId then `lastId`)
 * @property {(slots: Iterable<number>) => void} cutOff cuts subscribers off as slow consumers
 * @property {(id: string) => void} sent notes the id of the last event sent
 * @property {(endpoint: object, lastEventId: string, result: object) => void} tellIncomplete
 * @property {(lastEventId: string) => void} tellLiveIncomplete every subscriber may have
 *   missed events after `lastEventId`
 * @property {() => void} left a resume ended (joined or not): see the `empty` event
 */

/**
 * Broadcast to many endpoints: each event is validated and encoded once, in
 * Rust, and the same bytes are queued to every subscriber in one call. The
 * last `historySize` events that carry an id (and no more than
 * `historyBytes` of them) are kept, so that a client reconnecting with
 * `Last-Event-ID` is sent exactly what it missed.
 *
 * With `options.redis`, the channel is a Redis Stream shared by every
 * process that names it (./redis.js): broadcasts are appended in call
 * order, every process delivers what it reads to its own subscribers, and a
 * resuming client is replayed the stream, a page at a time.
 *
 * An `empty` event says that the last endpoint left (so that a channel per
 * user or room can be dropped): it fires once the channel, having had
 * subscribers, has none, and no client is being resumed into it.
 */
class Channel extends LazyEventTarget {
  /** The backend: LocalHistory or RedisStream. */
  #backend;
  /** slot → subscribed endpoint; the shared empty map until one is. */
  #subscribers = NO_SUBSCRIBERS;
  #lastId = '';
  #lastSequence = 0;
  /** The event that tells a resuming client its resume was incomplete. */
  #incompleteEvent = null;
  /** An `empty` event is queued. */
  #emptying = false;

  constructor(options = undefined) {
    super();
    options = optionsObject('options', options, CHANNEL_OPTIONS, 'Channel');
    const redis = redisOptionsOf(options.redis);
    this.#incompleteEvent = incompleteEventOf(options.incompleteEvent);
    this.#backend =
      redis === null
        ? new LocalHistory(this, Channel.#coreOf, historySizeOf(options), historyBytesOf(options))
        : new RedisStream(this, Channel.#coreOf, redis);
  }

  /**
   * Resolves once the channel can broadcast: at once for a local channel;
   * once connected for a Redis-backed one, and rejects with a clear error
   * if Redis cannot be reached at first (the channel keeps trying).
   */
  get ready() {
    return this.#backend.ready;
  }

  static #coreOf(channel) {
    return channel.#core();
  }

  /** What the backend shares with this channel (see ChannelCore). */
  #core() {
    return {
      size: () => this.#subscribers.size,
      has: (endpoint) => this.#subscribers.get(endpoint[kSlot]) === endpoint,
      add: (endpoint, lastId, shared) => {
        if (this.#subscribers === NO_SUBSCRIBERS) this.#subscribers = new Map();
        this.#subscribers.set(endpoint[kSlot], endpoint);
        endpoint[kJoin](this, lastId, shared);
      },
      cutOff: (slots) => this.#cutOff(slots),
      sent: (id) => this.#sent(id),
      tellIncomplete: (endpoint, lastEventId, result) => this.#tellIncomplete(endpoint, lastEventId, result),
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
   * as it is. (A Redis-backed channel returns a promise of it.)
   */
  subscribe(endpoint) {
    return this.#backend.subscribe(endpointArgument(endpoint));
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
   * never held up by them. (A Redis-backed channel appends it to its stream
   * and returns a promise of its id.)
   */
  broadcast(value, options = undefined) {
    return this.#backend.broadcast(value, options);
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
      this.#backend.checkAll(checked);
    } catch (err) {
      return Promise.reject(err);
    }
    const signals = checked.signal === undefined ? [] : [checked.signal];
    const backend = this.#backend;
    return sendAll.sendAll(
      source,
      checked,
      signals,
      (data, event, id) => backend.broadcastOne(data, event, id),
      () => false,
    );
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
    return this.#backend.deleteHistory();
  }

  /** Stops a Redis-backed channel: its reader stops, broadcasts not yet
   * sent to Redis still go, later ones are refused (not appended), and a
   * later subscribe() ends the endpoint's stream at once (the client comes
   * back, to this process or another). Subscribers stay open, but receive
   * nothing more from the stream. Does nothing to a local channel. */
  close() {
    this.#backend.close();
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

  [kDrop](endpoint) {
    const slot = endpoint[kSlot];
    this.#backend.drop(slot);
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
      this.#backend.idle();
      this[kDispatchOwn]('empty');
    });
  }

  #isEmpty() {
    return this.#subscribers.size === 0 && this.#backend.resuming === 0;
  }

  [kLastId]() {
    return [this.#lastId, this.#lastSequence, this.#backend.shared];
  }

  get [Symbol.toStringTag]() {
    return 'Channel';
  }
}

module.exports = { Channel };
