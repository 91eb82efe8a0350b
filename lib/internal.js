'use strict';

// Names of the internals that one part of the package uses of another. Symbols kept
// inside the package, so they are not part of the public API.

module.exports = {
  /** endpoint[kSlot]: its stream's slot in Rust, or -1 once closed. */
  /** endpoint[kTransport]: its transport (./transports/contract.js). */
  kTransport: Symbol('transport'),
  kSlot: Symbol('slot'),
  /** endpoint[kJoin](channel, replayedLastId, fromStream): the endpoint
   * joined a channel (`fromStream`: a Redis-backed one). */
  kJoin: Symbol('join'),
  /** endpoint[kCloseTimeout]: ms a clean end of its connection may take. */
  kCloseTimeout: Symbol('closeTimeout'),
  /** endpoint[kResumeFrom]: the Last-Event-ID its request carried. */
  kResumeFrom: Symbol('resumeFrom'),
  /** endpoint[kLeave](channel): the endpoint left a channel. */
  kLeave: Symbol('leave'),
  /** endpoint[kAbort](reason): cut the client off. */
  kAbort: Symbol('abort'),
  /** endpoint[kWhenWritable](): resolves once it is under its highWaterMark
   * (or closed). */
  kWhenWritable: Symbol('whenWritable'),
  /** endpoint[kRoom](): bytes it can still take before its maxBufferedBytes. */
  kRoom: Symbol('room'),
  /** endpoint[kShutdown](noReconnect, reconnectWindow): closes it for
   * closeAll(); resolves once its connection has finished. */
  kShutdown: Symbol('shutdown'),
  /** endpoint[kDestroy](): drops its connection now. */
  kDestroy: Symbol('destroy'),
  /** channel[kDrop](endpoint): a subscriber closed. */
  kDrop: Symbol('drop'),
  /** target[kDispatchOwn](type): a LazyEventTarget dispatches an event of
   * its own (../listeners.js). */
  kDispatchOwn: Symbol('dispatchOwn'),
  /** channel[kLastId](): [the last id broadcast, its sequence number,
   * whether it is a Redis stream's]. */
  kLastId: Symbol('lastId'),
  // A stream's sink in the outbox (../outbox.js), its endpoint:
  /** sink[kFlushed](chunk): its share of a flush. */
  kFlushed: Symbol('flushed'),
  /** sink[kDrained](): Rust wrote all its bytes to its socket. */
  kDrained: Symbol('drained'),
  /** sink[kFailed](): that socket failed. */
  kFailed: Symbol('failed'),
  /** sink[kCutOff](): it is to be cut off as a slow consumer (the memory
   * budget picked it, or its socket stalled). */
  kCutOff: Symbol('cutOff'),
  // A transport's events (./transports/contract.js), its endpoint:
  /** events[kOnDrain](): the transport has room again. */
  kOnDrain: Symbol('onDrain'),
  /** events[kOnGone](wasClean, reason): the client or connection went. */
  kOnGone: Symbol('onGone'),
  /** events[kAdopted](transport): Rust adopted the connection; `transport`
   * (an AdoptedTransport) takes the place of the one that adopted it. */
  kAdopted: Symbol('adopted'),
  // An adopted connection's sink in the outbox, its transport:
  /** sink[kGone](): the client left. */
  kGone: Symbol('gone'),
  /** sink[kFinished](clean): the connection is closed; `clean` if its stream ended it with everything written. */
  kFinished: Symbol('finished'),
  /** Orders ids sent by endpoints and channels on this thread, so that an
   * endpoint's lastEventId is the latest of either. */
  nextSequence: (() => {
    let sequence = 0;
    return () => ++sequence;
  })(),
};
