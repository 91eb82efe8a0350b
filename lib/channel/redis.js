'use strict';

const native = require('../native.js');
const outbox = require('../outbox.js');
const codes = require('../codes.js');
const warnings = require('../diagnostics/warnings.js');
const { Link } = require('./link.js');
const { broadcastArgumentsOf, broadcastError, redisIdGiven, tooManyChannels } = require('./options.js');
const { handled, withCode } = require('../errors.js');
const { reserveReplayRoom, releaseReplayRoom } = require('../budget.js');
const { kSlot, kAbort, kWhenWritable, kRoom, kResumeFrom } = require('../internal.js');

const noop = () => {};

// The Redis-backed backend of a Channel (the Backend of ./index.js): its
// stream, on the link to its Redis that every channel on that Redis shares
// (./link.js, src/io/redis/mod.rs). Broadcasts are appended in call order
// and settled with their fates; while the channel has endpoints here, the
// link follows its stream, and the pages it reads are delivered to the
// channel's subscribers; a resuming client is replayed the stream a page at
// a time, then joins them.

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

function closedError() {
  return withCode(new Error('The channel is closed'), codes.ChannelClosed);
}

function notAppended(reason) {
  return withCode(new Error(`${reason}: the broadcast was not appended`), codes.RedisNotAppended);
}

/**
 * Where an endpoint joins the live subscribers:
 *
 * @typedef {object} JoinPoint
 * @property {string | null} floor it has the entries up to this id already (it replayed them)
 * @property {string | null} at its cursor in the stream: the floor, or where live delivery is
 *   (null if not known yet: the next page names it)
 * @property {string | undefined} replayedId the id of the last entry it was replayed
 * @property {boolean} composite its ids are composite (it resumed from one)
 */

/** Stands in for the set of resuming endpoints until there is one. */
const NONE_RESUMING = new Set();
/** The NativeChannel that checks the broadcasts of a channel with no
 * subscriber here (made with the first subscriber otherwise). */
let unsubscribedNative = null;
/** Not ready yet, and nobody asked. */
const PENDING = Symbol('pending');

/** Not ready yet: what settles the `ready` that was asked for. */
class ReadySettlers {
  constructor(resolve, reject) {
    this.resolve = resolve;
    this.reject = reject;
  }
}

// A hundred thousand of these may sit idle in a process (a channel per user
// or room), so what an idle one holds is kept small: what only a followed
// stream needs is made when following starts, and `ready` when asked for.

class RedisStream {
  /** The Channel until its ChannelCore is made (on first use), then that
   * core; and what makes it from the Channel, until then. */
  #core;
  /** @type {((channel: object) => object) | null} */
  #coreOf;
  /** Its NativeChannel, made with its first subscriber here. */
  #native = null;
  /** The shared link; null once closed. */
  #link;
  /** The stream's key (the link routes pages by it). */
  stream;
  /** The stream's topic on its deployment (what clients' cursors in it are
   * kept under: src/core/topics.rs), made when first needed. */
  #topicName = null;
  /** The server, named without userinfo (kept after close). */
  #server;
  #maxLen;
  /** How long the stream lives after its last broadcast (ms; 0: for ever). */
  #ttl;
  /**
   * While the link follows the stream for this channel: the id the
   * follower has read up to (null until it says where it starts), what
   * resolves once that is known, and its settlers until then.
   *
   * @type {{ position: string | null, known: Promise<void>, wait: object | null } | null}
   */
  #follow = null;
  /** Endpoints still being replayed the stream. */
  #resuming = NONE_RESUMING;
  /** The stream cannot be read now (and it was reported). */
  #unreadable = false;
  /** PENDING, or the settlers of `ready` once asked for while pending;
   * then null once ready, or the error that says why not. And the promise
   * `ready` gave. */
  #readiness = PENDING;
  #ready = null;

