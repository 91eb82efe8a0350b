'use strict';

const { createHash } = require('node:crypto');
const native = require('../native.js');
const codes = require('../codes.js');
const warnings = require('../diagnostics/warnings.js');
const { handled, invalidValue, withCode, publishError } = require('../errors.js');

// The link to one Redis deployment, shared by every Redis-backed channel on
// it in this JavaScript thread (see src/io/redis/mod.rs): one publisher, one
// follower and a small pool of reading connections, however many channels.
// Channels with the same URL and TLS material share one; the last channel
// to close closes it. It routes the follower's pages to the channels of
// their stream, and settles every broadcast in the order they were queued,
// whichever channel sent it.

const noop = () => {};

/** Keeps the process alive while its count is above zero: results come
 * through weak thread-safe functions, which do not. */
class Hold {
  #count = 0;
  #timer = null;

  change(up) {
    this.#count += up ? 1 : -1;
    if (this.#count > 0) this.#timer ??= setInterval(noop, 1 << 30);
    else {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}

/** Why a mark (`ready`) failed: the reason as it is, with its code. */
function markError(failure) {
  return withCode(new Error(failure.reason), failure.code);
}

/** Links by what identifies a deployment: URL and TLS material. */
const links = new Map();

/** The key of the last plain (no TLS material) URL asked for: a hundred
 * thousand channels made on one Redis do not hash it each. */
let lastPlain = { url: null, key: null };

function keyOf(redis) {
  const plain = redis.tls == null;
  if (plain && redis.url === lastPlain.url) return lastPlain.key;
  const hash = createHash('sha256').update(redis.url);
  for (const pem of [redis.tls?.ca, redis.tls?.cert, redis.tls?.key]) {
    hash.update('\0');
    if (pem != null) hash.update(pem);
  }
  const key = hash.digest('hex');
  if (plain) lastPlain = { url: redis.url, key };
  return key;
}

/**
 * What a link needs of each channel on it (its RedisStream):
 *
 * @typedef {object} Follower
 * @property {string} stream the stream's key
 * @property {(page: object, keep: boolean) => void} onPage a page read live
 *   from the stream; `keep`: another channel on the stream gets it too
 * @property {number} clients its subscribers here, and endpoints being resumed
 */

class Link {
  #key;
  native;
  /** How the deployment is named (no userinfo). */
  server;
  /** The URL it was made for. */
  url;
  /** Channels on the link. */
  #users = 0;
  /** Followers by stream, and which streams are followed. */
  #followers = new Map();
  /**
   * What waits for the requests sent and not yet answered, by their number
   * (src/io/redis/mod.rs, PublishBatch), three places each from the number
   * of the oldest one (#base): a broadcast's or a delete's [resolve,
   * reject, errorOf], a mark's [target, null, markError]; and the handle
   * that keeps the process alive meanwhile. A link to one server answers in
   * number order; a cluster's answers each master's in order.
   */
  #pending = [];
  /** The number of the request at the front of #pending; the place of the
   * oldest one not settled; and how many wait. */
  #base = 0;
  #head = 0;
  #waiting = 0;
  #keepAlive = null;
  /** Keeps the process alive while a channel waits for its first page. */
  #starting = new Hold();
  /** Clients waiting on this Redis were warned of this outage. */
  #warnedDown = false;

  constructor(key, redis) {
    this.#key = key;
    this.url = redis.url;
    try {
      this.native = new native.RedisLink(
        redis.url,
        redis.tls,
        (batch) => this.#guard(() => this.#settle(batch)),
        (pages) => this.#guard(() => this.#route(pages)),
        (connected) => this.#guard(() => this.#healthChanged(connected)),
      );
    } catch (err) {
      if (err?.code !== codes.RedisConfig) throw err;
      throw withCode(invalidValue('options.redis', `cannot be used: ${err.message}`), err.code);
    }
    this.server = this.native.server;
  }

  /** The link for these (checked) options, made on first use. */
  static acquire(redis) {
    const key = keyOf(redis);
    let link = links.get(key);
    if (link === undefined) {
      link = new Link(key, redis);
      links.set(key, link);
    }
    link.#users++;
    return link;
  }

  /** A channel is done with the link: the last one closes it (broadcasts
   * already queued still go, and are settled). */
  release() {
    if (--this.#users > 0) return;
    links.delete(this.#key);
    this.native.close();
  }

  /** Queues a broadcast, checked by the channel (a NativeChannel; it
   * throws a TypeError for an event it refuses); resolves with its stream
   * id, or rejects with its fate: at once when it is refused before it
   * reaches Redis. */
  publish(nativeChannel, stream, maxLen, ttl, data, event) {
    const number = nativeChannel.publish(this.native, stream, maxLen, ttl, data, event);
    if (typeof number === 'string') {
      return handled(Promise.reject(publishError({ code: codes.RedisNotAppended, reason: number })));
    }
    return handled(new Promise((resolve, reject) => this.#waitFor(number, resolve, reject, publishError)));
  }

  /** Calls `target.marked(null)` once the publisher is connected and has
   * read `stream` at this place in the queue, or `target.marked(error)`
   * with why not (the code says whether Redis is unavailable or the stream
   * unreadable). No promise: a hundred thousand channels made at once ask
   * this each. */
  ready(stream, target) {
    const number = this.native.mark(stream);
    if (number == null) {
      target.marked(withCode(new Error('The channel is closed'), codes.ChannelClosed));
      return;
    }
    this.#waitFor(number, target, null, markError);
  }

  /** Deletes `stream` at this place in the queue (after every broadcast
   * queued before); resolves with whether there was one, or rejects with
   * why not. */
  deleteStream(stream) {
    const number = this.native.delete(stream);
    if (number == null) {
      return handled(Promise.reject(withCode(new Error('The channel is closed'), codes.ChannelClosed)));
    }
    return handled(
      new Promise((resolve, reject) => this.#waitFor(number, (answer) => resolve(answer === '1'), reject, markError)),
    );
  }

  /** Waits for the outcome of request `number`, from #settle; `errorOf`
   * makes a failure's error. */
  #waitFor(number, first, second, errorOf) {
    const at = (number - this.#base) * 3;
    const pending = this.#pending;
    while (pending.length < at) pending.push(undefined);
    pending[at] = first;
    pending[at + 1] = second;
    pending[at + 2] = errorOf;
    this.#waiting++;
    // A weak thread-safe function brings the outcomes: this keeps the
    // process alive until they are in.
    this.#keepAlive ??= setInterval(noop, 1 << 30);
  }

  /** Whether the link reaches its Redis now, as its tasks last found it
   * (not before it has tried); a cluster: its map is known, and every
   * master reached. */
  get connected() {
    return this.native.health.connected;
  }

  /** The clients that wait on this link: every subscriber, and every
   * endpoint being resumed, of the channels that follow a stream on it. */
  get clients() {
    let clients = 0;
    for (const set of this.#followers.values()) for (const follower of set) clients += follower.clients;
    return clients;
  }

  /** What diagnostics() says of each link a channel made. */
  static describeAll() {
    return [...links.values()].map((link) => link.describe());
  }

  /** What diagnostics() says of the link. */
  describe() {
    const health = this.native.health;
    const described = {
      server: this.server,
      connected: health.connected,
      downSince: health.connected ? null : health.since,
      reason: health.reason ?? null,
      channels: this.#users,
      streams: this.#followers.size,
      clients: this.clients,
    };
    if (health.masters != null) {
      described.masters = health.masters.map((master) => ({
        server: master.server,
        connected: master.connected,
        downSince: master.connected ? null : master.since,
        reason: master.reason ?? null,
      }));
    }
    return described;
  }

  /** Warns, once an outage, when clients wait on a Redis the link tried to
   * reach and could not. */
  warnIfWaiting() {
    if (this.#warnedDown) return;
    const health = this.native.health;
    if (health.connected || health.reason == null) return;
    const clients = this.clients;
    if (clients === 0) return;
    this.#warnedDown = true;
    warnings.unreachable(this.server, health.reason, clients, this.#followers.size);
  }

  #healthChanged(connected) {
    if (connected) this.#warnedDown = false;
    else this.warnIfWaiting();
  }

  /** Starts giving `follower` the pages of its stream. */
  follow(follower) {
    const set = this.#followersOf(follower.stream);
    if (set.has(follower)) return;
    set.add(follower);
    // Every follower asks: each gets the page naming where it starts.
    this.native.follow(follower.stream);
  }

  /** The followers of `stream` here, made empty on first use. */
  #followersOf(stream) {
    let set = this.#followers.get(stream);
    if (set === undefined) {
      set = new Set();
      this.#followers.set(stream, set);
    }
    return set;
  }

  /** Stops giving `follower` pages; the stream is unfollowed when no
   * channel here follows it. */
  unfollow(follower) {
    const set = this.#followers.get(follower.stream);
    if (set === undefined || !set.delete(follower)) return;
    if (set.size > 0) return;
    this.#followers.delete(follower.stream);
    this.native.unfollow(follower.stream);
  }

  /** The process stays alive while a channel waits for where its following
   * starts (pages come through a weak thread-safe function). */
  holdOpen(waiting) {
    this.#starting.change(waiting);
  }

  /** Reads a page of `stream` after `after`; see RedisLink#readPage. */
  readPage(stream, after, count) {
    return this.native.readPage(stream, after, count);
  }

  #route(pages) {
    for (const page of pages) {
      const set = this.#followers.get(page.stream);
      if (set === undefined) continue;
      let left = set.size;
      for (const follower of set) {
        left--;
        follower.onPage(page, left > 0);
      }
    }
  }

  /** The outcomes of requests, each settled against the request of its
   * number: one that is not waiting (settled already, or never sent), or
   * numbers out of order within a batch, are faults of ours, said and not
   * settled against anything. */
  #settle({ numbers, ids, failures }) {
    const pending = this.#pending;
    let failure = 0;
    let previous = -1;
    for (let i = 0; i < ids.length; i++) {
      const number = numbers[i];
      const at = (number - this.#base) * 3;
      const first = at >= 0 ? pending[at] : undefined;
      const back = number <= previous;
      previous = number;
      if (first === undefined || back) {
        warnings.internalFault(
          `the link to Redis at ${this.server}`,
          new Error(`an outcome came for request ${number}, which is not waiting for one`),
        );
        continue;
      }
      const second = pending[at + 1];
      const errorOf = pending[at + 2];
      pending[at] = pending[at + 1] = pending[at + 2] = undefined;
      this.#waiting--;
      let error = null;
      if (ids[i] === '') {
        while (failures[failure].index < i) failure++;
        error = errorOf(failures[failure]);
      }
      if (second === null) first.marked(error);
      else if (error === null) first(ids[i]);
      else second(error);
    }
    this.#compact();
  }

  /** Drops the settled front of the pending list. */
  #compact() {
    const pending = this.#pending;
    if (this.#waiting === 0) {
      this.#base += pending.length / 3;
      pending.length = 0;
      this.#head = 0;
      clearInterval(this.#keepAlive);
      this.#keepAlive = null;
      return;
    }
    while (this.#head < pending.length && pending[this.#head] === undefined) this.#head += 3;
    if (this.#head > 3 * 8192 && this.#head * 2 > pending.length) {
      pending.splice(0, this.#head);
      this.#base += this.#head / 3;
      this.#head = 0;
    }
  }

  /** Runs the work of a thread-safe callback from Rust: nothing may escape
   * it to uncaughtException; a fault of ours is reported instead. */
  #guard(work) {
    try {
      work();
    } catch (err) {
      warnings.internalFault(`the link to Redis at ${this.server}`, err);
    }
  }
}

module.exports = { Link, Hold };
