'use strict';

const native = require('../native.js');
const outbox = require('../outbox.js');
const codes = require('../codes.js');
const warnings = require('../diagnostics/warnings.js');
const { broadcastArgumentsOf, broadcastError } = require('./options.js');
const { handled, invalidValue, withCode, publishError } = require('../errors.js');
const { kSlot, kAbort, kWhenWritable, kRoom } = require('../internal.js');

// The Redis-backed half of a Channel: its link to a Redis Stream (see
// src/io/redis/mod.rs). Broadcasts are appended in call order and settled
// with their fates; the live reader's pages are delivered to the channel's
// subscribers; a resuming client is replayed the stream a page at a time,
// then joins them. The Channel holds one of these when `options.redis` is
// given, and hands it its subscribe(), broadcast() and close().

const STREAM_ID = /^\d+-\d+$/;
const noop = () => {};

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
  return withCode(new Error('The channel was closed before it was ready'), codes.ChannelClosed);
}

function notAppended(reason) {
  return withCode(new Error(`${reason}: the broadcast was not appended`), codes.RedisNotAppended);
}

/**
 * What the Redis half needs of its Channel (the members the two share):
 *
 * @typedef {object} ChannelCore
 * @property {object} native the channel's NativeChannel
 * @property {() => number} size its number of live subscribers
 * @property {(endpoint: object) => boolean} has whether an endpoint is one
 * @property {(endpoint: object, floor: string | null, replayedId: string | undefined) => void} join
 *   makes an endpoint a live subscriber that already has the entries up to `floor`
 * @property {(slots: Iterable<number>) => void} cutOff cuts subscribers off as slow consumers
 * @property {(id: string) => void} sent notes the id of the last event sent
 * @property {(endpoint: object, lastEventId: string, result: object) => void} tellIncomplete
 * @property {() => void} left a resume ended (joined or not): see Channel's `empty` event
 */

class RedisStream {
  /** @type {ChannelCore} */
  #channel;
  /** The link; null once closed. */
  #link;
  /** How the stream is named in warnings and errors. */
  #where;
  /** The id the live reader has read up to; null until it starts. */
  #position = null;
  /** Resolves once #position is known (see #readerReady). */
  #positionKnown;
  /** Endpoints still being replayed the stream. */
  #resuming = new Set();
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

  /** Resolves once broadcasts can be appended and the reader knows where it
   * starts; see Channel#ready. */
  ready;