  /**
   * @param {object} owner the Channel
   * @param {(channel: object) => object} coreOf makes its ChannelCore (./index.js), on first use
   * @param {{ url: string, stream: string, maxLen: number, ttl: number, tls?: object }} redis checked options
   */
  constructor(owner, coreOf, redis) {
    this.#core = owner;
    this.#coreOf = coreOf;
    const link = Link.acquire(redis);
    this.#link = link;
    this.#server = link.server;
    this.stream = redis.stream;
    this.#maxLen = redis.maxLen;
    this.#ttl = redis.ttl;
    // Ready once the publisher is connected and has read the stream: a
    // client subscribed then misses nothing broadcast after; rejected when
    // Redis cannot be reached or the stream read.
    link.ready(redis.stream, this);
  }

  /** Resolves once broadcasts can be appended and the stream read; see
   * Channel#ready. Made when first asked for. */
  get ready() {
    if (this.#ready === null) {
      const readiness = this.#readiness;
      if (readiness === null) this.#ready = Promise.resolve();
      else if (readiness !== PENDING) this.#ready = handled(Promise.reject(readiness));
      else {
        this.#ready = handled(
          new Promise((resolve, reject) => {
            this.#readiness = new ReadySettlers(resolve, reject);
          }),
        );
      }
    }
    return this.#ready;
  }

  /** The link's answer to getting ready: null, or why not. Once. */
  marked(error) {
    const waiting = this.#readiness;
    if (waiting !== PENDING && !(waiting instanceof ReadySettlers)) return;
    if (error?.code === codes.RedisUnreadable) this.#reportUnreadable(error.message);
    if (this.#link === null) error = closedBeforeReady();
    this.#readiness = error;
    if (waiting === PENDING) return;
    if (error === null) waiting.resolve();
    else waiting.reject(error);
  }

  /** The channel's side of what the two share. */
  get #channel() {
    if (this.#coreOf !== null) {
      this.#core = this.#coreOf(this.#core);
      this.#coreOf = null;
    }
    return this.#core;
  }

  /** How the stream is named in warnings and errors. */
  get #where() {
    return `Redis stream ${JSON.stringify(this.stream)} at ${this.#server}`;
  }

  /** The id the link has delivered the stream up to here, or null. */
  get position() {
    return this.#follow?.position ?? null;
  }

  /** The stream's topic on its deployment: two channels whose streams
   * share a key on two deployments keep two cursors in a client's id. */
  get topic() {
    this.#topicName ??= this.#link?.native.topic(this.stream) ?? this.stream;
    return this.#topicName;
  }

  /** How many endpoints are being replayed the stream now. */
  get resuming() {
    return this.#resuming.size;
  }

  /** Its ids are the stream's, shared with every process. */
  get shared() {
    return true;
  }

  /** The NativeChannel: the one made with the first subscriber, or, until
   * then, the one every such channel shares to check broadcasts. */
  get native() {
    if (this.#native !== null) return this.#native;
    unsubscribedNative ??= new native.NativeChannel(0, 0);
    return unsubscribedNative;
  }

  /** Makes `endpoint` a live subscriber of the stream, from `floor` (it
   * has the entries up to it) at `at`. Throws if its composite id would
   * grow too long. */
  #join(endpoint, { floor, at, replayedId, composite }) {
    if (endpoint[kSlot] < 0) return;
    this.#native ??= new native.NativeChannel(0, 0);
    try {
      this.#native.subscribeAfter(endpoint[kSlot], this.topic, floor, at, composite);
    } catch (err) {
      throw tooManyChannels(err);
    }
    this.#channel.add(endpoint, replayedId ?? undefined, true);
  }

  /** An endpoint left. */
  drop(slot) {
    this.#native?.unsubscribe(slot);
  }

  /** One item of broadcastAll(), awaited before the next. */
  broadcastOne(data, event, id) {
    return this.broadcast(data, { event, id });
  }

  /** broadcastAll() takes no `id`: the ids are the stream's. */
  checkAll(checked) {
    if (checked.id !== undefined) throw redisIdGiven();
  }

  /** The clients that wait on the stream here: subscribers, and endpoints
   * being resumed. */
  get clients() {
    return this.#channel.size() + this.#resuming.size;
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

  /** Deletes the stream from Redis, after every broadcast queued before;
   * resolves with whether there was one. See Channel#deleteHistory. */
  deleteHistory() {
    if (this.#link === null) return handled(Promise.reject(closedError()));
    return this.#link.deleteStream(this.stream);
  }

  /** Stops following the stream here; broadcasts not yet sent still go,
   * later ones are refused (not appended), and a later subscribe() ends the
   * endpoint's stream at once (the client comes back, to this process or
   * another). The link is released: the last channel on it closes it. */
  close() {
    const link = this.#link;
    if (link === null) return;
    this.#stopFollowing();
    this.#link = null;
    link.release();
    this.#setUnreadable(false);
  }

  /** The channel has no endpoint left here: the stream is not followed
   * (a channel with no subscribers costs Redis nothing but its stream). */
  idle() {
    if (this.#resuming.size === 0 && this.#channel.size() === 0) this.#stopFollowing();
  }

  #startFollowing() {
    if (this.#follow !== null || this.#link === null) return;
    let wait;
    const known = handled(new Promise((resolve, reject) => (wait = { resolve, reject })));
    this.#follow = { position: null, known, wait };
    this.#link.holdOpen(true);
    this.#link.follow(this);
  }

  #stopFollowing() {
    const follow = this.#follow;
    if (follow === null) return;
    this.#follow = null;
    this.#link.unfollow(this);
    this.#positionSettled(follow)?.reject(new Error('the channel stopped following the stream'));
  }

  /** The settlers of `follow.known`, once: null if settled already. */
  #positionSettled(follow) {
    const wait = follow.wait;
    if (wait === null) return null;
    follow.wait = null;
    this.#link?.holdOpen(false);
    return wait;
  }

  #setUnreadable(unreadable) {
    if (unreadable === this.#unreadable) return;
    this.#unreadable = unreadable;
    warnings.counts.unreadableStreams += unreadable ? 1 : -1;
  }

  /** The stream cannot be read, and retrying will not heal it: said once,
   * until it is read again. */
  #reportUnreadable(reason) {
    if (!this.#unreadable) warnings.unreadableStream(this.#where, reason);
    this.#setUnreadable(true);
  }

  #publish(given, options) {
    const { data, event, id } = broadcastArgumentsOf(given, options);
    if (id !== undefined && id !== null) throw redisIdGiven();
    if (this.#link === null) throw notAppended('The channel is closed');
    try {
      return this.#link.publish(this.native, this.stream, this.#maxLen, this.#ttl, data, event);
    } catch (err) {
      throw broadcastError(err, data, event, undefined);
    }
  }

  #reportSkipped(page) {
    if (page.read === 0) return;
    const skipped = page.skipped();
    for (let i = 0; i < skipped.length; i += 2) warnings.skippedEntry(this.#where, skipped[i], skipped[i + 1]);
  }

  /** A batch read live from the stream (the first one empty, naming where
   * following starts): to the live subscribers, each entry encoded once.
   * `keep`: another channel on this stream gets the page after this one. */
  onPage(page, keep) {
    const follow = this.#follow;
    if (this.#link === null || follow === null) return;
    if (page.failure != null) {
      this.#reportUnreadable(page.failure);
      return;
    }
    this.#setUnreadable(false);
    const channel = this.#channel;
    if (page.deleted) {
      // Deleted on purpose (deleteHistory(), here or in another process):
      // the next stream of this name is delivered from its start. Entries
      // not read yet went with it: live clients are told.
      this.native.forgetFloors();
      if (page.lostTrack) channel.tellLiveIncomplete(page.rewoundFrom ?? '');
    } else if (page.rewoundFrom != null) {
      // The stream went back: ids delivered live are no guide any more.
      if (page.diverged) warnings.divergedStream(this.#where, page.rewoundFrom, page.last, page.lostTrack);
      else warnings.rewoundStream(this.#where, page.rewoundFrom, page.last);
      this.native.forgetFloors();
      if (page.lostTrack) channel.tellLiveIncomplete(page.rewoundFrom);
    }
    if (!keep) this.#reportSkipped(page);
    const lastEntry = page.lastEntry; // before deliver() takes the entries
    // An empty page (the first) says where live delivery starts: the
    // cursors of those who joined before that was known start there.
    if (channel.size() > 0 && (page.read > 0 || page.last != null)) {
      const delivery = this.native.deliver(page, this.topic, keep);
      if (delivery.overflowed != null) channel.cutOff(delivery.overflowed);
      if (delivery.tooLarge != null) for (const id of delivery.tooLarge) warnings.oversizedEntry(this.#where, id);
      outbox.schedule();
    }
    if (lastEntry != null) channel.sent(lastEntry);
    if (page.last != null) {
      follow.position = page.last;
      this.#positionSettled(follow)?.resolve();
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
    // Where the client is in this stream: the id it sent, or for a client
    // that follows several streams on one connection, this stream's part
    // of its composite id (src/core/topics.rs).
    const lastEventId = endpoint[kResumeFrom];
    const { after, complete, composite } = native.resumePoint(lastEventId, this.topic);
    if (after == null) {
      // A first connection, a stream its composite id does not name (it
      // did not follow it), or an id that is not of this stream: live only.
      this.#startFollowing();
      result.complete = complete;
      try {
        this.#join(endpoint, { floor: null, at: this.position, replayedId: undefined, composite });
      } catch (err) {
        channel.left();
        throw err;
      }
      channel.tellIncomplete(endpoint, lastEventId, result);
      // The first endpoint here starts the follow at the stream's end as
      // the publisher reads it, after this call: resolving once that place
      // is known means that every broadcast made after subscribe()
      // resolves, by any process, is after it, and reaches the endpoint.
      // (Redis down: the follower places it at once; see follower.rs.)
      if (this.#follow?.position === null) await this.#readerStarted().catch(noop);
      // Redis cannot be reached: the client is placed, and gets what is
      // broadcast once it is back, but nothing says that it missed nothing.
      if (this.#link !== null && !this.#link.connected) {
        result.complete = false;
        this.#link.warnIfWaiting();
      }
      return result;
    }
    // The entries replayed move the client's cursor in this stream.
    try {
      native.followTopic(endpoint[kSlot], this.topic, after, composite);
    } catch (err) {
      throw tooManyChannels(err);
    }
    this.#startFollowing();
    if (this.#resuming === NONE_RESUMING) this.#resuming = new Set();
    this.#resuming.add(endpoint);
    try {
      await this.#caughtUp(endpoint, after, composite, result);
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

  /** Resolves once the follower has said where it starts. */
  async #readerStarted() {
    const follow = this.#follow;
    if (follow === null) throw new Error('the channel stopped following the stream');
    if (follow.position !== null) return;
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the stream is not followed yet')), native.RESUME_WAIT_MS);
    });
    try {
      await Promise.race([follow.known, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Replays the stream after `lastEventId` to `endpoint`, page by page,
   * then joins it to the live subscribers. */
  async #caughtUp(endpoint, lastEventId, composite, result) {
    let cursor = lastEventId;
    let replayedTo;
    // The mean size of an entry's frame so far: pages hold about what the
    // client can take, so that each entry is read from Redis about once.
    let entryBytes = 0;
    for (;;) {
      const link = this.#link;
      if (endpoint.closed) return;
      if (link === null) throw new Error('the channel is closed');
      // A page fits what the client can take and the room replays have
      // under the budget.
      const room = await reserveReplayRoom(endpoint[kRoom](), () => endpoint.closed);
      const count = pageSize(room, entryBytes);
      let page;
      try {
        page = await link.readPage(this.stream, cursor, count);
        if (endpoint.closed) return;
      } finally {
        releaseReplayRoom(room);
      }
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
      const replay = this.native.replay(endpoint[kSlot], page, this.topic);
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
        if (page.read === 0 || compareStreamIds(cursor, this.position) >= 0) break;
      }
      // The client takes what it was given before the next page is read.
      await endpoint[kWhenWritable]();
    }
    if (cursor !== null && compareStreamIds(cursor, this.position) < 0) {
      // What lay between was delivered live before this endpoint joined and
      // is gone from the stream (Redis lost its data).
      result.complete = false;
    }
    this.#join(endpoint, { floor: cursor, at: cursor ?? this.position, replayedId: replayedTo, composite });
  }
}

module.exports = { RedisStream };
