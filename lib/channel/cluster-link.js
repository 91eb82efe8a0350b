'use strict';

const native = require('../native.js');
const codes = require('../codes.js');
const { handled, withCode, publishError } = require('../errors.js');
const warnings = require('../diagnostics/warnings.js');
const { Link, Hold } = require('./link.js');

// The link to a Redis Cluster (src/io/redis/cluster.rs): a Link per master
// (./link.js), each what the link to one server is, and the map of the
// 16,384 slots to them, asked of the cluster when the first channel is made
// and again when a node answers that a slot moved (MOVED, ASK). A stream's
// broadcasts, marks, follows and pages go to the master of its slot, so a
// stream's broadcasts stay one queue, in call order, and a master that
// fails stops only its own slots' channels. Until the map is known, what
// the channels ask for waits here, in call order.

/** Cluster links by URL. */
const clusters = new Map();

/** Retries of a map that could not be read, the first at once; and the
 * least time between two readings asked for by failures. */
const REDISCOVER_MS = 500;
/** The map is read again this often, in case the cluster changed without a
 * request noticing (a replica promoted in place of a master that died). */
const REFRESH_EVERY_MS = 5000;
/** A node's answer that sends the request elsewhere. */
const REDIRECTED = /\b(moved|ask):? \d+ /i;
/** A master that cannot be reached. */
const UNREACHABLE = /Cannot connect to Redis/;
/** A failure that says the map may have changed: either of those. */
const mapMayHaveChanged = (reason) => REDIRECTED.test(reason) || UNREACHABLE.test(reason);
/** How many times a broadcast sent elsewhere is sent again. */
const MAX_REDIRECTS = 3;

function unavailable(reason) {
  return withCode(new Error(reason), codes.RedisUnavailable);
}

class ClusterLink {
  #url;
  #users = 0;
  /** The map: a Link per master, and each slot's master. */
  #masters = [];
  #slots = null;
  /** Slots by stream, computed once. */
  #slotOf = new Map();
  /** What waits for the map, in call order: each is called with null once
   * it is known, or with why it could not be read. The process stays alive
   * while anything waits (as it does while a broadcast waits for Redis). */
  #waiting = [];
  #waitingHold = new Hold();
  /** Follows that wait for a map that could not be read: started by the
   * next reading that succeeds (before what waits then); these do not keep
   * the process alive. */
  #followsWaiting = [];
  #discovering = false;
  #lastFailure = Number.NEGATIVE_INFINITY;
  /** Broadcasts sent to a master and not settled yet, by stream; and what
   * waits for streams whose slot moved (see publish). */
  #inflight = new Map();
  #moving = new Map();
  /** Followers, each with the Link it follows on (to move it with its
   * slot) and what that Link is given in its place (see #via). */
  #followed = new Map();
  /** What waits for a reading of the map begun after it asked (see
   * #afterFreshMap), and how many readings have begun. */
  #afterFresh = [];
  #readings = 0;
  #unwatch = [];
  #hold = new Hold();
  #closed = false;
  #refreshTimer = null;
  #retryTimer = null;
  #lastRefresh = Number.NEGATIVE_INFINITY;
  /** Why the map could not be read, until it is; since when the link has
   * had no map; and whether waiting clients were warned of that. */
  #mapFailure = null;
  #since = Date.now();
  #warnedDown = false;
  server;

  /** What diagnostics() says of each cluster link: connected when its map
   * is known and every master's link is. */
  static describeAll() {
    return [...clusters.values()].map((link) => link.#describe());
  }

  #describe() {
    const masters = this.#masters.map((master) => master.describe());
    const down = masters.filter((master) => !master.connected);
    const mapped = this.#slots !== null;
    const connected = mapped && down.length === 0;
    let downSince = null;
    let reason = null;
    if (!connected) {
      downSince = mapped ? Math.min(...down.map((master) => master.downSince)) : this.#since;
      reason = mapped ? (down.find((master) => master.reason !== null)?.reason ?? null) : this.#mapFailure;
    }
    return {
      server: this.server,
      connected,
      downSince,
      reason,
      channels: this.#users,
      streams: this.#followed.size,
      clients: this.clients,
      masters,
    };
  }

  /** Whether the map is known and every master's link is connected. */
  get connected() {
    return this.#slots !== null && this.#masters.every((master) => master.connected);
  }