  /**
   * @param {ChannelCore} channel
   * @param {{ url: string, stream: string, maxLen: number, tls?: object }} redis checked options
   */
  constructor(channel, redis) {
    this.#channel = channel;
    let link;
    try {
      link = new native.RedisLink(redis.url, redis.stream, redis.maxLen, redis.tls, (batch) =>
        this.#guard(() => this.#settle(batch)),
      );
    } catch (err) {
      if (err?.code !== codes.RedisConfig) throw err;
      throw withCode(invalidValue('options.redis', `cannot be used: ${err.message}`), err.code);
    }
    this.#link = link;
    this.#where = `Redis stream ${JSON.stringify(redis.stream)} at ${link.server}`;
    const readerReady = new Promise((resolve, reject) => (this.#readerReady = { resolve, reject }));
    this.#positionKnown = handled(readerReady);
    link.startReading((page) => this.#guard(() => this.#onPage(page)));
    // Ready once broadcasts can be appended and the reader knows where it
    // starts, so that a client subscribed then misses nothing appended
    // after; rejected when Redis cannot be reached or the stream read.
    const publisherReady = link.ready().then((reason) => {
      if (this.#link === null) throw closedBeforeReady();
      if (reason != null) throw withCode(new Error(reason), codes.RedisUnavailable);
    });
    this.ready = handled(Promise.all([publisherReady, readerReady]).then(noop));
    // The reader's pages come through a weak thread-safe function: a timer
    // keeps the process alive until `ready` settles.
    const starting = setInterval(noop, 1 << 30);
    this.ready.finally(() => clearInterval(starting)).catch(noop);
  }

  /** How many endpoints are being replayed the stream now. */
  get resuming() {
    return this.#resuming.size;
  }

  /** Appends an event to the stream; resolves with its stream id. Checked
   * here (a TypeError, as a rejection), then queued now, in call order,
   * behind every earlier one. */
  broadcast(data, options) {
    try {
      return this.#publish(data, options);
    } catch (err) {
      return handled(Promise.reject(err));
    }
  }

  /** Stops the reader; broadcasts not yet sent still go, later ones are
   * refused (not appended), and a later subscribe() ends the endpoint's
   * stream at once (the client comes back, to this process or another). */
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
    warnings.counts.unreadableStreams += unreadable ? 1 : -1;
  }

  #publish(data, options) {
    const { event, id } = broadcastArgumentsOf(data, options);
    if (id !== undefined && id !== null) {
      throw invalidValue('options.id', 'cannot be given: the ids of a Redis-backed channel are its stream ids');
    }
    if (this.#link === null) throw notAppended('The channel is closed');
    let refusal;
    try {
      refusal = this.#channel.native.publish(this.#link, data, event);
    } catch (err) {
      throw broadcastError(err, data, event, undefined);
    }
    if (refusal != null) throw notAppended(refusal);
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
      warnings.internalFault(this.#where, err);
    }
  }

  #reportSkipped(page) {
    if (page.read === 0) return;
    const skipped = page.skipped();
    for (let i = 0; i < skipped.length; i += 2) warnings.skippedEntry(this.#where, skipped[i], skipped[i + 1]);
  }

  /** A batch read live from the stream (the first one empty, naming where
   * the reader starts): to the live subscribers, each entry encoded once. */
  #onPage(page) {
    if (this.#link === null) return;
    if (page.failure != null) {
      // The reader cannot read the stream, and retrying will not heal it:
      // said once, until it reads again.
      if (!this.#unreadable) warnings.unreadableStream(this.#where, page.failure);
      this.#setUnreadable(true);
      this.#readerReady?.reject(withCode(new Error(page.failure), codes.RedisUnreadable));
      this.#readerReady = null;
      return;
    }
    this.#setUnreadable(false);
    const channel = this.#channel;
    if (page.rewoundFrom != null) {
      // The stream went back: ids delivered live are no guide any more.
      warnings.rewoundStream(this.#where, page.rewoundFrom, page.last);
      channel.native.forgetFloors();
    }
    this.#reportSkipped(page);
    const lastEntry = page.lastEntry; // before deliver() takes the entries
    if (page.read > 0 && channel.size() > 0) {
      const delivery = channel.native.deliver(page);
      if (delivery.overflowed != null) channel.cutOff(delivery.overflowed);
      if (delivery.tooLarge != null) for (const id of delivery.tooLarge) warnings.oversizedEntry(this.#where, id);
      outbox.schedule();
    }
    if (lastEntry != null) channel.sent(lastEntry);
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
  async subscribe(endpoint) {
    const channel = this.#channel;
    const result = { replayed: 0, complete: true };
    if (endpoint.closed || channel.has(endpoint) || this.#resuming.has(endpoint)) {
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
      channel.join(endpoint, null, undefined);
      channel.tellIncomplete(endpoint, lastEventId, result);
      return result;
    }
    this.#resuming.add(endpoint);
    try {
      await this.#caughtUp(endpoint, lastEventId, result);
      channel.tellIncomplete(endpoint, lastEventId, result);
    } catch (err) {
      // Redis could not be read: end this stream; the client resumes later.
      result.complete = false;
      endpoint[kAbort](`cannot resume from Redis: ${err?.message ?? err}`);
    } finally {
      this.#resuming.delete(endpoint);
      channel.left();
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

  /** Replays the stream after `lastEventId` to `endpoint`, page by page,
   * then joins it to the live subscribers. */
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
      const replay = this.#channel.native.replay(endpoint[kSlot], page);
      result.replayed += replay.frames;
      if (replay.frames > 0) {
        outbox.schedule();
        replayedTo = replay.last;
      }
      if (replay.tooLarge != null) {
        result.complete = false;
        for (const id of replay.tooLarge) warnings.oversizedEntry(this.#where, id);
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
    this.#channel.join(endpoint, cursor, replayedTo);
  }
}

module.exports = { RedisStream };
