'use strict';

const native = require('../native.js');
const outbox = require('../outbox.js');
const { optionalString } = require('../options.js');
const { checkId } = require('../errors.js');
const { CloseReason } = require('../close-reasons.js');
const { kSlot, kAbort } = require('../internal.js');
const { broadcastArgumentsOf, broadcastError } = require('./options.js');

// The in-process backend of a Channel: its history, kept in Rust (a
// NativeChannel), and its broadcasts, each encoded once and queued to this
// thread's subscribers in one call. A Channel is given this or a Redis
// stream (./redis.js) when it is made; both are the Backend that ./index.js
// describes.

/** What `ready` is for every local channel. */
const READY = Promise.resolve();

class LocalHistory {
  /** The Channel until its ChannelCore is made (on first use), then that
   * core; and what makes it, until then. */
  #core;
  #coreOf;
  /** Its NativeChannel: the history and the subscribers' slots. */
  native;

  /**
   * @param {object} owner the Channel
   * @param {(channel: object) => object} coreOf makes its ChannelCore, on first use
   * @param {number} historySize
   * @param {number} historyBytes
   */
  constructor(owner, coreOf, historySize, historyBytes) {
    this.#core = owner;
    this.#coreOf = coreOf;
    this.native = new native.NativeChannel(historySize, historyBytes);
  }

  get #channel() {
    if (this.#coreOf !== null) {
      this.#core = this.#coreOf(this.#core);
      this.#coreOf = null;
    }
    return this.#core;
  }

  get ready() {
    return READY;
  }

  /** No endpoint is ever being resumed in the background. */
  get resuming() {
    return 0;
  }

  /** Ids are this process's own. */
  get shared() {
    return false;
  }

  /** See Channel#subscribe: the history after the endpoint's
   * `lastEventId` is queued on it before it joins, in one call. */
  subscribe(endpoint) {
    const channel = this.#channel;
    const slot = endpoint[kSlot];
    if (slot < 0 || channel.has(endpoint)) return { replayed: 0, complete: true };
    const lastEventId = endpoint.lastEventId;
    const replay = this.native.subscribe(slot, lastEventId);
    channel.add(endpoint, replay.lastId ?? undefined, false);
    if (replay.overflow) endpoint[kAbort](CloseReason.SlowConsumer);
    else if (replay.frames > 0) outbox.schedule();
    const result = { replayed: replay.frames, complete: replay.complete };
    channel.tellIncomplete(endpoint, lastEventId, result);
    return result;
  }

  /** See Channel#broadcast. */
  broadcast(value, options) {
    const { data, event, id: given } = broadcastArgumentsOf(value, options);
    const id = checkId('options.id', optionalString('options.id', given) || undefined);
    let overflowed;
    try {
      overflowed = this.native.broadcast(data, event, id);
    } catch (err) {
      throw broadcastError(err, data, event, id);
    }
    const channel = this.#channel;
    if (overflowed !== null) channel.cutOff(overflowed);
    if (id !== undefined) channel.sent(id);
    if (channel.size() > 0) outbox.schedule();
  }

  /** One item of broadcastAll(): broadcast, then a turn of the event loop
   * so that it leaves before the next. */
  broadcastOne(data, event, id) {
    this.broadcast(data, { event, id });
    return new Promise(setImmediate);
  }

  /** Any id may be given to broadcastAll(). */
  checkAll() {}

  deleteHistory() {
    return Promise.resolve(this.native.clearHistory() > 0);
  }

  /** An endpoint left. */
  drop(slot) {
    this.native.unsubscribe(slot);
  }

  idle() {}

  close() {}
}

module.exports = { LocalHistory };