  /** The clients that wait on the cluster: see Link#clients. */
  get clients() {
    let clients = 0;
    for (const follower of this.#followed.keys()) clients += follower.clients;
    return clients;
  }

  /** See Link#warnIfWaiting: each master warns for its own streams; with
   * no map, the cluster warns for all of them, once until one is read. */
  warnIfWaiting() {
    if (this.#slots !== null) {
      for (const master of this.#masters) master.warnIfWaiting();
      return;
    }
    if (this.#warnedDown || this.#mapFailure === null) return;
    const clients = this.clients;
    if (clients === 0) return;
    this.#warnedDown = true;
    warnings.unreachable(this.server, this.#mapFailure, clients, this.#followed.size);
  }

  static acquire(redis) {
    let link = clusters.get(redis.url);
    if (link === undefined) {
      link = new ClusterLink(redis.url);
      clusters.set(redis.url, link);
    }
    link.#users++;
    return link;
  }

  constructor(url) {
    this.#url = url;
    // Read (and checked) with the channel's options.
    this.server = native.redisDeployment(url).server;
    this.#discover();
    this.#refreshTimer = setInterval(() => this.#refresh(), REFRESH_EVERY_MS).unref();
  }

  release() {
    if (--this.#users > 0) return;
    clusters.delete(this.#url);
    this.#closed = true;
    clearInterval(this.#refreshTimer);
    clearTimeout(this.#retryTimer);
    this.#setMasters([]);
    this.#settleWaiting(unavailable('The channel is closed'));
    // What waits for a fresh map goes on without one: no master holds
    // anything now, which each says in its own way.
    const afterFresh = this.#afterFresh;
    this.#afterFresh = [];
    for (const wait of afterFresh) wait.then();
    // Broadcasts that wait for a moved stream are refused now.
    for (const [stream, moving] of this.#moving) {
      moving.mapped = true;
      this.#sendMoved(stream);
    }
  }

  /** Asks for the map of the slots, unless that is under way. While it is
   * read again, requests go on by the map held. */
  #discover() {
    if (this.#discovering || this.#closed) return;
    this.#discovering = true;
    this.#readings++;
    this.#lastRefresh = performance.now();
    // A first reading keeps the process alive; a refresh does not.
    const first = this.#slots === null;
    if (first) this.#hold.change(true);
    native.discoverCluster(this.#url).then(
      (map) => this.#discovered(first, map.failure ?? null, map),
      (err) => this.#discovered(first, String(err?.message ?? err), null),
    );
  }

  #discovered(first, failure, map) {
    this.#discovering = false;
    if (first) this.#hold.change(false);
    if (this.#closed) return;
    this.#mapped(failure, map);
    // What asked for a fresh map: this reading, if it began after it asked
    // (a reading under way then may hold the old map); else the next.
    const round = this.#readings;
    const fresh = this.#afterFresh.filter((wait) => wait.round <= round);
    this.#afterFresh = this.#afterFresh.filter((wait) => wait.round > round);
    for (const wait of fresh) wait.then();
    // Those that asked while this one was under way need the next.
    if (this.#afterFresh.length > 0) this.#discover();
  }

  /** Calls `then` once a reading of the map that began after this call has
   * ended (well or not), and begins one if none is under way. */
  #afterFreshMap(then) {
    this.#afterFresh.push({ round: this.#readings + 1, then });
    this.#discover();
  }

  /** What a master's Link is given to follow `follower`'s stream: its pages
   * go to the follower, but for a read that a node sent elsewhere (MOVED,
   * ASK), which says the slot moved. That one waits for the map to be read
   * again: if the slot moved, the follower was moved with it (and reads
   * there from where it was); if not, it is the follower's to report. */
  #via(follower) {
    const via = {
      stream: follower.stream,
      get clients() {
        return follower.clients;
      },
      onPage: (page, keep) => {
        if (page.failure == null || !REDIRECTED.test(page.failure)) {
          follower.onPage(page, keep);
          return;
        }
        this.#afterFreshMap(() => {
          if (this.#followed.get(follower)?.via === via && !this.#closed) follower.onPage(page, keep);
        });
      },
    };
    return via;
  }

  /** The map as read (`failure`: why it could not be). */
  #mapped(failure, map) {
    // What waits for moved streams goes once this reading is in (by the
    // map held, if it failed: each is sent elsewhere at most MAX_REDIRECTS
    // times).
    queueMicrotask(() => {
      for (const [stream, moving] of this.#moving) {
        moving.mapped = true;
        this.#sendMoved(stream);
      }
    });
    if (failure !== null) {
      this.#lastFailure = performance.now();
      if (this.#slots === null) {
        this.#mapFailure = failure;
        this.warnIfWaiting();
      }
      // A refresh that failed keeps the map held.
      if (this.#slots === null) this.#settleWaiting(unavailable(failure));
      return;
    }
    const same =
      this.#slots !== null &&
      map.masters.length === this.#masters.length &&
      map.masters.every((url, i) => this.#masters[i].url === url) &&
      map.slots.every((master, slot) => this.#slots[slot] === master);
    this.#mapFailure = null;
    this.#warnedDown = false;
    if (same) return;
    this.#slots = map.slots;
    this.#setMasters(map.masters.map((url) => Link.acquire({ url, tls: undefined }, true)));
    // Followers whose slot moved follow on its new master, from where they
    // were: what came since is read there.
    for (const [follower, followed] of this.#followed) {
      const now = this.#masterOf(follower.stream);
      if (now === followed.on) continue;
      followed.on?.unfollow(followed.via);
      const via = this.#via(follower);
      now?.followFrom(via, follower.position);
      this.#followed.set(follower, { on: now, via });
    }
    this.#settleWaiting(null);
  }

  #setMasters(masters) {
    const old = this.#masters;
    for (const stop of this.#unwatch) stop();
    this.#masters = masters;
    this.#unwatch = masters.map((link) =>
      link.watchFailures((reason) => {
        if (mapMayHaveChanged(reason)) this.#refresh();
      }),
    );
    for (const link of old) link.release(true);
  }

  /** Reads the map again, at most once per REDISCOVER_MS. */
  #refresh() {
    if (this.#closed || performance.now() - this.#lastRefresh < REDISCOVER_MS) return;
    this.#discover();
  }

  #settleWaiting(failure) {
    if (failure === null) {
      const follows = this.#followsWaiting;
      this.#followsWaiting = [];
      for (const start of follows) start();
    }
    const waiting = this.#waiting;
    if (waiting.length === 0) return;
    this.#waiting = [];
    this.#waitingHold.change(false);
    for (const next of waiting) next(failure);
  }

  #wait(next) {
    if (this.#waiting.length === 0) this.#waitingHold.change(true);
    this.#waiting.push(next);
  }

  /** Runs `work` once the map is known (now, if it is); `failed` with why
   * if it cannot be read. */
  #whenMapped(work, failed) {
    if (this.#slots !== null) return work();
    if (this.#closed) return failed(unavailable('The channel is closed'));
    this.#wait((failure) => (failure === null ? work() : failed(failure)));
    if (!this.#discovering && performance.now() - this.#lastFailure >= REDISCOVER_MS) this.#discover();
    else if (!this.#discovering) {
      this.#retryTimer ??= setTimeout(() => {
        this.#retryTimer = null;
        this.#discover();
      }, REDISCOVER_MS).unref();
    }
    return undefined;
  }

  #masterOf(stream) {
    let slot = this.#slotOf.get(stream);
    if (slot === undefined) {
      slot = native.clusterSlotOf(stream);
      this.#slotOf.set(stream, slot);
    }
    return this.#masters[this.#slots[slot]] ?? null;
  }

  /** See Link#publish: a promise of the id. A
   * broadcast that a node sends elsewhere (MOVED, ASK) was not appended, and
   * is sent again, after the map is read again, to the master named then,
   * up to MAX_REDIRECTS times: the stream's later broadcasts wait behind it,
   * so that the call order stays the stream's order. */
  publish(nativeChannel, stream, maxLen, ttl, data, event) {
    const send = { nativeChannel, stream, maxLen, ttl, data, event, tries: 0 };
    if (this.#slots !== null && !this.#moving.has(stream)) return this.#send(send);
    return handled(
      new Promise((resolve, reject) => {
        const later = () => this.#attempt(send, resolve, reject);
        const moving = this.#moving.get(stream);
        if (moving !== undefined) {
          moving.later.push(later);
          return;
        }
        this.#whenMapped(later, (failure) =>
          reject(publishError({ code: codes.RedisNotAppended, reason: failure.message })),
        );
      }),
    );
  }

  /** #send, settling a promise with its outcome (a broadcast that waited). */
  #attempt(send, resolve, reject) {
    let outcome;
    try {
      outcome = this.#send(send);
    } catch (err) {
      reject(err);
      return;
    }
    outcome.then(resolve, reject);
  }

  /** Sends a broadcast to the master of its stream's slot now. */
  #send(send) {
    const master = this.#masterOf(send.stream);
    if (master === null) {
      const reason = `No master of the Redis Cluster at ${this.server} holds the stream's slot`;
      return handled(Promise.reject(publishError({ code: codes.RedisNotAppended, reason })));
    }
    const outcome = master.publish(send.nativeChannel, send.stream, send.maxLen, send.ttl, send.data, send.event);
    const stream = send.stream;
    this.#inflight.set(stream, (this.#inflight.get(stream) ?? 0) + 1);
    return outcome.then(
      (id) => {
        this.#settled(stream);
        return id;
      },
      (err) => {
        let again = null;
        if (send.tries < MAX_REDIRECTS && err?.code === codes.RedisNotAppended && REDIRECTED.test(err.message)) {
          send.tries++;
          again = new Promise((resolve, reject) => {
            this.#movingOf(stream).retries.push(() => this.#attempt(send, resolve, reject));
          });
        }
        this.#settled(stream);
        if (again === null) throw err;
        return again;
      },
    );
  }

  /** What waits for a stream whose slot moved, made with the first
   * broadcast sent elsewhere: the map is read again now. */
  #movingOf(stream) {
    let moving = this.#moving.get(stream);
    if (moving === undefined) {
      moving = { retries: [], later: [], mapped: false };
      this.#moving.set(stream, moving);
      this.#discover();
    }
    return moving;
  }

  #settled(stream) {
    const left = this.#inflight.get(stream) - 1;
    if (left > 0) this.#inflight.set(stream, left);
    else {
      this.#inflight.delete(stream);
      this.#sendMoved(stream);
    }
  }

  /** Sends again what waits for a moved stream, in call order (those that
   * were sent elsewhere first), once the map was read again and nothing of
   * the stream is in flight. */
  #sendMoved(stream) {
    const moving = this.#moving.get(stream);
    if (moving === undefined || !moving.mapped || this.#inflight.has(stream)) return;
    this.#moving.delete(stream);
    for (const next of moving.retries) next();
    for (const next of moving.later) next();
  }

  /** See Link#ready. A mark that a node sends elsewhere (MOVED, ASK) is
   * asked again of the master named once the map is read again, up to
   * MAX_REDIRECTS times. */
  ready(stream, target, tries = 0) {
    this.#whenMapped(
      () => {
        const master = this.#masterOf(stream);
        if (master === null) {
          target.marked(unavailable(`No master of the Redis Cluster at ${this.server} holds the stream's slot`));
          return;
        }
        master.ready(stream, {
          marked: (err) => {
            if (err === null || tries >= MAX_REDIRECTS || !REDIRECTED.test(err.message)) target.marked(err);
            else this.#afterFreshMap(() => this.ready(stream, target, tries + 1));
          },
        });
      },
      (err) => target.marked(err),
    );
  }

