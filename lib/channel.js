'use strict';

const native = require('../binding.js');
const outbox = require('./outbox.js');
const { EventEndpoint } = require('./endpoint.js');
const { invalid, optionalString, requiredString } = require('./options.js');
const { kSlot, kJoin, kLeave, kAbort, kDrop, kLastId, nextSequence } = require('./internal.js');

const DEFAULT_HISTORY_SIZE = 1000;

function historySizeOf(options) {
  if (options === undefined || options === null) return DEFAULT_HISTORY_SIZE;
  if (typeof options !== 'object') throw invalid('options', 'an object', options);
  const size = options.historySize;
  if (size === undefined) return DEFAULT_HISTORY_SIZE;
  if (!Number.isInteger(size) || size < 0 || size > 0xffff_ffff) {
    throw invalid('options.historySize', 'a non-negative integer', size);
  }
  return size;
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

  constructor(options = undefined) {
    this.#native = new native.NativeChannel(historySizeOf(options));
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