  /** See Link#deleteStream: after the stream's broadcasts that wait for a
   * moved slot; a delete that a node sends elsewhere (MOVED, ASK) is sent
   * again once the map is read again, up to MAX_REDIRECTS times. */
  deleteStream(stream) {
    return handled(
      new Promise((resolve, reject) => {
        const attempt = (tries) => {
          const master = this.#masterOf(stream);
          if (master === null) {
            reject(unavailable(`No master of the Redis Cluster at ${this.server} holds the stream's slot`));
            return;
          }
          master.deleteStream(stream).then(resolve, (err) => {
            if (tries >= MAX_REDIRECTS || !REDIRECTED.test(err.message)) reject(err);
            else this.#afterFreshMap(() => attempt(tries + 1));
          });
        };
        const moving = this.#moving.get(stream);
        if (moving !== undefined) moving.later.push(() => attempt(0));
        else this.#whenMapped(() => attempt(0), reject);
      }),
    );
  }

  follow(follower) {
    this.#followed.set(follower, { on: null, via: null });
    const start = () => {
      // Gone, or moved onto its master by a reading of the map already.
      if (this.#followed.get(follower)?.on !== null) return;
      const master = this.#masterOf(follower.stream);
      const via = this.#via(follower);
      this.#followed.set(follower, { on: master, via });
      master?.follow(via);
    };
    // The map could not be read: the follow waits for the next reading
    // that succeeds (they go on every REFRESH_EVERY_MS).
    this.#whenMapped(start, () => this.#followsWaiting.push(start));
  }

  unfollow(follower) {
    const followed = this.#followed.get(follower);
    this.#followed.delete(follower);
    followed?.on?.unfollow(followed.via);
  }

  holdOpen(waiting) {
    this.#hold.change(waiting);
  }

  /** See Link#readPage; a page that says why when no master holds the
   * slot. A read that a node sends elsewhere (MOVED, ASK) is made again on
   * the master named once the map is read again, up to MAX_REDIRECTS times. */
  readPage(stream, after, count, tries = 0) {
    return new Promise((resolve, reject) => {
      this.#whenMapped(
        () => {
          const master = this.#masterOf(stream);
          if (master === null) {
            resolve({ failure: `No master of the Redis Cluster at ${this.server} holds the stream's slot` });
            return;
          }
          master.readPage(stream, after, count).then((page) => {
            if (page.failure == null || tries >= MAX_REDIRECTS || !REDIRECTED.test(page.failure)) resolve(page);
            else this.#afterFreshMap(() => resolve(this.readPage(stream, after, count, tries + 1)));
          }, reject);
        },
        (failure) => resolve({ failure: failure.message }),
      );
    });
  }
}

module.exports = { ClusterLink };
